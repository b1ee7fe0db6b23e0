"""Unsticking one export: re-queue it (queued or building, nobody working on it) or fail it.

Both go through the store's conditional write and the model's transitions, as the app's own
stuck-export sweep does (exports/poller.py): a re-queue marks the export re-queued, so if it
gets stuck again the sweep fails it instead of looping.
"""

from __future__ import annotations

import datetime as dt

from exports import model
from exports.contract import Failure, Status
from exports.messages import ExportMessage
from exports.store import Versioned
from ops.connect import Storage

OPERATOR_FAILURE = Failure.INTERNAL_ERROR


class Refused(Exception):
    """The change does not apply to the export as it is now (the message says why)."""


def check_requeue(export: model.Export, now: dt.datetime) -> None:
    if export.is_final:
        raise Refused(f"export {export.id} is already {export.status}: nothing to re-queue")
    if export.status not in (Status.QUEUED, Status.BUILDING):
        raise Refused(
            f"export {export.id} is {export.status}: it is with the ML service and the poll tick "
            "follows it. Re-queueing cannot help; fail it if it must stop."
        )
    if model.lease_is_live(export, now):
        raise Refused(
            f"export {export.id} is being built right now (its lease runs until "
            f"{model.iso(export.lease_until)}): wait for that, then look again."
        )


def requeue(storage: Storage, current: Versioned, now: dt.datetime) -> model.Export:
    """Mark the export re-queued and send its message again (with the sealed token it still
    holds, if its manifest is not built yet)."""

    def change(export: model.Export) -> model.Export:
        check_requeue(export, now)
        return model.mark_requeued(export, now)

    written = storage.store.apply(current, change).export
    storage.queue.send_message(ExportMessage(written.id, written.token_ciphertext).encode())
    return written


def fail(storage: Storage, current: Versioned, reason: str, now: dt.datetime) -> model.Export:
    """Fail an active export with internal_error and a message for its user."""
    message = (
        "The export was stopped by the Zooniverse team"
        + (f": {reason.strip()}" if reason.strip() else "")
        + ". Please export again."
    )

    def change(export: model.Export) -> model.Export:
        if export.is_final:
            raise Refused(f"export {export.id} is already {export.status}")
        return model.fail(export, OPERATOR_FAILURE, message, now)

    return storage.store.apply(current, change).export
