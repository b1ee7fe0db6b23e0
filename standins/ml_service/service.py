"""MlServiceStandIn: the emulator as one HTTP server (the Flask app and the results blob on one
port), its defaults, and the controls tests use beyond HTTP. What it copies from the deployed
service, and what it decides itself: README.md next to this file."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..server import Request, Response, StandInServer, untraced
from . import api, real
from .blob_store import RESULTS_MODES, BlobStore, sas_url
from .listing import Submission
from .tasks import Task, TaskTable

_UNSET: Any = object()


class MlServiceStandIn(StandInServer):
    # The real monitor overwrites `canceled`; False gives an idealised service where it stays.
    cancel_overwritten = True
    # Non-5a models cannot load in score_v5.py: every shard fails (README.md).
    legacy_models_fail = True
    json_content_type = "application/json"

    def __init__(
        self,
        callers: tuple[str, ...] | list[str] = ("zooniverse",),
        latency: float = 0.0,
        seed: int = 0,
        base_path: str = real.API_PREFIX,
        max_active_jobs: int | None = None,
        download_timeout: float = 10.0,
        monitor_seconds: float | None = None,
    ):
        super().__init__(latency=latency, seed=seed)
        self.callers = set(callers)
        self.base_path = base_path.rstrip("/")
        self.max_active_jobs = max_active_jobs  # None: no limit (the real quota is 300)
        self.download_timeout = download_timeout
        # Defaults for tasks created from now on; per task: set_plan()/configure().
        self.default_plan: list = ["created", "running", "completed"]
        self.failure_rate = 0.0  # share of images with "Failure inference"
        self.access_failure_rate = 0.0  # share of images with "Failure image access"
        self.failed_shards = 0
        self.shard_size = real.NUM_IMAGES_PER_TASK
        self.submissions: list[Submission] = []
        self.accepted_count = 0
        self.cancel_calls = 0
        self.status_calls: dict[str, int] = {}
        self.sample_rng = random.Random(seed)
        self.table = TaskTable(self)
        self.blobs = BlobStore(self.table, self._stopping)
        self._pace = threading.Condition()
        self._monitor_seconds = monitor_seconds
        self._monitor: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.root_url + self.base_path

    # -- the clock: a monitor check of every task every monitor_seconds ------------------
    @property
    def monitor_seconds(self) -> float | None:
        """Seconds between the emulator's own monitor checks (the real service: 600); None: the
        monitor runs only when run_monitor() is called. May be changed while running."""
        return self._monitor_seconds

    @monitor_seconds.setter
    def monitor_seconds(self, seconds: float | None) -> None:
        with self._pace:
            self._monitor_seconds = seconds
            self._pace.notify_all()  # the wait in progress restarts with the new pace

    def run_monitor(self, request_id: str | None = None) -> list[str]:
        """One monitor check of every task (or of one): each takes its plan's next step. The
        ids of the tasks that moved."""
        return self.table.monitor_check(request_id)

    def _keep_pace(self) -> None:
        with self._pace:
            while not self._stopping.is_set():
                # Condition.wait is False on timeout; True when woken by a new pace or stop().
                if not self._pace.wait(self._monitor_seconds) and not self._stopping.is_set():
                    self.run_monitor()

    def start(self) -> MlServiceStandIn:
        super().start()
        self._monitor = threading.Thread(
            target=untraced(self._keep_pace), name="MlServiceStandIn-monitor", daemon=True
        )
        self._monitor.start()
        return self

    def stop(self) -> None:
        with self._pace:
            self._stopping.set()
            self._pace.notify_all()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
            self._monitor = None
        super().stop()

    def results_url(self, t: Task) -> str:
        return sas_url(self.root_url, t)

    def handle(self, req: Request) -> Response:
        if req.path.startswith("/results/"):  # the blob store, not the Flask app
            return self.blobs.serve(req)
        return api.route(self, req)

    # -- test controls: reading ------------------------------------------------------
    def task(self, request_id: str) -> dict:
        """Current status of a task, without counting as a status call."""
        with self.table.lock:
            t = self.table.get(request_id)
            return {"request_status": t.status, "message": t.message}

    def stored_status(self, request_id: str) -> dict:
        """The status as the real job status table holds it: num_tasks and num_images included."""
        with self.table.lock:
            return self.table.status_dict(self.table.get(request_id), with_num_tasks=True)

    def can_restart_monitoring(self, request_id: str) -> bool:
        """Whether the real /task endpoint could restart this job's monitoring."""
        with self.table.lock:
            t = self.table.get(request_id)
            return t.status in ("running", "problem") and t.num_tasks is not None

    def wait_for_downloads(self, timeout: float = 5.0) -> bool:
        """Block until every accepted task has fetched and checked its manifest."""
        deadline = time.monotonic() + timeout
        with self.table.lock:
            tasks = list(self.table.tasks.values())
        return all(t.downloaded.wait(max(0.0, deadline - time.monotonic())) for t in tasks)

    def end_drips(self) -> None:
        """End every "drip" answer now (within one drip_interval), cut short as when the server
        stops, and any drip started later at once."""
        self.blobs.drips_ended.set()

    def detections(self, request_id: str) -> dict:
        """The detections file the service aggregated, parsed (fine for small files).

        Ignores the hostile results modes but "oversized" (whose file is valid).
        """
        return json.loads(b"".join(self.blobs.file_bytes(request_id)))

    def iter_detection_images(self, request_id: str) -> Iterator[dict]:
        """The images of the file `detections()` parses, in order, as dicts: a reference for
        files too large to parse whole, at a third of the cost of encoding and parsing them."""
        return self.blobs.file_images(request_id)

    def iter_detections_bytes(self, request_id: str) -> Iterator[bytes]:
        """The body bytes the results URL answers with (before any gzip decoding), in pieces.

        For "drip", the bytes the drip would send, without the waits.
        """
        return self.blobs.body_bytes(request_id)

    # -- test controls: scripting ----------------------------------------------------------
    def set_plan(self, request_id: str, steps: list) -> None:
        """The next monitor checks walk through `steps`, one per check."""
        with self.table.lock:
            self.table.set_plan(self.table.get(request_id), steps)

    def set_status(self, request_id: str, status: str, message: Any = None) -> None:
        """Jump to a status now and stay there (this also ends a submission problem)."""
        with self.table.lock:
            self.table.set_status(self.table.get(request_id), status, message)

    def script_submission_problem(
        self, request_id: str, error: str = "emulated submission failure", batch_job_exists: bool = True
    ) -> None:
        """The Batch submission fails: `problem` without num_tasks, for good.

        Status calls keep answering the same status, message and Timestamp whatever the plan
        says. With batch_job_exists False (create_job itself failed), cancel answers 500.
        """
        with self.table.lock:
            self.table.script_submission_problem(self.table.get(request_id), error, batch_job_exists)

    def script_max_cycles(
        self, request_id: str, running_checks: int = 2, succeeded_shards: int | None = None
    ) -> None:
        """`running_checks` monitor checks, then the MAX_MONITOR_CYCLES `problem`, then `completed`.

        One shard never finishes; the file holds the succeeded shards only.
        """
        with self.table.lock:
            self.table.script_max_cycles(self.table.get(request_id), running_checks, succeeded_shards)

    def configure(
        self,
        request_id: str,
        *,
        failure_rate: float | None = None,
        failed_shards: int | None = None,
        shard_size: int | None = None,
        access_failure_rate: float | None = None,
        shards_done_at_cancel: int | None = None,
        results_images: int | None = None,
        results_frames: int | None = None,
        results_url: Any = _UNSET,
        results_mode: Any = _UNSET,
        results_bytes: int | None = None,
        drip_interval: float | None = None,
        drip_max_seconds: float | None = None,
        results_chunked: bool | None = None,
        failed_rows: Iterable[int] | None = None,
        missing_rows: Iterable[int] | None = None,
        extra_rows: Iterable[Any] | None = None,
    ) -> None:
        """Per-task knobs; arguments left out keep their value.

        failure_rate / access_failure_rate: shares of images with "Failure inference" /
        "Failure image access". failed_shards: the last shards fail. shard_size: images per
        shard. shards_done_at_cancel=k: shards 0..k-1 had succeeded when a cancel comes.
        failed_rows / missing_rows: indices of manifest rows (as sent; of synthetic rows with
        results_images) written as "Failure inference" / left out of the file; the shards
        that held a missing row count as failed. extra_rows: rows ([file, meta] or a URL) the
        file holds although the manifest did not; the k-th follows the file's k-th image.
        results_images=N: the file holds N synthetic images instead of the manifest's
        (results_frames a subject, 3 by default: SyntheticImages, detections.py).
        results_url: the URL the completed message reports, verbatim (None: the real one).
        results_mode: None, "gzip_bomb", "drip" (drip_interval, drip_max_seconds),
        "oversized" (a valid file larger than results_bytes) or "not_json".
        results_chunked: send the file with chunked encoding instead of a Content-Length.
        """
        if results_mode is not _UNSET and results_mode not in RESULTS_MODES:
            raise ValueError(f"results_mode must be one of {RESULTS_MODES}")
        rows = dict(
            failed_rows=None if failed_rows is None else _row_indices(failed_rows),
            missing_rows=None if missing_rows is None else _row_indices(missing_rows),
            extra_rows=None if extra_rows is None else _extra_rows(extra_rows),
        )
        with self.table.lock:
            t = self.table.get(request_id)
            updates = dict(
                failure_rate=failure_rate,
                failed_shards=failed_shards,
                shard_size=shard_size,
                access_failure_rate=access_failure_rate,
                shards_done_at_cancel=shards_done_at_cancel,
                results_images=results_images,
                results_frames=results_frames,
                results_bytes=results_bytes,
                drip_interval=drip_interval,
                drip_max_seconds=drip_max_seconds,
                results_chunked=results_chunked,
                **rows,
            )
            for name, value in updates.items():
                if value is not None:
                    setattr(t, name, value)
            if results_mode is not _UNSET:
                t.results_mode = results_mode
            if results_url is not _UNSET:
                t.results_url = results_url
                if (
                    t.status == "completed"
                    and isinstance(t.message, dict)
                    and "output_file_urls" in t.message
                ):
                    t.message = {**t.message, "output_file_urls": {"detections": self.results_url(t)}}


def _row_indices(indices: Iterable[int]) -> frozenset[int]:
    chosen = frozenset(indices)
    if not all(type(i) is int and i >= 0 for i in chosen):
        raise ValueError("row indices are whole numbers from 0")
    return chosen


def _extra_rows(rows: Iterable[Any]) -> tuple[str, ...]:
    """As JSON, so the file spec that holds them can be a cache key."""
    rows = list(rows)
    if not all(isinstance(r, str) or (isinstance(r, list) and len(r) == 2) for r in rows):
        raise ValueError("extra rows are [file, meta] lists or URL strings, as image lists hold")
    return tuple(json.dumps(r) for r in rows)
