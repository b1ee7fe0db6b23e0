"""Recording what the ML service says about a task: the pure transition (exports/ml_status.py) plus,
the first time an export completes, the summary of its detections file. Used by the poll tick
and by the API's cancel, which must record an answer exactly as the poller would."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from exports import completion, ml_status, model, results
from exports.contract import Status
from exports.ml_service import TaskStatus
from exports.services import Services
from exports.store import ConcurrentUpdate, Versioned

log = logging.getLogger(__name__)


def poll_rules(services: Services) -> ml_status.PollRules:
    s = services.settings
    return ml_status.PollRules(
        deadline=dt.timedelta(days=s.ml_task_deadline_days),
        not_found_ticks=s.ml_not_found_ticks,
        problem_ticks=s.ml_problem_ticks,
        results=s.results_policy,
    )


def next_state(services: Services, export: model.Export, answer: Any) -> model.Export:
    """The export after one poll answer (TaskStatus or ml_status.NOT_FOUND), summary included."""
    updated = ml_status.next_state(export, answer, services.clock(), poll_rules(services))
    if updated.status == Status.COMPLETED and export.status != Status.COMPLETED:
        if updated.results_url is None and updated.summary is not None:
            log.warning("export %s: results link not followed: %s", export.id, _reported_url(answer))
        elif updated.summary is None:
            updated = completion.account(services, updated, answer)
    return updated


def record(services: Services, current: Versioned, answer: Any) -> model.Export:
    """Record one poll answer now; returns the export as stored (unchanged when the export
    changed meanwhile: the next poll looks again)."""
    export = current.export
    updated = next_state(services, export, answer)
    if updated == export:
        return export
    try:
        services.store.update(updated, current)
    except ConcurrentUpdate:
        log.info("export %s: changed during the poll; the next tick looks again", export.id)
        return export
    return updated  # the store logged the change (exports/events.py)


def _reported_url(answer: Any) -> str:
    url = ml_status.detections_url(answer.message) if isinstance(answer, TaskStatus) else None
    return results.describe(url) if url else "(none)"
