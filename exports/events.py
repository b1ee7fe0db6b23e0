"""The export's ids as log dimensions, and the events operators query (docs/OPERATIONS.md).

`context(export)` is entered where an export is handled (the API's handle, the worker, the poll
tick per export): everything logged inside carries `export_id`, `project_id`,
`subject_set_id` and, once known, `ml_task_id` as custom dimensions (shared/telemetry.py).
`recorded(before, after)` is called by the store for every write that changes an export's
status, so each transition is logged once, wherever it was decided, with the figures the
runbook's queries read (`event`, `status`, `error_code`, durations in seconds).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from exports import model
from exports.contract import Status
from shared import telemetry

log = logging.getLogger(__name__)

CREATED, STATUS_CHANGED, FINISHED = "export_created", "export_status_changed", "export_finished"
POISONED, POLL_TICK = "export_poisoned", "poll_tick"
CALLBACK_ATTEMPT = "callback_attempt"


def ids(export_id: str | None, ml_task_id: str | None = None) -> dict[str, str | None]:
    """The dimensions of an export id (its project and subject set are part of it); nothing
    for an id that is not well formed (it came from outside)."""
    parsed = model.parse_export_id(export_id)
    if parsed is None:
        return {}
    return {
        "export_id": export_id,
        "project_id": parsed[0],
        "subject_set_id": parsed[1],
        "ml_task_id": ml_task_id,
    }


@contextlib.contextmanager
def context(export: model.Export | str) -> Iterator[None]:
    """Log everything inside with the export's ids."""
    if isinstance(export, str):
        with telemetry.log_context(**ids(export)):
            yield
        return
    with telemetry.log_context(**ids(export.id, export.ml_task_id)):
        yield


def _seconds(start: Any, end: Any) -> float | None:
    return round((end - start).total_seconds(), 3) if start is not None and end is not None else None


def fields(before: model.Export | None, after: model.Export) -> dict[str, Any]:
    """The event a stored change makes, or {} when its status did not change."""
    if before is not None and before.status == after.status:
        return {}
    event = CREATED if before is None else FINISHED if after.is_final else STATUS_CHANGED
    found: dict[str, Any] = {
        "event": event,
        "status": after.status,
        "previous_status": before.status if before is not None else None,
        "error_code": after.error_code if after.status == Status.FAILED else None,
        "ml_status": after.ml_status,
        "seconds_since_created": _seconds(after.created_at, after.updated_at),
        "seconds_to_submission": _seconds(after.created_at, after.submitted_at),
        "seconds_since_submission": _seconds(after.submitted_at, after.updated_at),
        "subjects": after.manifest_subjects,
        "images": after.manifest_images,
        "retries": after.retries,
    }
    return {key: value for key, value in found.items() if value is not None}


def recorded(before: model.Export | None, after: model.Export) -> None:
    """Log the status change a write just stored (nothing when the status stayed)."""
    extra = fields(before, after)
    if not extra:
        return
    with context(after):
        if after.status == Status.FAILED:
            log.warning("export %s failed: %s", after.id, after.error_code, extra=extra)
        else:
            log.info("export %s is %s", after.id, after.status, extra=extra)
