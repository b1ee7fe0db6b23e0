"""Delivering callbacks: POST the Export resource, signed, to the URL a caller gave when it started
the export, once the export is completed, failed or cancelled (exports/callbacks.py).

The first attempt is queued at once by the store when an export ends (`on_finished`,
exports/services.py) and runs on the callbacks queue; every later one is made by the poll tick,
which sweeps the exports whose callback is still pending (their `callback-` rows) and tries those
that are due, so a lost message never loses a callback either. One attempt at a time
per export: an attempt first takes a short lease on the export (ETag-checked), so a duplicate
message or the sweep step aside. A 2xx ends the delivery and is recorded at once, so the same
outcome is not sent twice (unless the service loses that one write: then the lease lapses and it
is sent once more; receivers can key on the export id and status). Network errors, 408, 425, 429
and 5xx are retried with backoff (30 s doubling to 1 h, at the first tick after it) for
CALLBACK_RETRY_HOURS; any other
answer, or the end of that time, gives up. It is always tried at least once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from exports import callbacks, events, model
from exports.contract import CallbackState
from exports.services import Services
from exports.store import ConcurrentUpdate
from shared.crypto import TokenDecryptionError
from shared.urls import UrlError, parse_url

log = logging.getLogger(__name__)

ATTEMPT_LEASE = dt.timedelta(minutes=2)  # longer than one attempt can take (its timeouts)


def token_binding(export_id: str) -> str:
    """What a callback token is sealed for (never usable as the export's Panoptes token)."""
    return f"callback:{export_id}"


def deliver(services: Services, export_id: str) -> str:
    """One delivery attempt for the export, if one is due; what happened, for the log and tests."""
    with events.context(export_id):  # its log records carry the export's ids
        return _deliver(services, export_id)


def _deliver(services: Services, export_id: str) -> str:
    current = services.store.get(export_id)
    if (
        current is None
        or not current.export.is_final
        or current.export.callback_state != CallbackState.PENDING
    ):
        return "nothing_due"
    now = services.clock()
    if not model.callback_is_due(current.export, now):
        return "not_due"
    try:
        current = services.store.apply(
            current, lambda e: model.start_callback_attempt(e, services.clock(), ATTEMPT_LEASE)
        )
    except (model.InvalidTransition, ConcurrentUpdate):
        return "taken"  # another delivery of the same callback is under way, or it is not due
    export = current.export
    body = json.dumps(services.resource(export)).encode("utf-8")
    try:
        assert export.callback_url is not None and export.callback_token is not None
        url = parse_url(export.callback_url, schemes=("https", "http"))
        token = services.cipher.decrypt(export.callback_token, token_binding(export.id), expires=False)
    except (UrlError, TokenDecryptionError, AssertionError):
        return _record(
            services, current, None, "its token could not be decrypted (the key was changed)", False
        )
    sent = services.callback_sender.post(
        url, body, {callbacks.SIGNATURE_HEADER: callbacks.signature(body, token)}
    )
    del token
    retry = not sent.refused and callbacks.worth_retrying(sent.status)
    return _record(services, current, sent.status, sent.error, retry)


def _record(services: Services, current, status: int | None, error: str | None, retry: bool) -> str:
    export = current.export
    now = services.clock()
    retry_at = None
    if retry:
        delay = callbacks.retry_delay(export.callback_attempts)
        window = dt.timedelta(hours=services.settings.callback_retry_hours)
        since = export.callback_pending_since or now
        if now + delay <= since + window:
            retry_at = now + delay
    updated = services.store.apply(
        current,
        lambda e: model.record_callback_attempt(
            e, services.clock(), status=status, error=error, retry_at=retry_at
        ),
    ).export
    level = logging.INFO if updated.callback_state == CallbackState.DELIVERED else logging.WARNING
    log.log(
        level,
        "export %s: callback attempt %d: %s (%s)",
        export.id,
        updated.callback_attempts,
        updated.callback_state,
        status if status is not None else error,
        extra={
            "event": events.CALLBACK_ATTEMPT,
            "callback_state": str(updated.callback_state),
            "callback_status": status,
            "callback_attempts": updated.callback_attempts,
        },
    )
    return updated.callback_state or "nothing_due"


def sweep(services: Services) -> int:
    """Deliver every pending callback that is due (the poll tick's safety net); how many were tried."""
    tried = 0
    for export_id in services.store.pending_callback_ids():
        try:
            if deliver(services, export_id) in (
                CallbackState.DELIVERED,
                CallbackState.PENDING,
                CallbackState.GAVE_UP,
            ):
                tried += 1
        except Exception:
            log.exception("export %s: callback delivery failed", export_id)
    return tried


def process_callback_message(body: str, services: Services) -> None:
    """A message of the callbacks queue: an export id whose callback may be due."""
    export_id = body.strip()
    if model.parse_export_id(export_id) is None:
        log.error("dropping a malformed callback message")
        return
    deliver(services, export_id)  # not due (or being sent): the poll tick's sweep sees to it
