"""MegaDetector batch API v4 emulator, as Zooniverse deploys it.

Mirrors zooniverse/CameraTraps, branch `zooniverse-deployment`,
api/batch_processing/api_core/ (server.py, server_orchestration.py, server_api_config.py,
server_utils.py, server_job_status_table.py, server_batch_job_manager.py,
batch_service/score_v5.py + pytorch_detector.py): the same validation order, status codes,
error texts, status messages and detections file. Instead of Azure Batch, each task walks a
scripted plan of statuses, one step per status call: a status call stands in for the real
monitor thread's 10-minute check. Like the real service, the manifest is fetched with a plain
`requests.get` in a background thread after the POST has been answered.

Facts copied from the real source
---------------------------------
- Model versions are the keys of MD_VERSIONS_TO_REL_PATH ("5a", "4.1", "3", "2"); the
  default (DEFAULT_MD_VERSION, `/default_model_version`) is "5a"; `/supported_model_versions`
  is `jsonify(sorted(keys))`. The file's `info.detector` is f"megadetector_v{model_version}".
- request_detections checks, in this order: JSON mimetype (415), body parses (415, Flask 2.0's
  non-debug BadRequest text), caller on the allowlist (401), input_container_sas or use_url
  (400; use_url strings "false"/"f"/"no"/"n" mean false), input_container_sas is a container
  SAS with read+list (400), images_requested_json_sas starts with http(s):// (400), it is
  given when use_url (400), model_version (400), request_name length then characters (400),
  active Batch jobs >= 300 (503). A body that is JSON but not an object, a non-string
  images_requested_json_sas or a request_name without len() crash the real view: Flask
  answers its HTML 500 page, and so do we.
- create_batch_job (the background thread): `requests.get(url).json()` without a status check
  (a 404 page is parsed as JSON, so the job fails with the JSON error text), an empty list ->
  `completed` "0 images found in provided list of images.", validate_provided_image_paths()
  (its messages), image_path_prefix, the suffix filter on urlparse(locator).path when use_url
  (the raw body value's truthiness, as the thread reads it), first_n, sample_n, zero images
  -> `completed` with a plain-string message, more than 4,000,000 -> `failed`; then `created`
  "N images listed; submitting the job...". Any exception -> `failed` "Error occurred while
  preparing the Batch job: <exception text>".
- Submission writes `running` "Submitted N images to cluster in T shards. Number of shards
  failed to be submitted: 0" with `num_tasks` (T = ceil(N / 2000)) and `num_images` (N) in
  the status; JobStatusTable.update_job_status() keeps those keys in every later status.
  GET /task deletes `num_tasks` before answering, so it never shows; `num_images` does.
  If submission raises, the status is `problem` "Please contact us. Error occurred while
  submitting the Batch job: <e>" with no num_tasks: the status endpoint only restarts the
  monitoring of running/problem jobs that have num_tasks, so such a job never moves again.
  One such case is reproduced for real: a model_version sent as a JSON number (3) passes
  validation (str(3) is a key) but create_batch_job indexes MD_VERSIONS_TO_REL_PATH with the
  number -> KeyError -> `problem` "...submitting the Batch job: 3" before any Batch job exists.
- The monitor writes `running` "Check number N, S out of T shards have completed
  successfully, F shards have failed." each check; after MAX_MONITOR_CYCLES (4 weeks of
  10-minute checks = 4032) it writes `problem` "Job unfinished after 4033 x 10 minutes,
  please contact us to retrieve the results. Number of succeeded shards: S" and still
  aggregates, then writes `completed` {"num_failed_shards": F, "output_file_urls":
  {"detections": url}}.
- cancel_request: 415s, request_id required (400), caller (401), unknown id (404, no dash
  stripping there), status not running/problem (400 "Task has <status> and cannot be
  canceled"), then Batch job terminate and `canceled` "Request has been canceled by the
  user."; answers the plain text "Canceling signal has been sent. ...". The monitor thread is
  not told: at its next check every shard is `completed` on Batch (terminated ones with a
  non-zero exit code, so counted as failed), it writes `running` "Check number ..." and then
  aggregates and writes `completed` with the shards that had succeeded.
- Timestamps (`Timestamp`, info.detection_completion_time) are get_utc_time():
  datetime.utcnow().isoformat(timespec="microseconds") + "Z", e.g.
  "2021-02-08T20:02:05.699689Z". The real `Status` has no time field.
- Flask's jsonify (2.0 defaults) sorts keys and writes compact JSON plus a newline; the
  detections file is json.dumps(..., ensure_ascii=False, indent=1); see ml_results.py for the
  per-image shapes ("Failure inference" images keep max_detection_conf 0.0 and detections []).
- Every Batch task runs score_v5.py (PyTorch) whatever the model version, and torch.load of
  the v4.1/v3/v2 TensorFlow .pb files fails, so every shard of a non-5a job fails:
  `completed` with num_failed_shards = T and no images. Emulated while
  `legacy_models_fail` is True (class attribute; set False for working old models).

Decisions the source does not settle
------------------------------------
- The scripted plan: one step per status call; the plan only moves once the manifest has
  been read (the real job stays `created` while listing). The first `running` step is the
  submission; later ones are monitor checks reporting every shard done (T - F succeeded, the
  last F shards failed). A scripted `problem` step uses the MAX_MONITOR_CYCLES wording.
  Final statuses (completed/failed/canceled) end a plan, except after a cancel the monitor
  outlives (below).
- Cancel while the monitor is alive (running, or a monitoring `problem`) with
  `cancel_overwritten` True (default): the next status call answers the after-cancel
  `running` check and the one after it `completed`, whatever the plan said. The shards that
  had succeeded are shards 0..k-1 with k = configure(shards_done_at_cancel=k), else the S of
  the last status message (0 after "Submitted ...", T - F after a "Check number"). With
  `cancel_overwritten` False, `canceled` stays. A job in a submission `problem` has no
  monitor: its `canceled` stays, and if no Batch job was ever created
  (script_submission_problem(batch_job_exists=False), or the numeric model_version case)
  terminate fails and cancel answers 500 "Error when canceling the request: <e>" with an
  azure-batch-like JobNotFound text (the exact exception text is a guess). The real monitor
  writes the after-cancel check and `completed` in one wake-up, seconds apart; here they take
  two status calls. A cancel after the MAX_MONITOR_CYCLES `problem` (the thread has left its
  loop and is aggregating) is followed directly by `completed`.
- script_max_cycles(): the `running` checks are numbered as the last ones before the limit
  (4031, 4032 for two), then `problem` "after 4033 x 10 minutes", then `completed`: what a
  10-minute poller of a 4-week job sees. One shard is left unfinished; by default the last
  configured failed shards failed and the others succeeded.
- Active jobs (the 503 quota): tasks not in a final status whose Batch job was not
  terminated by a cancel (created-but-listing tasks count, as before).
- The manifest download has a timeout (download_timeout, default 10 s; the real call has
  none) and ignores proxy settings from the environment (the real requests.get honours
  them). sample_n shuffles with a seeded Random, so it is reproducible.
- input_container_sas with images_requested_json_sas is accepted (images are never really
  read); listing a container (no images_requested_json_sas) is not emulated: after all the
  real checks pass it answers 400 "... not supported by this emulator ...".
- Monitoring restarts after an API restart are not emulated (the emulator never restarts);
  `num_tasks` is kept per task (stored_status(), can_restart_monitoring()) to tell whether
  the real service could restart it.
- Results are served at {root_url}/results/{id}/detections.json?<SAS> from this server (Azure
  Blob Storage stand-in): Content-Type application/octet-stream (upload_blob sets none) and a
  Content-Length computed by a first counting pass (cached per task), or chunked with
  configure(results_chunked=True). Missing blob 404 and missing signature 403, with Azure's
  XML error bodies.
- Synthetic results (results_images, oversized, drip) use Panoptes-like URLs and Hamlet-style
  meta strings, reusing the manifest's project_id and subject_set_id when it has them.
- Flask's HTML error pages (404/405/500) are Werkzeug 2.0 style; only status codes matter.
- Not emulated: container listing, the first_n/sample_n of container jobs, shards that
  fail to be submitted, partially-written failed images (PTDetector can fail after some
  detections), `Error occurred while monitoring/aggregating` problems (script them with
  set_status), the Cosmos DB item itself, Azure Blob range requests and SAS checking.

Test controls (beyond the HTTP API)
-----------------------------------
task(id), stored_status(id), can_restart_monitoring(id), set_plan(id, steps),
set_status(id, status, message=None), configure(id, ...), script_submission_problem(id, ...),
script_max_cycles(id, ...), wait_for_downloads(timeout), detections(id),
iter_detections_bytes(id); counters submissions, accepted_count, cancel_calls, status_calls;
defaults for new tasks default_plan, failure_rate, access_failure_rate, failed_shards,
shard_size, max_active_jobs; switches cancel_overwritten, legacy_models_fail.

Hostile results (configure(id, results_mode=...), all served from this server's origin):
"gzip_bomb" answers Content-Encoding: gzip with ~260 KB that inflate to 256 MiB of valid
JSON (mostly whitespace), built once per process; "drip" announces a Content-Length of
drip_max_seconds / drip_interval bytes (240 by default) and sends the opening of a valid
file one byte per drip_interval, cut short when the server stops; "oversized" is a valid
file of synthetic images just larger than results_bytes (default 256 MiB), with its exact
Content-Length; "not_json" is an XML error body labelled application/json.
configure(id, results_url=...) reports any URL verbatim in the completed message.
Counting the Content-Length of a large file costs one extra pass before the headers (about
13 s for 1,000,000 images, 460 MB); it is cached per task, and results_chunked avoids it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import random
import string
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from . import ml_results
from .ml_results import SyntheticImages, detect
from .server import Request, Response, StandInServer

# server_api_config.py
API_PREFIX = "/v4/camera-trap/detection-batch"
MD_VERSIONS = ("5a", "4.1", "3", "2")  # MD_VERSIONS_TO_REL_PATH keys
MODEL_VERSIONS = MD_VERSIONS  # old name, kept for importers
DEFAULT_MODEL_VERSION = "5a"  # DEFAULT_MD_VERSION
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # IMAGE_SUFFIXES_ACCEPTED, case-insensitive
MONITOR_PERIOD_MINUTES = 10
MAX_MONITOR_CYCLES = 4 * 7 * int((60 * 24) / MONITOR_PERIOD_MINUTES)  # 4032
MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB = 4 * 1000 * 1000
NUM_IMAGES_PER_TASK = 2000
OUTPUT_SAS_EXPIRATION_DAYS = 180
MAX_BATCH_ACCOUNT_ACTIVE_JOBS = 300

FINAL = ("completed", "failed", "canceled")
ALLOWED_NAME_CHARS = set(string.ascii_letters + string.digits + "_-")
DETECTION_CATEGORIES = ml_results.DETECTION_CATEGORIES
RESULTS_MODES = (None, "gzip_bomb", "drip", "oversized", "not_json")
DEFAULT_OVERSIZED_BYTES = 256 * 1024 * 1024

# Texts of the real service
CREATED_MSG = "Request received. Listing images next..."
EMPTY_LIST_MSG = "0 images found in provided list of images."
NO_IMAGES_MSG = (
    "Zero images found in container or in provided list of images "
    "after filtering with the provided parameters."
)
PREPARE_ERROR = "Error occurred while preparing the Batch job: "
SUBMIT_ERROR = "Please contact us. Error occurred while submitting the Batch job: "
CANCELED_MSG = "Request has been canceled by the user."
CANCEL_OK = "Canceling signal has been sent. You can verify the status at the /task endpoint"
CALLER_401 = (
    "Parameter caller is not supplied or is not on our allowlist. "
    "Please email cameratraps@lila.science to request access."
)
# Flask 2.0 Request.on_json_loading_failed outside debug: a bare BadRequest()
BAD_JSON_TEXT = (
    "400 Bad Request: The browser (or proxy) sent a request that this server could not understand."
)
# Guess at azure-batch's BatchErrorException text for terminating a job that does not exist.
JOB_NOT_FOUND_TEXT = (
    "Request encountered an exception.\nCode: JobNotFound\n"
    "Message: {'additional_properties': {}, 'lang': 'en-US', "
    "'value': 'The specified job does not exist.'}"
)

_WERKZEUG_PAGES = {
    404: (
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL "
        "manually please check your spelling and try again.",
    ),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    500: (
        "Internal Server Error",
        "The server encountered an internal error and was unable to "
        "complete your request. Either the server is overloaded or "
        "there is an error in the application.",
    ),
}
_UNSET: Any = object()


def utc_now() -> str:
    """server_utils.get_utc_time(): '2021-02-08T20:02:05.699689Z'."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass
class Submission:
    """What the service received for one accepted request."""

    request_id: str
    body: dict
    manifest_bytes: bytes | None = None
    manifest: Any = None
    download_status: int | None = None
    content_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class _FileSpec:
    """Everything that decides the bytes of one detections file (also the length cache key)."""

    model_version: str
    completion_time: str
    kept_shards: tuple  # shard indices, in the blob-name order aggregate_results reads them
    shard_size: int
    failure_rate: float
    access_failure_rate: float
    synthetic: SyntheticImages | None  # None: the manifest rows of kept_shards

    @property
    def info(self) -> dict:
        return ml_results.file_info(self.model_version, self.completion_time)


@dataclass
class _Task:
    request_id: str
    body: dict
    plan: list  # steps: "status", ("status", message) or a callable(task) that writes itself
    failure_rate: float
    failed_shards: int
    shard_size: int
    access_failure_rate: float = 0.0
    pos: int = 0
    status: str = "created"
    message: Any = CREATED_MSG
    last_updated: str = field(default_factory=utc_now)
    images: list | None = None  # manifest rows that survived filtering
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
    aggregating: Callable[[_Task], None] | None = None  # set between the max-cycles problem and completed
    shards_done_at_cancel: int | None = None
    # The aggregated file
    results_ready: bool = False
    completion_time: str | None = None
    kept_count: int | None = None  # shards 0..k-1 succeeded (cancel / max cycles); None: all but failed
    results_images: int | None = None
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
        return DEFAULT_MODEL_VERSION if version == "" else version


class MlServiceStandIn(StandInServer):
    # The real monitor overwrites `canceled`; False gives an idealised service where it stays.
    cancel_overwritten = True
    # Non-5a models cannot load in score_v5.py: every shard fails (see the module docstring).
    legacy_models_fail = True
    json_content_type = "application/json"

    def __init__(
        self,
        callers=("zooniverse",),
        latency: float = 0.0,
        seed: int = 0,
        base_path: str = API_PREFIX,
        max_active_jobs: int | None = None,
        download_timeout: float = 10.0,
    ):
        super().__init__(latency=latency, seed=seed)
        self.callers = set(callers)
        self.base_path = base_path.rstrip("/")
        self.max_active_jobs = max_active_jobs  # None: no limit (real service: 300)
        self.download_timeout = download_timeout
        # Defaults for tasks created from now on; per task: set_plan()/configure().
        self.default_plan: list = ["created", "running", "completed"]
        self.failure_rate = 0.0  # share of images with "Failure inference"
        self.access_failure_rate = 0.0  # share of images with "Failure image access"
        self.failed_shards = 0
        self.shard_size = NUM_IMAGES_PER_TASK
        self.submissions: list[Submission] = []
        self.accepted_count = 0
        self.cancel_calls = 0
        self.status_calls: dict[str, int] = {}
        self._tasks: dict[str, _Task] = {}
        self._task_lock = threading.RLock()
        self._sample_rng = random.Random(seed)

    @property
    def url(self) -> str:
        return self.root_url + self.base_path

    # -- test controls -----------------------------------------------------------
    def task(self, request_id: str) -> dict:
        """Current status of a task, without counting as a status call."""
        with self._task_lock:
            t = self._tasks[request_id]
            return {"request_status": t.status, "message": t.message}

    def stored_status(self, request_id: str) -> dict:
        """The status as the real job status table holds it: num_tasks and num_images included."""
        with self._task_lock:
            return self._status_dict(self._tasks[request_id], with_num_tasks=True)

    def can_restart_monitoring(self, request_id: str) -> bool:
        """Whether the real /task endpoint could restart this job's monitoring."""
        with self._task_lock:
            t = self._tasks[request_id]
            return t.status in ("running", "problem") and t.num_tasks is not None

    def set_plan(self, request_id: str, steps: list) -> None:
        """The next status calls walk through `steps`, one per call."""
        with self._task_lock:
            t = self._tasks[request_id]
            t.plan, t.pos = [(t.status, t.message)] + list(steps), 0
            t.monitor_outlives_cancel = False

    def set_status(self, request_id: str, status: str, message: Any = None) -> None:
        """Jump to a status now and stay there (this also ends a submission problem)."""
        with self._task_lock:
            t = self._tasks[request_id]
            t.frozen, t.monitor_outlives_cancel, t.pending_submission_error = False, False, None
            t.plan, t.pos = [(status, message)], 0
            self._apply(t, status, message)

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
        results_url: Any = _UNSET,
        results_mode: Any = _UNSET,
        results_bytes: int | None = None,
        drip_interval: float | None = None,
        drip_max_seconds: float | None = None,
        results_chunked: bool | None = None,
    ) -> None:
        """Per-task knobs; arguments left out keep their value.

        failure_rate / access_failure_rate: shares of images with "Failure inference" /
        "Failure image access". failed_shards: the last shards fail. shard_size: images per
        shard. shards_done_at_cancel=k: shards 0..k-1 had succeeded when a cancel comes.
        results_images=N: the file holds N synthetic images instead of the manifest's.
        results_url: the URL the completed message reports, verbatim (None: the real one).
        results_mode: None, "gzip_bomb", "drip" (drip_interval, drip_max_seconds),
        "oversized" (a valid file larger than results_bytes) or "not_json".
        results_chunked: send the file with chunked encoding instead of a Content-Length.
        """
        if results_mode is not _UNSET and results_mode not in RESULTS_MODES:
            raise ValueError(f"results_mode must be one of {RESULTS_MODES}")
        with self._task_lock:
            t = self._tasks[request_id]
            updates = dict(
                failure_rate=failure_rate,
                failed_shards=failed_shards,
                shard_size=shard_size,
                access_failure_rate=access_failure_rate,
                shards_done_at_cancel=shards_done_at_cancel,
                results_images=results_images,
                results_bytes=results_bytes,
                drip_interval=drip_interval,
                drip_max_seconds=drip_max_seconds,
                results_chunked=results_chunked,
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
                    t.message = {**t.message, "output_file_urls": {"detections": self._results_url(t)}}

    def script_submission_problem(
        self, request_id: str, error: str = "emulated submission failure", batch_job_exists: bool = True
    ) -> None:
        """The Batch submission fails: `problem` without num_tasks, for good.

        Status calls keep answering the same status, message and Timestamp whatever the plan
        says. With batch_job_exists False (create_job itself failed), cancel answers 500.
        """
        with self._task_lock:
            t = self._tasks[request_id]
            if t.num_tasks is not None:
                raise ValueError("the job was already submitted; a submission problem comes before")
            t.batch_job_exists = batch_job_exists
            if not t.downloaded.is_set():
                t.pending_submission_error = error  # applied once the image list is read
            elif t.images and t.status == "created":
                self._fail_submission(t, error)
            else:
                raise ValueError(f"the job ended before its submission ({t.status})")

    def script_max_cycles(
        self, request_id: str, running_checks: int = 2, succeeded_shards: int | None = None
    ) -> None:
        """`running_checks` monitor checks, then the MAX_MONITOR_CYCLES `problem`, then `completed`.

        One shard never finishes; the file holds the succeeded shards only.
        """
        with self._task_lock:
            t = self._tasks[request_id]
            t.plan, t.pos = (
                [(t.status, t.message)] + self._max_cycles_steps(t, running_checks, succeeded_shards),
                0,
            )
            t.monitor_outlives_cancel = False

    def wait_for_downloads(self, timeout: float = 5.0) -> bool:
        """Block until every accepted task has fetched and checked its manifest."""
        deadline = time.monotonic() + timeout
        with self._task_lock:
            tasks = list(self._tasks.values())
        return all(t.downloaded.wait(max(0.0, deadline - time.monotonic())) for t in tasks)

    def detections(self, request_id: str) -> dict:
        """The detections file the service aggregated, parsed (fine for small files).

        Ignores the hostile results modes but "oversized" (whose file is valid).
        """
        spec = self._file_spec(request_id)
        t = self._tasks[request_id]
        return json.loads(b"".join(ml_results.iter_file_bytes(spec.info, self._spec_images(t, spec))))

    def iter_detections_bytes(self, request_id: str) -> Iterator[bytes]:
        """The body bytes the results URL answers with (before any gzip decoding), in pieces.

        For "drip", the bytes the drip would send, without the waits.
        """
        with self._task_lock:
            t = self._tasks[request_id]
            mode = t.results_mode
        if mode == "gzip_bomb":
            return iter([ml_results.gzip_bomb()])
        if mode == "not_json":
            return iter([ml_results.NOT_JSON_BODY])
        if mode == "drip":
            source, count = self._drip_source(t)
            return itertools.islice(source, count)
        spec = self._file_spec(request_id)
        return ml_results.iter_file_bytes(spec.info, self._spec_images(t, spec))

    # -- HTTP routing ------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if req.path.startswith("/results/"):  # the blob store, not the Flask app
            if req.method != "GET":
                return _blob_error(
                    405, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb."
                )
            return self._results(req)
        if req.path == self.base_path:  # Werkzeug's strict slashes: redirect to the rule with "/"
            return Response(308, "", headers={"Location": self.url + "/"})
        if not req.path.startswith(self.base_path + "/"):
            return _flask_page(404)
        route = req.path[len(self.base_path) + 1 :]
        get_routes: dict[str, Callable[[], Response]] = {
            "": lambda: Response(200, "Camera traps batch processing API. Instance: zooniverse"),
            "default_model_version": lambda: Response(200, DEFAULT_MODEL_VERSION),
            "supported_model_versions": lambda: _flask_json(200, sorted(MD_VERSIONS)),
            "all_jobs": lambda: _flask_json(200, self._monitored_jobs()),
        }
        if route in ("request_detections", "cancel_request"):
            if req.method != "POST":
                return _flask_page(405, allow="OPTIONS, POST")
            return self._request_detections(req) if route == "request_detections" else self._cancel(req)
        if route.startswith("task/") and route.count("/") == 1 and len(route) > len("task/"):
            return (
                self._status(route[len("task/") :])
                if req.method == "GET"
                else _flask_page(405, allow="GET, HEAD, OPTIONS")
            )
        if route in get_routes:
            return (
                get_routes[route]() if req.method == "GET" else _flask_page(405, allow="GET, HEAD, OPTIONS")
            )
        return _flask_page(404)

    def _read_json(self, req: Request):
        """Flask's request.is_json + get_json(): both failures are 415 in the real views."""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not (
            ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))
        ):
            return None, _err(415, "Body needs to have a JSON mimetype (e.g., application/json).")
        try:
            return req.json(), None
        except ValueError:
            return None, _err(415, f"Error occurred reading POST request body: {BAD_JSON_TEXT}.")

    # -- request_detections ------------------------------------------------------
    def _request_detections(self, req: Request) -> Response:
        body, err = self._read_json(req)
        if err:
            return err
        try:
            err = self._validate_request(body)
        except Exception:  # the real view crashes on these bodies: Flask's 500 page
            return _flask_page(500)
        if err:
            return err
        with self._task_lock:
            if self.max_active_jobs is not None and self._active_jobs() >= self.max_active_jobs:
                return _err(503, "Too many active jobs, please try again later")
            request_id = uuid.uuid4().hex
            task = _Task(
                request_id,
                body,
                list(self.default_plan),
                self.failure_rate,
                self.failed_shards,
                self.shard_size,
                self.access_failure_rate,
            )
            sub = Submission(request_id, body)
            self._tasks[request_id] = task
            self.submissions.append(sub)
            self.status_calls[request_id] = 0
            self.accepted_count += 1
        threading.Thread(
            target=self._prepare, args=(task, sub), name=f"job_{request_id}", daemon=True
        ).start()
        return _flask_json(200, {"request_id": request_id})

    def _validate_request(self, post_body: Any) -> Response | None:
        """server.request_detections() line by line; exceptions escape as they do there."""
        caller_id = post_body.get("caller", None)  # AttributeError for a non-object body
        if caller_id is None or caller_id not in list(self.callers):
            return _err(401, CALLER_401)
        use_url = post_body.get("use_url", False)
        if use_url and isinstance(use_url, str) and use_url.lower() in ["false", "f", "no", "n"]:
            use_url = False
        input_container_sas = post_body.get("input_container_sas", None)
        if not input_container_sas and not use_url:
            return _err(
                400,
                "input_container_sas with read and list access is a required "
                "field when not using image URLs.",
            )
        if input_container_sas is not None:
            err = _check_container_sas(input_container_sas)
            if err:
                return err
        images_requested_json_sas = post_body.get("images_requested_json_sas", None)
        if images_requested_json_sas is not None:
            if not images_requested_json_sas.startswith(("http://", "https://")):
                return _err(400, "images_requested_json_sas needs to be an URL.")
        if use_url and images_requested_json_sas is None:
            return _err(400, "images_requested_json_sas is required since use_url is true.")
        model_version = post_body.get("model_version", "")
        if model_version != "":
            model_version = str(model_version)
            if model_version not in MD_VERSIONS:
                return _err(400, f"model_version {model_version} is not supported.")
        request_name = post_body.get("request_name", "")
        if request_name != "":
            if len(request_name) > 92:
                return _err(400, "request_name is longer than 92 characters.")
            if not set(request_name) <= ALLOWED_NAME_CHARS:
                return _err(
                    400,
                    "request_name contains invalid characters (only letters, digits, - and _ are allowed).",
                )
        if images_requested_json_sas is None:
            return _err(
                400,
                "Listing images in input_container_sas is not supported by this emulator "
                "(send images_requested_json_sas).",
            )
        return None

    def _active_jobs(self) -> int:
        return sum(1 for t in self._tasks.values() if t.status not in FINAL and not t.batch_terminated)

    def _monitored_jobs(self) -> list:
        """/all_jobs: the jobs that have a monitor thread (named job_<id>) right now."""
        with self._task_lock:
            return sorted(t.request_id for t in self._tasks.values() if self._monitor_alive(t))

    @staticmethod
    def _monitor_alive(t: _Task) -> bool:
        if t.num_tasks is None or t.frozen:
            return False
        if t.status in ("running", "problem"):
            return t.status == "running" or not t.results_ready  # a `problem` after aggregating has no thread
        return t.monitor_outlives_cancel and not t.results_ready

    # -- create_batch_job ------------------------------------------------------------
    def _prepare(self, task: _Task, sub: Submission) -> None:
        """create_batch_job(): read the image list, validate and filter it."""
        try:
            rows, outcome = self._list_images(task.body, sub)
        except Exception as e:
            sub.error = PREPARE_ERROR + str(e)
            outcome = ("failed", sub.error)
            rows = None
        with self._task_lock:  # the event is set under the lock: test controls see a consistent task
            try:
                task.images = rows
                if outcome is not None:  # nothing will be submitted: the job ends here
                    task.plan, task.pos = [outcome], 0
                    self._apply(task, *outcome)
                elif task.status == "created":
                    self._apply(task, "created", f"{len(rows)} images listed; submitting the job...")
                    self._submit_if_doomed(task)
            finally:
                task.downloaded.set()

    def _list_images(self, body: dict, sub: Submission):
        """The listing half of create_batch_job: (rows, None) or (None, (status, message))."""
        use_url = body.get("use_url", False)  # the raw value: "false" is truthy here
        image_path_prefix = body.get("image_path_prefix")
        first_n = body.get("first_n")
        first_n = int(first_n) if first_n else None
        sample_n = body.get("sample_n")
        sample_n = int(sample_n) if sample_n else None

        image_paths = self._download(str(body.get("images_requested_json_sas")), sub)
        if len(image_paths) == 0:
            return None, ("completed", EMPTY_LIST_MSG)
        error, metadata_available = validate_provided_image_paths(image_paths)
        if error is not None:
            raise ValueError(f"image paths provided in the json are not valid: {error}")
        valid_image_paths = []
        for p in image_paths:
            locator = p[0] if metadata_available else p
            if image_path_prefix is not None and not locator.startswith(image_path_prefix):
                continue
            path = urllib.parse.urlparse(locator).path if use_url else locator
            if path.lower().endswith(IMAGE_SUFFIXES):
                valid_image_paths.append(p)
        image_paths = valid_image_paths
        if first_n:
            if not first_n > 0:
                raise AssertionError("parameter first_n is 0.")
            image_paths = image_paths[:first_n]
        if sample_n:
            if not sample_n > 0:
                raise AssertionError("parameter sample_n is 0.")
            if sample_n > len(image_paths):
                raise ValueError(
                    "parameter sample_n specifies more images than "
                    "available (after filtering by other provided params)."
                )
            self._sample_rng.shuffle(image_paths)
            image_paths = image_paths[:sample_n]
        num_images = len(image_paths)
        if num_images < 1:
            return None, ("completed", NO_IMAGES_MSG)
        if num_images > MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB:
            return None, (
                "failed",
                f"The number of images ({num_images}) requested for processing exceeds "
                f"the maximum accepted {MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB} in one call",
            )
        return image_paths, None

    def _download(self, url: str, sub: Submission) -> Any:
        """requests.get(url).json(), no status check, as the real thread does."""
        with requests.Session() as session:
            session.trust_env = False  # no proxy between the emulator and a local Azurite
            response = session.get(url, timeout=self.download_timeout)
        sub.download_status = response.status_code
        sub.content_type = response.headers.get("Content-Type")
        sub.manifest_bytes = response.content
        sub.manifest = response.json()
        return sub.manifest

    def _submit_if_doomed(self, t: _Task) -> None:
        """Submissions that fail right after listing, as the real thread goes straight on."""
        if t.pending_submission_error is not None:
            self._fail_submission(t, t.pending_submission_error)
        elif not isinstance(t.model_version, str):
            # MD_VERSIONS_TO_REL_PATH[3] -> KeyError(3): str() is "3"; no Batch job yet
            t.batch_job_exists = False
            self._fail_submission(t, str(KeyError(t.model_version)))

    def _fail_submission(self, t: _Task, error: str) -> None:
        t.frozen = True
        t.plan, t.pos = [("problem", SUBMIT_ERROR + error)], 0
        self._write(t, "problem", SUBMIT_ERROR + error)

    # -- status ------------------------------------------------------------------------
    def _status(self, raw_id: str) -> Response:
        request_id = raw_id.replace("-", "")  # "Fix for Zooniverse" in the real server
        with self._task_lock:
            t = self._tasks.get(request_id)
            if t is None:
                return _err(404, "Task is not found.")
            self.status_calls[request_id] += 1
            if self._may_advance(t):
                t.pos += 1
                step = t.plan[t.pos]
                if callable(step):
                    step(t)
                else:
                    status, message = (step, None) if isinstance(step, str) else step
                    self._apply(t, status, message)
            return _flask_json(
                200,
                {
                    "Status": self._status_dict(t, with_num_tasks=False),
                    "Endpoint": f"{self.base_path}/request_detections",
                    "TaskId": request_id,
                    "Timestamp": t.last_updated,
                },
            )

    def _may_advance(self, t: _Task) -> bool:
        # The plan only moves once the manifest is in, as the real job stays "created" while
        # it lists images; a submission problem never moves; final statuses end the plan
        # unless the monitor outlives a cancel.
        if not t.downloaded.is_set() or t.frozen or t.pos + 1 >= len(t.plan):
            return False
        return t.status not in FINAL or t.monitor_outlives_cancel

    @staticmethod
    def _status_dict(t: _Task, with_num_tasks: bool) -> dict:
        status = {"request_status": t.status, "message": t.message}
        if t.num_tasks is not None and with_num_tasks:
            status["num_tasks"] = t.num_tasks
        if t.num_images is not None:
            status["num_images"] = t.num_images
        return status

    # -- writing statuses --------------------------------------------------------------
    def _write(self, t: _Task, status: str, message: Any) -> None:
        """update_job_status(): every write refreshes last_updated."""
        t.status, t.message, t.last_updated = status, message, utc_now()

    def _submit(self, t: _Task) -> None:
        """The Batch job and its tasks exist from now on: num_tasks/num_images join the status."""
        if t.num_tasks is None:
            t.num_tasks, t.num_images = t.num_shards, len(t.images or [])
            t.running_checks = 0

    def _failed_count(self, t: _Task) -> int:
        """Shards that end failed when the job runs to its end."""
        shards = t.num_shards
        if self.legacy_models_fail and t.model_version != DEFAULT_MODEL_VERSION:
            return shards
        return min(t.failed_shards, shards)

    def _apply(self, t: _Task, status: str, message: Any = None) -> None:
        """A plan step or set_status(): the real service's wording unless a message is given."""
        implies_batch_job = status in ("running", "problem") or (
            status == "completed" and (message is None or isinstance(message, dict))
        )
        if implies_batch_job and t.images and t.num_tasks is None:
            self._submit(t)
            if status == "running" and message is None:
                t.succeeded_reported = 0
                message = (
                    f"Submitted {t.num_images} images to cluster in {t.num_tasks} shards. "
                    "Number of shards failed to be submitted: 0"
                )
                return self._write(t, status, message)
        failed = self._failed_count(t)
        succeeded = t.num_shards - failed
        if status == "running" and message is None:
            return self._write_check(t, t.running_checks + 1, succeeded, failed)
        if status == "problem" and message is None:
            t.running_checks += 1
            return self._write(t, "problem", _max_cycles_message(t.running_checks, succeeded))
        if status == "completed" and (message is None or isinstance(message, dict)):
            return self._write_completed(t, None, failed, message)
        if status in ("running", "problem"):
            t.running_checks += 1
        defaults = {
            "created": CREATED_MSG,
            "canceled": CANCELED_MSG,
            "failed": PREPARE_ERROR + "emulated failure",
        }
        self._write(t, status, defaults.get(status) if message is None else message)

    def _write_check(self, t: _Task, number: int, succeeded: int, failed: int) -> None:
        self._submit(t)
        t.running_checks, t.succeeded_reported = number, succeeded
        self._write(
            t,
            "running",
            f"Check number {number}, {succeeded} out of {t.num_tasks} shards have "
            f"completed successfully, {failed} shards have failed.",
        )

    def _write_completed(
        self, t: _Task, kept_count: int | None, num_failed: int, message: dict | None = None
    ) -> None:
        """aggregate_results() then `completed`; the file is fixed from now on."""
        t.kept_count = kept_count
        t.results_ready = True
        t.completion_time = utc_now()
        if message is None:
            message = {
                "num_failed_shards": num_failed,
                "output_file_urls": {"detections": self._results_url(t)},
            }
        self._write(t, "completed", message)

    def _max_cycles_steps(self, t: _Task, running_checks: int, succeeded_shards: int | None) -> list:
        def steps_for(task: _Task):
            shards = task.num_shards
            failed = min(self._failed_count(task), shards - 1)
            succeeded = shards - 1 - failed if succeeded_shards is None else min(succeeded_shards, shards - 1)
            failed = min(failed, shards - 1 - succeeded)  # one shard stays unfinished
            return succeeded, failed

        def check(number: int):
            return lambda task: self._write_check(task, number, *steps_for(task))

        def give_up(task: _Task):
            self._submit(task)
            task.running_checks = MAX_MONITOR_CYCLES + 1
            task.aggregating = aggregate  # the thread left its loop: a cancel now cannot add a check
            self._write(task, "problem", _max_cycles_message(task.running_checks, steps_for(task)[0]))

        def aggregate(task: _Task):
            succeeded, failed = steps_for(task)
            task.aggregating = None
            self._write_completed(task, succeeded, failed)

        running_checks = max(0, min(running_checks, MAX_MONITOR_CYCLES))
        first = MAX_MONITOR_CYCLES + 1 - running_checks
        return [check(n) for n in range(first, MAX_MONITOR_CYCLES + 1)] + [give_up, aggregate]

    # -- cancel ------------------------------------------------------------------------
    def _cancel(self, req: Request) -> Response:
        with self._task_lock:
            self.cancel_calls += 1
        body, err = self._read_json(req)
        if err:
            return err
        try:
            request_id = body.get("request_id", None)
            caller_id = body.get("caller", None)
        except AttributeError:
            return _flask_page(500)
        if request_id is None:
            return _err(400, "request_id is a required field.")
        if caller_id is None or caller_id not in list(self.callers):
            return _err(401, "Parameter caller is not supplied or is not on our allowlist.")
        with self._task_lock:
            t = self._tasks.get(str(request_id))  # no dash stripping here, as in the real server
            if t is None:
                return _err(404, "Task is not found.")
            if t.status not in ("running", "problem"):
                return _err(400, f"Task has {t.status} and cannot be canceled")
            if not t.batch_job_exists:
                return _err(500, f"Error when canceling the request: {JOB_NOT_FOUND_TEXT}")
            self._terminate(t)
        return Response(200, CANCEL_OK)

    def _terminate(self, t: _Task) -> None:
        """Batch terminates the job and `canceled` is written; the monitor may still be alive."""
        monitor_alive = self._monitor_alive(t)
        t.batch_terminated = True
        self._write(t, "canceled", CANCELED_MSG)
        if not (monitor_alive and self.cancel_overwritten):
            t.plan, t.pos, t.monitor_outlives_cancel = [("canceled", CANCELED_MSG)], 0, False
            return
        if t.aggregating is not None:  # after the MAX_MONITOR_CYCLES problem: completed comes next
            t.plan, t.pos, t.monitor_outlives_cancel = [("canceled", CANCELED_MSG), t.aggregating], 0, True
            return
        shards = t.num_shards
        done = t.succeeded_reported if t.shards_done_at_cancel is None else t.shards_done_at_cancel
        done = max(0, min(done, shards))
        number = t.running_checks + 1
        t.plan = [
            ("canceled", CANCELED_MSG),
            lambda task: self._write_check(task, number, done, shards - done),
            lambda task: self._write_completed(task, done, shards - done),
        ]
        t.pos, t.monitor_outlives_cancel = 0, True

    # -- results (the Azure Blob Storage stand-in) ---------------------------------------
    def _results_url(self, t: _Task) -> str:
        if t.results_url is not None:
            return t.results_url
        expiry = datetime.now(UTC) + timedelta(days=OUTPUT_SAS_EXPIRATION_DAYS)
        sig = base64.b64encode(hashlib.sha256(t.request_id.encode()).digest()).decode()
        query = urllib.parse.urlencode(
            {
                "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "sp": "r",
                "sv": "2020-10-02",
                "sr": "b",
                "sig": sig,
            }
        )
        return f"{self.root_url}/results/{t.request_id}/detections.json?{query}"

    def _results(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/")  # results/<id>/detections.json
        with self._task_lock:
            t = self._tasks.get(parts[1]) if len(parts) == 3 and parts[2] == "detections.json" else None
            ready = t is not None and t.results_ready
            mode = t.results_mode if t is not None and ready else None
        if not ready or t is None:
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if not req.query.get("sig"):
            return _blob_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. "
                "Make sure the value of Authorization header is formed correctly "
                "including the signature.",
            )
        headers = {"x-ms-blob-type": "BlockBlob"}
        ctype = "application/octet-stream"  # upload_blob() without content settings
        if mode == "gzip_bomb":
            return Response(
                200, ml_results.gzip_bomb(), {**headers, "Content-Encoding": "gzip"}, "application/json"
            )
        if mode == "not_json":
            return Response(200, ml_results.NOT_JSON_BODY, headers, "application/json")
        if mode == "drip":
            source, count = self._drip_source(t)
            return Response(
                200, self._drip(source, count, t.drip_interval), headers, ctype, content_length=count
            )
        spec = self._file_spec(t.request_id)
        body = ml_results.iter_file_bytes(spec.info, self._spec_images(t, spec))
        length = None if t.results_chunked else self._file_length(t, spec)
        return Response(200, body, headers, ctype, content_length=length)

    def _file_spec(self, request_id: str) -> _FileSpec:
        """What the file holds: synthetic images, an oversized file, or the kept shards' rows."""
        with self._task_lock:
            t = self._tasks[request_id]
            shards = t.num_shards
            kept = shards - self._failed_count(t) if t.kept_count is None else t.kept_count
            version = t.model_version
            spec = _FileSpec(
                version if isinstance(version, str) else str(version),
                t.completion_time or t.last_updated,
                tuple(sorted(range(kept), key=str)),  # job_<id>_task_<n>.json name order
                t.shard_size,
                t.failure_rate,
                t.access_failure_rate,
                None,
            )
            mode, limit, count = t.results_mode, t.results_bytes, t.results_images
        if mode == "oversized":  # outside the lock: sizing can take seconds
            return self._oversized_spec(t, spec, DEFAULT_OVERSIZED_BYTES if limit is None else limit)
        if count is not None:
            return _replace_synthetic(spec, self._synthetic(t, count))
        return spec

    def _oversized_spec(self, t: _Task, spec: _FileSpec, limit: int) -> _FileSpec:
        """Enough synthetic images for the file to pass `limit` bytes (counted once, cached)."""
        key = ("oversized", spec, limit)
        if key not in t.length_cache:
            endless = self._synthetic(t, None)
            images = (detect(row, spec.failure_rate, spec.access_failure_rate) for row in endless.rows())
            t.length_cache[key] = ml_results.images_to_exceed(spec.info, images, limit)
        count, size = t.length_cache[key]
        sized = _replace_synthetic(spec, self._synthetic(t, count))
        t.length_cache[sized] = size
        return sized

    def _synthetic(self, t: _Task, count: int | None) -> SyntheticImages:
        """Synthetic rows that reuse the manifest's project and subject set when it has them."""
        project_id, subject_set_id = "1", "1"
        if t.images and isinstance(t.images[0], list):
            try:
                meta = json.loads(t.images[0][1])
                project_id = str(meta.get("project_id", project_id))
                subject_set_id = str(meta.get("subject_set_id", subject_set_id))
            except (TypeError, ValueError, AttributeError):
                pass
        return SyntheticImages(count, project_id, subject_set_id)

    def _spec_images(self, t: _Task, spec: _FileSpec) -> Iterator[dict]:
        if spec.synthetic is not None:
            rows: Any = spec.synthetic.rows()
        else:
            images, size = t.images or [], spec.shard_size
            rows = (row for shard in spec.kept_shards for row in images[shard * size : (shard + 1) * size])
        return (detect(row, spec.failure_rate, spec.access_failure_rate) for row in rows)

    def _file_length(self, t: _Task, spec: _FileSpec) -> int:
        """Content-Length by a counting pass over the same generator, once per file."""
        if spec not in t.length_cache:
            t.length_cache[spec] = ml_results.count_bytes(
                ml_results.iter_file_bytes(spec.info, self._spec_images(t, spec))
            )
        return t.length_cache[spec]

    def _drip_source(self, t: _Task):
        """(byte iterator, how many bytes fit in drip_max_seconds at one per drip_interval)."""
        spec = self._file_spec(t.request_id)
        interval = max(t.drip_interval, 1e-6)
        count = max(1, int(t.drip_max_seconds / interval))
        return ml_results.drip_source(spec.info, self._synthetic(t, None)), count

    def _drip(self, source: Iterator[bytes], count: int, interval: float) -> Iterator[bytes]:
        """One byte every `interval` seconds; stops early when the server stops."""
        for i, byte in enumerate(itertools.islice(source, count)):
            if i and self._stopping.wait(interval):
                return
            yield byte


def validate_provided_image_paths(image_paths: Any):
    """server_utils.validate_provided_image_paths(), same messages and same crashes."""
    first_item = image_paths[0]
    metadata_available = False
    if isinstance(first_item, str):
        for i in image_paths:
            if not isinstance(i, str):
                return "Not all items in image_paths are of type string.", metadata_available
        return None, metadata_available
    if isinstance(first_item, list):
        metadata_available = True
        for i in image_paths:
            if len(i) != 2:
                return (
                    "Items in image_paths are lists, but not all lists "
                    "are of length 2 [image locator, metadata]."
                ), metadata_available
        return None, metadata_available
    return "image_paths contain items that are not strings nor lists.", metadata_available


def _check_container_sas(sas: Any) -> Response | None:
    """sas_blob_utils.is_container_uri() and server_utils.check_data_container_sas()."""
    data = urllib.parse.parse_qs(urllib.parse.urlsplit(sas).query)
    if "sr" not in data or not ("c" in data["sr"] or "d" in data["sr"]):
        return _err(400, "input_container_sas provided is not for a container.")
    permissions = data["sp"][0] if "sp" in data else ""
    if ("r" not in permissions or "l" not in permissions) and "si" not in data:
        return _err(400, "input_container_sas provided does not have both read and list permissions.")
    return None


def _max_cycles_message(checks: int, succeeded: int) -> str:
    return (
        f"Job unfinished after {checks} x {MONITOR_PERIOD_MINUTES} minutes, please contact us to "
        f"retrieve the results. Number of succeeded shards: {succeeded}"
    )


def _replace_synthetic(spec: _FileSpec, synthetic: SyntheticImages) -> _FileSpec:
    return _FileSpec(
        spec.model_version,
        spec.completion_time,
        spec.kept_shards,
        spec.shard_size,
        spec.failure_rate,
        spec.access_failure_rate,
        synthetic,
    )


def _flask_json(status: int, obj: Any) -> Response:
    """Flask 2.0 jsonify: sorted keys, compact separators, trailing newline."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"
    return Response(status, text.encode("utf-8"), content_type="application/json")


def _err(status: int, message: str) -> Response:
    """server_utils.make_error()."""
    return _flask_json(status, {"error": message})


def _flask_page(status: int, allow: str | None = None) -> Response:
    name, description = _WERKZEUG_PAGES[status]
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
        f"<title>{status} {name}</title>\n<h1>{name}</h1>\n<p>{description}</p>\n"
    )
    return Response(status, page, {"Allow": allow} if allow else {}, "text/html; charset=utf-8")


def _blob_error(status: int, code: str, message: str) -> Response:
    """Azure Blob Storage's XML error body."""
    body = (
        f'\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}\n'
        f"RequestId:{uuid.uuid4()}\nTime:{utc_now()[:-1]}0Z</Message></Error>"
    )
    return Response(status, body.encode("utf-8"), {"x-ms-error-code": code}, "application/xml")
