"""The timer's tick: poll every active ML task, recover stuck exports. Cost follows active work.

A tick reads the active index (not the export history), then handles each active export on a
bounded thread pool; one slow or failing export never delays or breaks the others. Every
write is ETag-checked, so overlapping ticks cannot apply a transition twice.
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
from shared.store import ConcurrentUpdate

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TickReport:
    active: int = 0
    outcomes: Counter = dataclasses.field(default_factory=Counter)


def _rules(services: Services) -> status_map.PollRules:
    s = services.settings
    return status_map.PollRules(deadline=dt.timedelta(days=s.ml_task_deadline_days),
                                not_found_ticks=s.ml_not_found_ticks)


def apply_status(services: Services, export: model.Export, etag: str, answer) -> model.Export:
    """Record one poll answer (TaskStatus or status_map.NOT_FOUND); returns the stored export."""
    now = services.clock()
    updated = status_map.next_state(export, answer, now, _rules(services))
    if updated == export:
        return export
    if updated.status == model.COMPLETED and export.status != model.COMPLETED:
        updated = dataclasses.replace(updated, summary=_summary(services, updated, answer))
    try:
        services.store.update(updated, etag)
    except ConcurrentUpdate:
        log.info("export %s: changed during the poll; the next tick looks again", export.id)
        return export
    if updated.status != export.status:
        log.info("export %s (project %s, subject set %s): %s -> %s (ML %s)", export.id,
                 export.project_id, export.subject_set_id, export.status, updated.status,
                 updated.ml_status)
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


def poll_export(services: Services, export_id: str) -> str:
    """Handle one active export; returns a word for the tick's report."""
    current = services.store.get(export_id)
    if current is None:
        return "missing"
    export = current.export
    if export.is_final:
        services.store.drop_stale_marker(export.id, export.project_id, export.subject_set_id)
        return "stale_index"
    if export.status in model.ML_ACTIVE_STATUSES:
        try:
            answer = services.ml.status(export.ml_task_id)
        except MlTaskNotFound:
            answer = status_map.NOT_FOUND
        except MlError as exc:
            # Unreachable or 5xx: leave the export as it is until the next tick.
            log.warning("export %s: ML status unavailable: %s", export.id, exc)
            return "ml_unavailable"
        updated = apply_status(services, export, current.etag, answer)
        return updated.status
    return recover_if_stuck(services, current)


def recover_if_stuck(services: Services, current) -> str:
    export, now = current.export, services.clock()
    threshold = dt.timedelta(minutes=services.settings.stuck_export_minutes)
    if not model.is_stuck(export, now, threshold):
        return export.status
    try:
        if export.requeued:
            services.store.update(model.fail(
                export, "internal_error", "The export stopped making progress twice (its worker "
                "disappeared). Please export again.", now), current.etag)
            log.error("export %s: stuck again after a re-queue; failed", export.id)
            return "failed_stuck"
        services.store.update(model.mark_requeued(export, now), current.etag)
    except ConcurrentUpdate:
        return "changed"
    services.enqueue(export.id, export.token_ciphertext)
    log.warning("export %s: stuck in %s; re-queued once", export.id, export.status)
    return "requeued"


def run_tick(services: Services) -> TickReport:
    ids = services.store.active_export_ids()
    report = TickReport(active=len(ids))
    if not ids:
        return report
    workers = min(services.settings.ml_poll_concurrency, len(ids))
    with concurrent.futures.ThreadPoolExecutor(workers, "ml-poll") as pool:
        futures = {pool.submit(poll_export, services, export_id): export_id for export_id in ids}
        for future in concurrent.futures.as_completed(futures):
            try:
                report.outcomes[future.result()] += 1
            except Exception:
                log.exception("export %s: poll failed", futures[future])
                report.outcomes["error"] += 1
    log.info("poll tick: %d active, %s", report.active, dict(report.outcomes))
    return report
