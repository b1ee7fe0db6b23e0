"""Pure mapping from what the ML service says about a task to the export's next state. No I/O.

Facts of the deployed service this follows (zooniverse/CameraTraps, branch `zooniverse-deployment`,
api/batch_processing/api_core/; the ML emulator's fidelity notes in standins/ list them with their
source lines):
- `problem` is usually not final: server.py `retrieve_job_status` restarts the monitoring of a stale
  `running`/`problem` job whose stored status has `num_tasks`. server_orchestration.py writes
  `num_tasks` and `num_images` together when the Batch job is submitted and keeps them in every
  later status, and the answer drops only `num_tasks`; so a `problem` answer without `num_images`
  is a job whose submission failed, which never moves again. Such a task fails with ml_failed
  after `problem_ticks` polls; with `num_images` it is polled until the deadline, however long its
  message stays the same.
- A working job's message changes every 10 minutes ("Check number N, ..."), and the service's own
  28-day cap counts from its last (re)start and still ends in `completed`, so the deadline runs
  from the last change of the ML status or message, never from submission.
- The results URL is untrusted: a completed task whose URL fails the results policy completes
  with no `results_url` and a summary that says why (exports/results.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from exports import contract, model, results
from exports.contract import Failure, MlStatus, Status
from exports.model import Export

NOT_FOUND = object()  # the service answered 404 for the task


@dataclasses.dataclass(frozen=True)
class PollRules:
    deadline: dt.timedelta  # ML_TASK_DEADLINE_DAYS since the ML status/message last changed
    not_found_ticks: int  # consecutive 404s before giving up
    problem_ticks: int  # polls in `problem` without num_images (can never move again) before giving up
    results: results.ResultsPolicy  # which detections URLs may be followed


def message_text(message: Any) -> str | None:
    """The service's message as text. A completed task's results link is left out: it carries
    a SAS, and it is shown (as results_url) only when the results policy allows it."""
    if message is None:
        return None
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        message = {k: v for k, v in message.items() if k != "output_file_urls"}
    return json.dumps(message, sort_keys=True)


def detections_url(message: Any) -> str | None:
    if isinstance(message, dict):
        urls = message.get("output_file_urls")
        url = urls.get("detections") if isinstance(urls, dict) else None
        if isinstance(url, str):
            return url
    return None


def next_state(export: Export, answer: Any, now: dt.datetime, rules: PollRules) -> Export:
    """The export after one poll. `answer` is a TaskStatus(status, message, num_images) or
    NOT_FOUND. Returns the export unchanged when nothing changes (the caller skips the write)."""
    if export.is_final or export.status not in contract.ML_ACTIVE_STATUSES:
        return export
    change = dataclasses.replace
    if answer is NOT_FOUND:
        seen = export.ml_not_found + 1
        if seen >= rules.not_found_ticks:
            return model.fail(
                change(export, ml_not_found=seen),
                Failure.ML_TASK_NOT_FOUND,
                f"The ML service no longer knows task {export.ml_task_id} (not found {seen} times in a row).",
                now,
            )
        updated = change(export, ml_not_found=seen, updated_at=now)
        return _deadline(updated, now, rules)

    status, message = answer.status, answer.message
    text = message_text(message)
    ml_status = status if status in _ML_STATUSES else export.ml_status
    changed = (ml_status, text) != (export.ml_status, export.ml_message)
    base = change(
        export,
        ml_status=ml_status,
        ml_message=text,
        ml_not_found=0,
        ml_changed_at=now if changed else export.ml_changed_at,
        ml_same_ticks=0 if changed or status != MlStatus.PROBLEM else export.ml_same_ticks + 1,
        ml_num_images=answer.num_images if answer.num_images is not None else export.ml_num_images,
    )
    if status == MlStatus.CREATED:
        result = change(base, status=Status.SUBMITTED)
    elif (
        status == MlStatus.PROBLEM
        and base.ml_num_images is None
        and base.ml_same_ticks >= rules.problem_ticks
    ):
        # No num_images: the Batch job was never submitted, and the service never restarts it.
        return model.fail(
            base,
            Failure.ML_FAILED,
            f"The ML service could not start the task and will not retry it "
            f"(reported {base.ml_same_ticks + 1} times in a row): {text or 'no reason given'}",
            now,
        )
    elif status in (MlStatus.RUNNING, MlStatus.PROBLEM):
        result = change(base, status=Status.RUNNING)
    elif status == MlStatus.COMPLETED:
        return _completed(base, message, text, now, rules)
    elif status == MlStatus.FAILED:
        return model.fail(
            base, Failure.ML_FAILED, f"The ML service failed the task: {text or 'no reason given'}", now
        )
    elif status == MlStatus.CANCELED:
        # Cancelled at the service by someone else (a cancel through this API is recorded when
        # it is sent). Final here, whatever the service's monitor writes later.
        return model.cancel(base, now)
    else:
        result = base  # unknown status word: record the message, keep polling
    if result == export:
        return _deadline(export, now, rules)
    return _deadline(change(result, updated_at=now), now, rules)


def _completed(export: Export, message: Any, text: str | None, now: dt.datetime, rules: PollRules) -> Export:
    url = detections_url(message)
    if url is None:
        reason = text if isinstance(message, str) else "it returned no detections file"
        return model.fail(
            export, Failure.ML_NO_RESULTS, f"The ML service finished with no results: {reason}", now
        )
    problem = results.url_problem(url, rules.results)
    done = model.complete(export, now)
    if problem is not None:
        return dataclasses.replace(done, results_url=None, summary=results.unavailable(problem))
    return dataclasses.replace(done, results_url=url)


_ML_STATUSES = frozenset(MlStatus)


def _deadline(export: Export, now: dt.datetime, rules: PollRules) -> Export:
    last_change = export.ml_changed_at or export.submitted_at or export.created_at
    if not export.is_final and now - last_change > rules.deadline:
        days = rules.deadline.total_seconds() / 86400
        return model.fail(
            export,
            Failure.DEADLINE_EXCEEDED,
            f"The ML service has reported no change on "
            f"the task for {days:g} days; it is no longer working on it.",
            now,
        )
    return export
