"""The timer's tick: poll every active ML task, recover stuck exports. Cost follows active work.

A tick reads every active export from the active index in one range query (not the export
history), asks the ML service about each on a bounded thread pool (one slow or failing task
never delays or breaks the others), then writes the changes back in batched transactions.
Every write is ETag-checked against the index row, so overlapping ticks, workers and cancels
can never apply a transition twice: a write that lost the race is skipped until the next tick.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
from collections import Counter

from exports import model, status as status_map
from exports.ml_service import MlError, MlTaskNotFound, TaskStatus
from exports.services import Services
from shared.store import ConcurrentUpdate, Versioned

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TickReport:
    active: int = 0
    outcomes: Counter = dataclasses.field(default_factory=Counter)


def _rules(services: Services) -> status_map.PollRules:
    s = services.settings
    return status_map.PollRules(deadline=dt.timedelta(days=s.ml_task_deadline_days),
                                not_found_ticks=s.ml_not_found_ticks)


def apply_status(services: Services, current: Versioned, answer) -> model.Export:
    """Record one poll answer (TaskStatus or status_map.NOT_FOUND); returns the stored export."""
    export = current.export
    updated = _next_state(services, export, answer)
    if updated == export:
        return export
    try:
        services.store.update(updated, current)
    except ConcurrentUpdate:
        log.info("export %s: changed during the poll; the next tick looks again", export.id)
        return export
    if updated.status != export.status:
        log.info("export %s (project %s, subject set %s): %s -> %s (ML %s)", export.id,
                 export.project_id, export.subject_set_id, export.status, updated.status,
                 updated.ml_status)
    return updated


def _next_state(services: Services, export: model.Export, answer) -> model.Export:
    """The pure transition, plus the results summary the first time the export completes."""
    updated = status_map.next_state(export, answer, services.clock(), _rules(services))
    if updated.status == model.COMPLETED and export.status != model.COMPLETED:
        updated = dataclasses.replace(updated, summary=_summary(services, updated, answer))
    return updated


def _summary(services: Services, export: model.Export, answer: TaskStatus) -> dict:
    try:
        detections = services.ml.download_json(export.results_url)
        failed_shards = answer.message.get("num_failed_shards") if isinstance(answer.message, dict) else None
        return status_map.summarize_detections(detections, export.manifest_images,
                                               services.settings.likely_empty_confidence,
                                               failed_shards)
    except Exception as exc:  # a results file we cannot read must not block completion
        log.warning("export %s: results summary unavailable: %s", export.id, type(exc).__name__)
        return status_map.summary_unavailable(f"The detections file could not be read "
                                              f"({type(exc).__name__}).")


def _poll(services: Services, current: Versioned) -> tuple[Versioned, model.Export | None]:
    """Ask the ML service about one export; returns it with its next state (None: no answer)."""
    export = current.export
    try:
        answer = services.ml.status(export.ml_task_id)
    except MlTaskNotFound:
        answer = status_map.NOT_FOUND
    except MlError as exc:
        # Unreachable or 5xx: leave the export as it is until the next tick.
        log.warning("export %s: ML status unavailable: %s", export.id, exc)
        return current, None
    return current, _next_state(services, export, answer)


def recover_if_stuck(services: Services, current: Versioned) -> str:
    export, now = current.export, services.clock()
    threshold = dt.timedelta(minutes=services.settings.stuck_export_minutes)
    if not model.is_stuck(export, now, threshold):
        return export.status
    try:
        if export.requeued:
            services.store.update(model.fail(
                export, "internal_error", "The export stopped making progress twice (its worker "
                "disappeared). Please export again.", now), current)
            log.error("export %s: stuck again after a re-queue; failed", export.id)
            return "failed_stuck"
        services.store.update(model.mark_requeued(export, now), current)
    except ConcurrentUpdate:
        return "changed"
    services.enqueue(export.id, export.token_ciphertext)
    log.warning("export %s: stuck in %s; re-queued once", export.id, export.status)
    return "requeued"


def run_tick(services: Services) -> TickReport:
    active = list(services.store.active_exports())
    report = TickReport(active=len(active))
    polled = [v for v in active if v.export.status in model.ML_ACTIVE_STATUSES]
    for current in active:
        if current.export.status not in model.ML_ACTIVE_STATUSES:
            report.outcomes[_safely(recover_if_stuck, services, current)] += 1
    if not polled:
        return report
    changes: list[tuple[Versioned, model.Export]] = []
    workers = min(services.settings.ml_poll_concurrency, len(polled))
    with concurrent.futures.ThreadPoolExecutor(workers, "ml-poll") as pool:
        futures = [pool.submit(_poll, services, current) for current in polled]
        for future in concurrent.futures.as_completed(futures):
            try:
                current, updated = future.result()
            except Exception:
                log.exception("poll failed")
                report.outcomes["error"] += 1
                continue
            if updated is None:
                report.outcomes["ml_unavailable"] += 1
            elif updated == current.export:
                report.outcomes["unchanged"] += 1
            else:
                changes.append((current, updated))
                report.outcomes[updated.status] += 1
                if updated.status != current.export.status:
                    log.info("export %s (project %s, subject set %s): %s -> %s (ML %s)",
                             updated.id, updated.project_id, updated.subject_set_id,
                             current.export.status, updated.status, updated.ml_status)
    written = services.store.update_many(changes)
    report.outcomes["skipped_changed"] += len(changes) - written
    log.info("poll tick: %d active, %s", report.active, dict(report.outcomes))
    return report


def _safely(function, *args) -> str:
    try:
        return function(*args)
    except Exception:
        log.exception("stuck-export check failed")
        return "error"
