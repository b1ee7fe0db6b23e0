"""The job status table and what writes it: each task's status, its scripted plan, and the
monitor checks that move it.

In the deployed service only its own threads write a job's status (create_batch_job() while it
lists and submits, monitor_batch_job() every MONITOR_PERIOD_MINUTES, cancel_request() on a
cancel); GET /task only reads it. Here each task walks a scripted plan of statuses, one step per
monitor check (`TaskTable.monitor_check`), which the service runs on its own pace or a test runs
by hand. Reading a status never moves a task.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import listing, real
from .listing import Submission


@dataclass
class Task:
    request_id: str
    body: dict
    plan: list  # steps: "status", ("status", message) or a callable(task) that writes itself
    failure_rate: float
    failed_shards: int
    shard_size: int
    access_failure_rate: float = 0.0
    pos: int = 0
    status: str = "created"
    message: Any = real.CREATED_MSG
    last_updated: str = field(default_factory=real.utc_now)
    images: list | None = None  # manifest rows that survived filtering
    image_indices: list[int] | None = None  # their indices in the manifest as sent (None: 0..n-1)
    downloaded: threading.Event = field(default_factory=threading.Event)
    # Keys the real job status keeps once the Batch job is submitted
    num_tasks: int | None = None
    num_images: int | None = None
    running_checks: int = 0  # the monitor thread's num_checks
    succeeded_reported: int = 0  # S of the last "Check number"/"Submitted" message
    # Submission problem: nothing moves the job any more
    frozen: bool = False
    pending_submission_error: str | None = None
    batch_job_exists: bool = True
    batch_terminated: bool = False
    monitor_outlives_cancel: bool = False
    aggregating: Callable[[Task], None] | None = None  # set between the max-cycles problem and completed
    shards_done_at_cancel: int | None = None
    # The aggregated file (read by blob_store.py)
    results_ready: bool = False
    completion_time: str | None = None
    kept_count: int | None = None  # shards 0..k-1 succeeded (cancel / max cycles); None: all but failed
    failed_rows: frozenset[int] = frozenset()  # row indices written as "Failure inference"
    missing_rows: frozenset[int] = frozenset()  # row indices left out of the file
    extra_rows: tuple[str, ...] = ()  # JSON of rows the file holds that the manifest did not
    results_images: int | None = None
    results_frames: int = 3  # frames a synthetic subject
    results_url: str | None = None
    results_mode: str | None = None
    results_bytes: int | None = None
    results_chunked: bool = False
    drip_interval: float = 0.5
    drip_max_seconds: float = 120.0
    length_cache: dict = field(default_factory=dict)

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(len(self.images or []) / self.shard_size))

    @property
    def model_version(self) -> Any:
        version = self.body.get("model_version", "")
        return real.DEFAULT_MODEL_VERSION if version == "" else version

    def row_index(self, position: int) -> int:
        """The manifest index of the image at `position` in the filtered list."""
        return position if self.image_indices is None else self.image_indices[position]


class Rules(Protocol):
    """What the service decides for every task (see MlServiceStandIn)."""

    @property
    def legacy_models_fail(self) -> bool: ...

    @property
    def cancel_overwritten(self) -> bool: ...

    def results_url(self, t: Task) -> str: ...


class TaskTable:
    """The tasks by request id, and every write to them. Hold `lock` around any use."""

    def __init__(self, rules: Rules):
        self.rules = rules
        self.tasks: dict[str, Task] = {}
        self.lock = threading.RLock()

    def get(self, request_id: str) -> Task:
        return self.tasks[request_id]

    # -- create_batch_job() ------------------------------------------------------------
    def run_job_thread(self, task: Task, sub: Submission, timeout: float, rng: random.Random) -> None:
        """The thread the POST starts: read the image list, validate and filter it."""
        try:
            image_paths = listing.download(str(task.body.get("images_requested_json_sas")), sub, timeout)
            listed = listing.list_images(task.body, image_paths, rng)
        except Exception as e:
            sub.error = real.PREPARE_ERROR + str(e)
            listed = ("failed", sub.error)
        with self.lock:  # the event is set under the lock: test controls see a consistent task
            try:
                if isinstance(listed, tuple):  # nothing will be submitted: the job ends here
                    task.plan, task.pos = [listed], 0
                    self.apply(task, *listed)
                else:
                    task.images, task.image_indices = listed.rows, listed.indices
                    if task.status == "created":
                        self.write(task, "created", real.listed_message(len(listed.rows)))
                        self._submit_if_doomed(task)
            finally:
                task.downloaded.set()

    def _submit_if_doomed(self, t: Task) -> None:
        """Submissions that fail right after listing, as the real thread goes straight on."""
        if t.pending_submission_error is not None:
            self.fail_submission(t, t.pending_submission_error)
        elif not isinstance(t.model_version, str):
            # MD_VERSIONS_TO_REL_PATH[3] -> KeyError(3): str() is "3"; no Batch job yet
            t.batch_job_exists = False
            self.fail_submission(t, str(KeyError(t.model_version)))

    def fail_submission(self, t: Task, error: str) -> None:
        t.frozen = True
        t.plan, t.pos = [("problem", real.SUBMIT_ERROR + error)], 0
        self.write(t, "problem", real.SUBMIT_ERROR + error)

    # -- the monitor -------------------------------------------------------------------
    def monitor_check(self, request_id: str | None = None) -> list[str]:
        """One monitor check of every task (or of one): each live task takes its plan's next
        step. The ids of the tasks that moved."""
        with self.lock:
            tasks = list(self.tasks.values()) if request_id is None else [self.tasks[request_id]]
            moved = []
            for t in tasks:
                if self._may_advance(t):
                    self._advance(t)
                    moved.append(t.request_id)
            return moved

    def _may_advance(self, t: Task) -> bool:
        # The plan only moves once the manifest is in, as the real job stays "created" while
        # it lists images; a submission problem never moves; final statuses end the plan
        # unless the monitor outlives a cancel.
        if not t.downloaded.is_set() or t.frozen or t.pos + 1 >= len(t.plan):
            return False
        return t.status not in real.FINAL or t.monitor_outlives_cancel

    def _advance(self, t: Task) -> None:
        t.pos += 1
        step = t.plan[t.pos]
        if callable(step):
            step(t)
        else:
            status, message = (step, None) if isinstance(step, str) else step
            self.apply(t, status, message)

    @staticmethod
    def monitor_alive(t: Task) -> bool:
        """Whether the real service would have a monitor thread (named job_<id>) for the task."""
        if t.num_tasks is None or t.frozen:
            return False
        if t.status in ("running", "problem"):
            return t.status == "running" or not t.results_ready  # a `problem` after aggregating has no thread
        return t.monitor_outlives_cancel and not t.results_ready

    def active_jobs(self) -> int:
        """Batch jobs that count against the account's quota."""
        return sum(1 for t in self.tasks.values() if t.status not in real.FINAL and not t.batch_terminated)

    def monitored_jobs(self) -> list[str]:
        return sorted(t.request_id for t in self.tasks.values() if self.monitor_alive(t))

    # -- scripts -----------------------------------------------------------------------
    def set_plan(self, t: Task, steps: list) -> None:
        t.plan, t.pos = [(t.status, t.message)] + list(steps), 0
        t.monitor_outlives_cancel = False

    def set_status(self, t: Task, status: str, message: Any = None) -> None:
        t.frozen, t.monitor_outlives_cancel, t.pending_submission_error = False, False, None
        t.plan, t.pos = [(status, message)], 0
        self.apply(t, status, message)

    def script_submission_problem(self, t: Task, error: str, batch_job_exists: bool) -> None:
        if t.num_tasks is not None:
            raise ValueError("the job was already submitted; a submission problem comes before")
        t.batch_job_exists = batch_job_exists
        if not t.downloaded.is_set():
            t.pending_submission_error = error  # applied once the image list is read
        elif t.images and t.status == "created":
            self.fail_submission(t, error)
        else:
            raise ValueError(f"the job ended before its submission ({t.status})")

    def script_max_cycles(self, t: Task, running_checks: int, succeeded_shards: int | None) -> None:
        t.plan, t.pos = (
            [(t.status, t.message)] + self._max_cycles_steps(t, running_checks, succeeded_shards),
            0,
        )
        t.monitor_outlives_cancel = False

    def _max_cycles_steps(self, t: Task, running_checks: int, succeeded_shards: int | None) -> list:
        def steps_for(task: Task) -> tuple[int, int]:
            shards = task.num_shards
            failed = min(self.dropped_shards(task), shards - 1)
            succeeded = shards - 1 - failed if succeeded_shards is None else min(succeeded_shards, shards - 1)
            failed = min(failed, shards - 1 - succeeded)  # one shard stays unfinished
            return succeeded, failed

        def check(number: int) -> Callable[[Task], None]:
            return lambda task: self._write_check(task, number, *steps_for(task))

        def give_up(task: Task) -> None:
            self.submit(task)
            task.running_checks = real.MAX_MONITOR_CYCLES + 1
            task.aggregating = aggregate  # the thread left its loop: a cancel now cannot add a check
            self.write(task, "problem", real.max_cycles_message(task.running_checks, steps_for(task)[0]))

        def aggregate(task: Task) -> None:
            succeeded, failed = steps_for(task)
            task.aggregating = None
            self._write_completed(task, succeeded, failed)

        running_checks = max(0, min(running_checks, real.MAX_MONITOR_CYCLES))
        first = real.MAX_MONITOR_CYCLES + 1 - running_checks
        return [check(n) for n in range(first, real.MAX_MONITOR_CYCLES + 1)] + [give_up, aggregate]

    # -- cancel_request() --------------------------------------------------------------
    def terminate(self, t: Task) -> None:
        """Batch terminates the job and `canceled` is written; the monitor may still be alive."""
        monitor_alive = self.monitor_alive(t)
        t.batch_terminated = True
        self.write(t, "canceled", real.CANCELED_MSG)
        if not (monitor_alive and self.rules.cancel_overwritten):
            t.plan, t.pos, t.monitor_outlives_cancel = [("canceled", real.CANCELED_MSG)], 0, False
            return
        if t.aggregating is not None:  # after the MAX_MONITOR_CYCLES problem: completed comes next
            t.plan, t.pos, t.monitor_outlives_cancel = (
                [("canceled", real.CANCELED_MSG), t.aggregating],
                0,
                True,
            )
            return
        shards = t.num_shards
        done = t.succeeded_reported if t.shards_done_at_cancel is None else t.shards_done_at_cancel
        done = max(0, min(done, shards))
        number = t.running_checks + 1
        t.plan = [
            ("canceled", real.CANCELED_MSG),
            lambda task: self._write_check(task, number, done, shards - done),
            lambda task: self._write_completed(task, done, shards - done),
        ]
        t.pos, t.monitor_outlives_cancel = 0, True

    # -- writing statuses --------------------------------------------------------------
    def write(self, t: Task, status: str, message: Any) -> None:
        """update_job_status(): every write refreshes last_updated."""
        t.status, t.message, t.last_updated = status, message, real.utc_now()

    def submit(self, t: Task) -> None:
        """The Batch job and its tasks exist from now on: num_tasks/num_images join the status."""
        if t.num_tasks is None:
            t.num_tasks, t.num_images = t.num_shards, len(t.images or [])
            t.running_checks = 0

    def dropped_shards(self, t: Task) -> int:
        """Shards that fail whole (the last ones) when the job runs to its end."""
        shards = t.num_shards
        if self.rules.legacy_models_fail and t.model_version != real.DEFAULT_MODEL_VERSION:
            return shards
        return min(t.failed_shards, shards)

    def failed_shard_count(self, t: Task) -> int:
        """num_failed_shards when the job runs to its end: the dropped shards, and the shards
        that held a row chosen to go missing (the rows of a synthetic file are in no shard)."""
        shards, dropped = t.num_shards, self.dropped_shards(t)
        failed = set(range(shards - dropped, shards))
        if t.missing_rows and t.images and t.results_images is None:
            if t.image_indices is None:
                positions: Any = (i for i in t.missing_rows if i < len(t.images))
            else:
                positions = (p for p, i in enumerate(t.image_indices) if i in t.missing_rows)
            failed.update(p // t.shard_size for p in positions)
        return len(failed)

    def apply(self, t: Task, status: str, message: Any = None) -> None:
        """A plan step or set_status(): the real service's wording unless a message is given."""
        implies_batch_job = status in ("running", "problem") or (
            status == "completed" and (message is None or isinstance(message, dict))
        )
        if implies_batch_job and t.images and t.num_tasks is None:
            self.submit(t)
            if status == "running" and message is None:
                t.succeeded_reported = 0
                assert t.num_images is not None and t.num_tasks is not None
                return self.write(t, status, real.submitted_message(t.num_images, t.num_tasks))
        failed = self.failed_shard_count(t)
        succeeded = t.num_shards - failed
        if status == "running" and message is None:
            return self._write_check(t, t.running_checks + 1, succeeded, failed)
        if status == "problem" and message is None:
            t.running_checks += 1
            return self.write(t, "problem", real.max_cycles_message(t.running_checks, succeeded))
        if status == "completed" and (message is None or isinstance(message, dict)):
            return self._write_completed(t, None, failed, message)
        if status in ("running", "problem"):
            t.running_checks += 1
        defaults = {
            "created": real.CREATED_MSG,
            "canceled": real.CANCELED_MSG,
            "failed": real.PREPARE_ERROR + "emulated failure",
        }
        self.write(t, status, defaults.get(status) if message is None else message)

    def _write_check(self, t: Task, number: int, succeeded: int, failed: int) -> None:
        self.submit(t)
        t.running_checks, t.succeeded_reported = number, succeeded
        assert t.num_tasks is not None
        self.write(t, "running", real.check_message(number, succeeded, t.num_tasks, failed))

    def _write_completed(
        self, t: Task, kept_count: int | None, num_failed: int, message: dict | None = None
    ) -> None:
        """aggregate_results() then `completed`; the file is fixed from now on."""
        t.kept_count = kept_count
        t.results_ready = True
        t.completion_time = real.utc_now()
        if message is None:
            message = {
                "num_failed_shards": num_failed,
                "output_file_urls": {"detections": self.rules.results_url(t)},
            }
        self.write(t, "completed", message)

    @staticmethod
    def status_dict(t: Task, with_num_tasks: bool) -> dict:
        status = {"request_status": t.status, "message": t.message}
        if t.num_tasks is not None and with_num_tasks:
            status["num_tasks"] = t.num_tasks
        if t.num_images is not None:
            status["num_images"] = t.num_images
        return status
