"""The timer's tick: poll every active ML task, recover stuck exports. Cost follows active work.

A tick reads every active export in one range query over the active rows (not the export
history), asks the ML service about each on a bounded thread pool (one slow or failing task
never delays or breaks the others) and writes the changes back in batched transactions while
later answers are still coming in. Every write is ETag-checked against the active row, so
overlapping ticks, workers and cancels can never apply a transition twice: a write that lost
the race is skipped until the next tick.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import threading
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


READ_PAGE = 100  # active rows per read round trip: polling starts on the first page
WRITE_BATCH = 100  # exports handed to the writer at once (one transaction, two if some end)


class _TickWriter:
    """Writes a tick's changes on one background thread while the polls go on, WRITE_BATCH
    exports at a time, so the tick ends about one transaction after its last answer."""

    def __init__(self, services: Services):
        self._store = services.store
        self._lock = threading.Lock()
        self._pending: list[tuple[Versioned, model.Export]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "poll-writes")
        self._batches: list[concurrent.futures.Future] = []
        self.changes = 0

    def add(self, current: Versioned, updated: model.Export) -> None:
        with self._lock:
            self._pending.append((current, updated))
            self.changes += 1
            if len(self._pending) >= WRITE_BATCH:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._batches.append(self._pool.submit(self._store.update_many, self._pending))
            self._pending = []

    def finish(self) -> int:
        """Write what is left, wait for every batch; how many exports were written."""
        with self._lock:
            self._flush()
        try:
            return sum(batch.result() for batch in self._batches)
        finally:
            self._pool.shutdown(wait=True)


def _poll_and_record(services: Services, current: Versioned, writes: _TickWriter) -> str:
    """Poll one export and queue its change for writing; returns the outcome to count."""
    current, updated = _poll(services, current)
    if updated is None:
        return "ml_unavailable"
    if updated == current.export:
        return "unchanged"
    writes.add(current, updated)
    if updated.status != current.export.status:
        log.info("export %s (project %s, subject set %s): %s -> %s (ML %s)", updated.id,
                 updated.project_id, updated.subject_set_id, current.export.status,
                 updated.status, updated.ml_status)
    return updated.status


def run_tick(services: Services) -> TickReport:
    """Read the active exports page by page, poll each ML-side one as soon as it is read, and
    write the changes while later polls are still waiting for answers."""
    report = TickReport()
    writes = _TickWriter(services)
    futures = []
    try:
        with concurrent.futures.ThreadPoolExecutor(services.settings.ml_poll_concurrency,
                                                   "ml-poll") as pool:
            for current in services.store.active_exports(page_size=READ_PAGE):
                report.active += 1
                if current.export.status in model.ML_ACTIVE_STATUSES:
                    futures.append(pool.submit(_poll_and_record, services, current, writes))
                else:
                    report.outcomes[_safely(recover_if_stuck, services, current)] += 1
            for future in concurrent.futures.as_completed(futures):
                try:
                    report.outcomes[future.result()] += 1
                except Exception:
                    log.exception("poll failed")
                    report.outcomes["error"] += 1
    finally:
        written = writes.finish()
    report.outcomes["skipped_changed"] += writes.changes - written
    log.info("poll tick: %d active, %s", report.active, dict(report.outcomes))
    return report


def _safely(function, *args) -> str:
    try:
        return function(*args)
    except Exception:
        log.exception("stuck-export check failed")
        return "error"
