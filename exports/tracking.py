"""Recording what the ML service says about a task: the pure transition (exports/ml_status.py) plus,
the first time an export completes, the summary of its detections file. Used by the poll tick
and by the API's cancel, which must record an answer exactly as the poller would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from exports import ml_status, model, results
from exports.ml_service import ResultsUnreadable, TaskStatus
from exports.services import Services
from exports.store import ConcurrentUpdate, Versioned

log = logging.getLogger(__name__)


def poll_rules(services: Services) -> ml_status.PollRules:
    s = services.settings
    return ml_status.PollRules(
        deadline=dt.timedelta(days=s.ml_task_deadline_days),
        not_found_ticks=s.ml_not_found_ticks,
        problem_ticks=s.ml_problem_ticks,
        results=results.ResultsPolicy(s.results_allowed_hosts, results.origin_of(s.ml_service_url)),
    )


def next_state(services: Services, export: model.Export, answer: Any) -> model.Export:
    """The export after one poll answer (TaskStatus or ml_status.NOT_FOUND), summary included."""
    updated = ml_status.next_state(export, answer, services.clock(), poll_rules(services))
    if updated.status == model.COMPLETED and export.status != model.COMPLETED:
        if updated.results_url is None and updated.summary is not None:
            log.warning("export %s: results link not followed: %s", export.id, _reported_url(answer))
        elif updated.summary is None:
            updated = dataclasses.replace(updated, summary=_summary(services, updated, answer))
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


def _summary(services: Services, export: model.Export, answer: Any) -> dict:
    """Download and summarise the detections file; a file that cannot be read never blocks the
    completion: the summary then says why."""
    settings = services.settings
    threshold = settings.likely_empty_confidence
    failed_shards = (
        answer.message.get("num_failed_shards")
        if isinstance(getattr(answer, "message", None), dict)
        else None
    )
    assert export.results_url is not None  # next_state keeps only a link it will follow
    try:
        with services.ml.results(
            export.results_url,
            settings.results_max_megabytes * 1024 * 1024,
            settings.results_download_seconds,
        ) as stream:
            counts = results.count_images(stream, threshold)
    except ResultsUnreadable as exc:
        log.warning("export %s: results summary unavailable: %s", export.id, exc)
        return results.unavailable(str(exc))
    except ValueError as exc:
        log.warning("export %s: results summary unavailable: %s", export.id, exc)
        return results.unavailable(f"The detections file could not be read: {exc}.")
    except Exception as exc:  # a results file we cannot read must not block completion
        log.exception("export %s: results summary failed", export.id)
        return results.unavailable(f"The detections file could not be read ({type(exc).__name__}).")
    submitted = export.ml_num_images if export.ml_num_images is not None else export.manifest_images
    return results.summary(counts, submitted, threshold, failed_shards)
