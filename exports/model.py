"""The Export record and its state transitions: plain data in, plain data out, no I/O.

Statuses (contract): queued → building → submitted → running → completed | failed | cancelled.
Every transition returns a new Export; the store persists it with an ETag check, so two
workers can never both apply a transition to the same version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from typing import Any

from exports.contract import (
    ACTIVE_STATUSES,
    EXPORT_KEYS,
    FINAL_STATUSES,
    CallbackState,
    Failure,
    MlStatus,
    Status,
)

MAX_PANOPTES_ID = 2**63 - 1
_ID = re.compile(r"[1-9][0-9]{0,18}")
_EXPORT_ID = re.compile(r"([1-9][0-9]{0,18})-([1-9][0-9]{0,18})-([0-9]{13}[0-9a-f]{8})")
_MAX_MS = 10**13 - 1


class InvalidTransition(Exception):
    """The requested change does not apply to the export's current status."""


def parse_panoptes_id(value: str | None) -> str | None:
    """The canonical id if `value` is a positive integer fitting a signed 64-bit int, else None."""
    if value is None or not _ID.fullmatch(value) or int(value) > MAX_PANOPTES_ID:
        return None
    return value


def new_export_id(project_id: str, subject_set_id: str, now: dt.datetime) -> str:
    """Opaque to callers. Inside: project, subject set, then an inverted timestamp so that a
    range query over one subject set returns the newest export first, then randomness."""
    inverted = _MAX_MS - int(now.timestamp() * 1000)
    return f"{project_id}-{subject_set_id}-{inverted:013d}{secrets.token_hex(4)}"


def parse_export_id(export_id: str | None) -> tuple[str, str] | None:
    """(project_id, subject_set_id) of a well-formed export id, else None."""
    match = _EXPORT_ID.fullmatch(export_id or "")
    if not match or parse_panoptes_id(match[1]) is None or parse_panoptes_id(match[2]) is None:
        return None
    return match[1], match[2]


def iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Export:
    id: str
    project_id: str
    subject_set_id: str
    requested_by: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    subjects_done: int = 0
    subjects_total: int | None = None
    manifest_subjects: int | None = None
    manifest_images: int | None = None
    manifest_skipped: int | None = None
    manifest_blob: str | None = None
    ml_task_id: str | None = None
    ml_status: str | None = None
    ml_message: str | None = None
    results_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Bookkeeping, not part of the resource.
    lease_owner: str | None = None  # invocation building the manifest
    lease_until: dt.datetime | None = None
    submit_started_at: dt.datetime | None = None  # set before POSTing to the ML service
    submitted_at: dt.datetime | None = None
    retry_until: dt.datetime | None = None  # transient faults are retried until then
    retries: int = 0
    ml_not_found: int = 0  # consecutive 404s from the ML service
    ml_changed_at: dt.datetime | None = None  # when the ML status or message last changed
    ml_same_ticks: int = 0  # polls in a row the task stayed in `problem` unchanged
    ml_num_images: int | None = None  # images the ML service kept (Status.num_images)
    requeued: bool = False  # the stuck-export sweep re-queued it once
    next_attempt_at: dt.datetime | None = None  # a delayed retry is due then
    # Encrypted Panoptes token, kept only until the manifest is built so the stuck-export
    # sweep can re-queue a lost message; cleared on record_manifest and on any final state.
    token_ciphertext: str | None = None
    summary: dict[str, Any] | None = None  # results summary once completed
    # Results people can act on (exports/accounting.py), recorded at completion: the detections
    # link expires, so a re-run never depends on it.
    results_csv_blob: str | None = None  # one row per subject, beside the manifest
    rerun_images: int | None = None  # failed + missing rows (None: not accounted for)
    rerun_subjects: int | None = None  # subjects with a failed or missing row
    rerun_blob: str | None = None  # those rows, byte for byte, for a re-run of this export
    rerun_note: str | None = None  # why there is nothing to re-run, when rerun_images is None
    # A re-run: the export it re-runs, and the blob of rows it sends instead of reading Panoptes.
    rerun_of: str | None = None
    rerun_source: str | None = None
    # The caller's callback (exports/callbacks.py): POSTed the Export once it is final.
    callback_url: str | None = None
    callback_token: str | None = None  # sealed like the Panoptes token, for "callback:<id>"
    callback_state: str | None = None  # pending | delivered | gave_up, from the final state on
    callback_attempts: int = 0
    callback_last_status: int | None = None  # the receiver's last HTTP status
    callback_last_error: str | None = None  # or why no status came back
    callback_pending_since: dt.datetime | None = None  # retries stop CALLBACK_RETRY_HOURS later
    callback_due_at: dt.datetime | None = None  # the next attempt is due then
    callback_lease_until: dt.datetime | None = None  # an attempt is in flight until then
    callback_delivered_at: dt.datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def new_export(
    export_id: str,
    project_id: str,
    subject_set_id: str,
    requested_by: str,
    now: dt.datetime,
    transient_retry: dt.timedelta,
    token_ciphertext: str | None = None,
    subjects_total: int | None = None,
    callback_url: str | None = None,
    callback_token: str | None = None,
) -> Export:
    """A queued export. `subjects_total` is Panoptes' count of the set when it was requested:
    shown as progress at once, and the worker's hint for fetching pages early."""
    return Export(
        id=export_id,
        project_id=project_id,
        subject_set_id=subject_set_id,
        requested_by=requested_by,
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
        retry_until=now + transient_retry,
        token_ciphertext=token_ciphertext,
        subjects_total=subjects_total,
        callback_url=callback_url,
        callback_token=callback_token,
    )


def new_rerun(
    parent: Export, export_id: str, requested_by: str, now: dt.datetime, transient_retry: dt.timedelta
) -> Export:
    """A queued re-run of `parent`'s failed and missing images: the same subject set, a manifest of
    exactly those rows (the parent's re-run blob), no Panoptes read (so no token)."""
    if parent.status != Status.COMPLETED:
        raise InvalidTransition(f"only a completed export can be re-run, not a {parent.status} one")
    if not parent.rerun_images or parent.rerun_blob is None:
        raise InvalidTransition("the export has no failed or missing images to re-run")
    return dataclasses.replace(
        new_export(
            export_id,
            parent.project_id,
            parent.subject_set_id,
            requested_by,
            now,
            transient_retry,
            subjects_total=parent.rerun_subjects,
        ),
        rerun_of=parent.id,
        rerun_source=parent.rerun_blob,
    )


def record_results(
    export: Export,
    summary: dict[str, Any],
    *,
    csv_blob: str | None = None,
    rerun_images: int | None = None,
    rerun_subjects: int | None = None,
    rerun_blob: str | None = None,
    rerun_note: str | None = None,
) -> Export:
    """A completed export with what the accounting found (exports/accounting.py)."""
    return dataclasses.replace(
        export,
        summary=summary,
        results_csv_blob=csv_blob,
        rerun_images=rerun_images,
        rerun_subjects=rerun_subjects,
        rerun_blob=rerun_blob,
        rerun_note=rerun_note,
    )


def _change(export: Export, now: dt.datetime, **changes: Any) -> Export:
    return dataclasses.replace(export, updated_at=now, **changes)


def claim_for_build(export: Export, owner: str, now: dt.datetime, lease: dt.timedelta) -> Export:
    """Take the build lease: from queued, or from building when the previous lease lapsed."""
    if export.status == Status.QUEUED or (
        export.status == Status.BUILDING and not lease_is_live(export, now)
    ):
        return _change(export, now, status=Status.BUILDING, lease_owner=owner, lease_until=now + lease)
    raise InvalidTransition(f"cannot claim an export that is {export.status}")


def lease_is_live(export: Export, now: dt.datetime) -> bool:
    return export.lease_until is not None and export.lease_until > now


def renew_lease(
    export: Export,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    subjects_done: int | None = None,
    subjects_total: int | None = None,
) -> Export:
    if export.status != Status.BUILDING or export.lease_owner != owner:
        raise InvalidTransition("the build lease belongs to another worker or the export moved on")
    return _change(
        export,
        now,
        lease_until=now + lease,
        subjects_done=export.subjects_done if subjects_done is None else subjects_done,
        subjects_total=export.subjects_total if subjects_total is None else subjects_total,
    )


def release_lease(
    export: Export, now: dt.datetime, retry_at: dt.datetime, retry_note: str | None = None
) -> Export:
    """Give the export back to the queue (a delayed retry will claim it again at `retry_at`)."""
    return _change(
        export,
        now,
        lease_owner=None,
        lease_until=None,
        retries=export.retries + 1,
        next_attempt_at=retry_at,
        ml_message=retry_note if retry_note is not None else export.ml_message,
    )


def is_stuck(export: Export, now: dt.datetime, threshold: dt.timedelta) -> bool:
    """Queued/building, nobody holding it, and no retry due for longer than `threshold`."""
    if export.status not in (Status.QUEUED, Status.BUILDING) or lease_is_live(export, now):
        return False
    last_sign_of_life = max(export.updated_at, export.next_attempt_at or export.updated_at)
    return now - last_sign_of_life > threshold


def mark_requeued(export: Export, now: dt.datetime) -> Export:
    return _change(
        export,
        now,
        status=Status.QUEUED if export.manifest_blob is None else export.status,
        requeued=True,
        lease_owner=None,
        lease_until=None,
    )


def drop_lease(export: Export, owner: str, now: dt.datetime) -> Export:
    """The owner crashed out of its invocation: let the next delivery take over at once."""
    if export.lease_owner != owner:
        raise InvalidTransition("the lease belongs to another worker")
    return _change(export, now, lease_owner=None, lease_until=None)


def record_manifest(
    export: Export, owner: str, now: dt.datetime, *, subjects: int, images: int, skipped: int, blob: str
) -> Export:
    if export.status != Status.BUILDING or export.lease_owner != owner:
        raise InvalidTransition("the build lease belongs to another worker or the export moved on")
    return _change(
        export,
        now,
        manifest_subjects=subjects,
        manifest_images=images,
        manifest_skipped=skipped,
        manifest_blob=blob,
        subjects_done=subjects,
        token_ciphertext=None,
        subjects_total=subjects,
    )


def start_submission(export: Export, owner: str, now: dt.datetime) -> Export:
    """Fence before POSTing: once persisted, no other attempt may submit this export."""
    if export.status != Status.BUILDING or export.lease_owner != owner or export.manifest_blob is None:
        raise InvalidTransition("only the lease owner submits a built manifest")
    if export.submit_started_at is not None:
        raise InvalidTransition("a submission was already started")
    return _change(export, now, submit_started_at=now)


def undo_submission_start(export: Export, now: dt.datetime) -> Export:
    """The ML service certainly did not accept the request (it refused or was unreachable)."""
    return _change(export, now, submit_started_at=None)


def record_submission(export: Export, task_id: str, now: dt.datetime) -> Export:
    if export.status == Status.CANCELLED:
        # Cancelled while the POST was in flight: keep the task id so the cancel can reach it.
        return _change(export, now, ml_task_id=task_id, submitted_at=now)
    if export.status != Status.BUILDING:
        raise InvalidTransition(f"cannot record a submission on a {export.status} export")
    return _change(
        export,
        now,
        status=Status.SUBMITTED,
        ml_task_id=task_id,
        ml_status=MlStatus.CREATED,
        ml_message=None,
        submitted_at=now,
        ml_changed_at=now,
        lease_owner=None,
        lease_until=None,
        token_ciphertext=None,
    )


def _finish(export: Export, now: dt.datetime, **changes: Any) -> Export:
    """Every move to a final status: the build lease and the sealed token go, and a callback
    becomes due."""
    if export.is_final:
        raise InvalidTransition(f"export is already {export.status}")
    callback: dict[str, Any] = {}
    if export.callback_url is not None:
        callback = {
            "callback_state": CallbackState.PENDING,
            "callback_pending_since": now,
            "callback_due_at": now,
        }
    return _change(
        export, now, lease_owner=None, lease_until=None, token_ciphertext=None, **callback, **changes
    )


def complete(export: Export, now: dt.datetime, **changes: Any) -> Export:
    return _finish(export, now, status=Status.COMPLETED, **changes)


def fail(export: Export, code: Failure, message: str, now: dt.datetime) -> Export:
    return _finish(
        export,
        now,
        status=Status.FAILED,
        error_code=code,
        error_message=message,
    )


def cancel(export: Export, now: dt.datetime, ml_status: str | None = None) -> Export:
    """Cancelled for good: nothing the ML service reports later changes it (the real service's
    monitor overwrites its own `canceled` with `running`, then `completed`)."""
    return _finish(export, now, status=Status.CANCELLED, ml_status=ml_status or export.ml_status)


# -- callbacks -----------------------------------------------------------------------------


def callback_is_due(export: Export, now: dt.datetime) -> bool:
    return (
        export.callback_state == CallbackState.PENDING
        and (export.callback_due_at is None or export.callback_due_at <= now)
        and not (export.callback_lease_until is not None and export.callback_lease_until > now)
    )


def start_callback_attempt(export: Export, now: dt.datetime, lease: dt.timedelta) -> Export:
    """Take the callback for one attempt (ETag-checked by the store: one sender at a time)."""
    if not callback_is_due(export, now):
        raise InvalidTransition("the callback is not due")
    return dataclasses.replace(
        export, callback_attempts=export.callback_attempts + 1, callback_lease_until=now + lease
    )


def record_callback_attempt(
    export: Export,
    now: dt.datetime,
    *,
    status: int | None,
    error: str | None,
    retry_at: dt.datetime | None,
) -> Export:
    """The outcome of one attempt: delivered on a 2xx; else due again at `retry_at`, or given up
    when there is none."""
    if export.callback_state != CallbackState.PENDING:
        return export
    delivered = status is not None and 200 <= status < 300
    state = (
        CallbackState.DELIVERED
        if delivered
        else (CallbackState.PENDING if retry_at is not None else CallbackState.GAVE_UP)
    )
    return dataclasses.replace(
        export,
        callback_state=state,
        callback_last_status=status,
        callback_last_error=None if delivered else error,
        callback_lease_until=None,
        callback_due_at=retry_at if state == CallbackState.PENDING else None,
        callback_delivered_at=now if delivered else None,
        # The receiver's token is needed no longer once delivery is over.
        callback_token=export.callback_token if state == CallbackState.PENDING else None,
    )


def to_resource(export: Export, external_url: str, results_csv_url: str | None = None) -> dict[str, Any]:
    """The contract's Export JSON (every key present, null when unknown). `results_csv_url` is
    minted by the caller (a short-lived SAS) when the export has a results CSV."""
    manifest = None
    if export.manifest_blob is not None:
        manifest = {
            "subjects": export.manifest_subjects,
            "images": export.manifest_images,
            "skipped_frames": export.manifest_skipped,
            "blob": export.manifest_blob,
        }
    error = None
    if export.status == Status.FAILED:
        error = {"code": export.error_code or Failure.INTERNAL_ERROR, "message": export.error_message or ""}
    resource = {
        "id": export.id,
        "project_id": export.project_id,
        "subject_set_id": export.subject_set_id,
        "status": export.status,
        "created_at": iso(export.created_at),
        "updated_at": iso(export.updated_at),
        "requested_by": export.requested_by,
        "progress": {"subjects_done": export.subjects_done, "subjects_total": export.subjects_total},
        "manifest": manifest,
        "ml_task_id": export.ml_task_id,
        "ml_status": export.ml_status,
        "ml_message": export.ml_message,
        "results_url": export.results_url,
        "subject_assistant_url": (external_url + export.ml_task_id) if export.ml_task_id else None,
        "error": error,
        "results_summary": export.summary,
        "rerun_of": export.rerun_of,
        "rerun_images": export.rerun_images if export.status == Status.COMPLETED else None,
        "results_csv_url": results_csv_url if export.results_csv_blob else None,
        "callback": _callback_resource(export),
    }
    # The contract's keys, declared once (exports/contract.py): exactly these, in that order.
    return (
        {key: resource[key] for key in EXPORT_KEYS}
        if resource.keys() == set(EXPORT_KEYS)
        else _mismatch(resource)
    )


def _mismatch(resource: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError(f"to_resource and EXPORT_KEYS disagree: {sorted(set(resource) ^ set(EXPORT_KEYS))}")


def _callback_resource(export: Export) -> dict[str, Any] | None:
    if export.callback_url is None:
        return None
    return {
        "url": export.callback_url.split("?", 1)[0].split("#", 1)[0],  # a query may hold a secret
        "state": export.callback_state,  # null until the export is final
        "attempts": export.callback_attempts,
        "last_status": export.callback_last_status,
        "last_error": export.callback_last_error,
        "delivered_at": iso(export.callback_delivered_at),
    }
