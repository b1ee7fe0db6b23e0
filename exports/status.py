"""Pure mapping from what the ML service says about a task to the export's next state,
and the results summary of a detections file. No I/O."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from exports import model
from exports.model import Export

NOT_FOUND = object()  # the service answered 404 for the task


@dataclasses.dataclass(frozen=True)
class PollRules:
    deadline: dt.timedelta          # ML_TASK_DEADLINE_DAYS after submission
    not_found_ticks: int            # consecutive 404s before giving up


def message_text(message: Any) -> str | None:
    if message is None:
        return None
    if isinstance(message, str):
        return message
    return json.dumps(message, sort_keys=True)


def detections_url(message: Any) -> str | None:
    if isinstance(message, dict):
        urls = message.get("output_file_urls")
        if isinstance(urls, dict) and isinstance(urls.get("detections"), str):
            return urls["detections"]
    return None


def next_state(export: Export, answer: Any, now: dt.datetime, rules: PollRules) -> Export:
    """The export after one poll. `answer` is a TaskStatus(status, message) or NOT_FOUND.
    Returns the export unchanged when nothing changes (the caller then skips the write)."""
    if export.is_final or export.status not in model.ML_ACTIVE_STATUSES:
        return export
    change = dataclasses.replace
    if answer is NOT_FOUND:
        seen = export.ml_not_found + 1
        if seen >= rules.not_found_ticks:
            return model.fail(change(export, ml_not_found=seen), "ml_task_not_found",
                              f"The ML service no longer knows task {export.ml_task_id} "
                              f"(not found {seen} times in a row).", now)
        updated = change(export, ml_not_found=seen, updated_at=now)
        return _deadline(updated, now, rules)

    status, message = answer.status, answer.message
    text = message_text(message)
    base = change(export, ml_status=status if status in _ML_STATUSES else export.ml_status,
                  ml_message=text, ml_not_found=0)
    if status == "created":
        result = change(base, status=model.SUBMITTED)
    elif status in ("running", "problem"):
        # "problem" is not final: the service restarts stale jobs and gives up after 4 weeks.
        result = change(base, status=model.RUNNING)
    elif status == "completed":
        url = detections_url(message)
        if url is None:
            reason = text if isinstance(message, str) else "it returned no detections file"
            return model.fail(base, "ml_no_results", f"The ML service finished with no results: "
                              f"{reason}", now)
        return change(base, status=model.COMPLETED, results_url=url, updated_at=now,
                      lease_owner=None, lease_until=None, token_ciphertext=None)
    elif status == "failed":
        return model.fail(base, "ml_failed", f"The ML service failed the task: {text or 'no reason given'}", now)
    elif status == "canceled":
        return model.cancel(base, now)
    else:
        result = base  # unknown status word: record the message, keep polling
    if result == export:
        return _deadline(export, now, rules)
    return _deadline(change(result, updated_at=now), now, rules)


_ML_STATUSES = frozenset({"created", "running", "problem", "completed", "failed", "canceled"})


def _deadline(export: Export, now: dt.datetime, rules: PollRules) -> Export:
    started = export.submitted_at or export.created_at
    if not export.is_final and now - started > rules.deadline:
        days = rules.deadline.total_seconds() / 86400
        return model.fail(export, "deadline_exceeded", f"The ML task did not finish within "
                          f"{days:g} days of submission; the ML service has given up on it.", now)
    return export


def summarize_detections(detections: Any, images_submitted: int | None, threshold: float,
                         failed_shards: Any = None) -> dict:
    """Counts for the Export's results_summary. Raises ValueError for an unreadable file."""
    if not isinstance(detections, dict) or not isinstance(detections.get("images"), list):
        raise ValueError("the detections file has no images list")
    returned = failed = likely_empty = 0
    files = set()
    for image in detections["images"]:
        if not isinstance(image, dict):
            continue
        returned += 1
        files.add(image.get("file"))
        if "failure" in image:
            failed += 1
            continue
        confidence = image.get("max_detection_conf")
        if not isinstance(confidence, (int, float)):
            detections_list = image.get("detections") or []
            confidence = max((d.get("conf", 0) for d in detections_list if isinstance(d, dict)),
                             default=0)
        if confidence < threshold:
            likely_empty += 1
    submitted = images_submitted if images_submitted is not None else returned
    return {
        "available": True,
        "images_submitted": submitted,
        "images_returned": returned,
        "images_failed": failed,
        "images_missing": max(submitted - len(files), 0),
        "images_likely_empty": likely_empty,
        "likely_empty_threshold": threshold,
        "failed_shards": failed_shards if isinstance(failed_shards, int) else None,
    }


def summary_unavailable(reason: str) -> dict:
    return {"available": False, "reason": reason}
