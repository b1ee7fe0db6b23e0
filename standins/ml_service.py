"""MegaDetector batch API v4 emulator (Zooniverse's copy).

Mirrors microsoft/CameraTraps api/batch_processing/api_core/server.py and
server_orchestration.py: the same validation order, status codes, error
texts and status messages. Instead of Azure Batch, each task walks a
scripted plan of statuses, one step per status call, so tests are
deterministic. Like the real service, the manifest is fetched with a plain
HTTP GET in a background thread after the POST has been answered.
"""
from __future__ import annotations

import hashlib
import json
import math
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from .server import Request, Response, StandInServer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # case-insensitive, as in server_api_config
MODEL_VERSIONS = ("2", "3", "4.1")
DEFAULT_MODEL_VERSION = "4.1"
FINAL = ("completed", "failed", "canceled")
ALLOWED_NAME_CHARS = set(string.ascii_letters + string.digits + "_-")
EMPTY_LIST_MSG = "0 images found in provided list of images."
NO_IMAGES_MSG = ("Zero images found in container or in provided list of images "
                 "after filtering with the provided parameters.")
CANCEL_OK = "Canceling signal has been sent. You can verify the status at the /task endpoint"
DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}
# Fetch manifests directly: a proxy from the environment must not sit between
# the emulator and a local Azurite.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def utc_now() -> str:
    # server_utils.get_utc_time(): '2019-05-19 08:57:43'
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Submission:
    """What the service received for one accepted request."""
    request_id: str
    body: dict
    manifest_bytes: Optional[bytes] = None
    manifest: Any = None
    download_status: Optional[int] = None
    content_type: Optional[str] = None
    error: Optional[str] = None


@dataclass
class _Task:
    request_id: str
    body: dict
    plan: list  # steps: "status" or ("status", message)
    failure_rate: float
    failed_shards: int
    shard_size: int
    pos: int = 0
    status: str = "created"
    message: Any = "Request received. Listing images next..."
    last_updated: str = field(default_factory=utc_now)
    images: Optional[list] = None  # manifest rows that survived filtering
    running_checks: int = 0
    downloaded: threading.Event = field(default_factory=threading.Event)

    @property
    def num_shards(self) -> int:
        return max(1, math.ceil(len(self.images or []) / self.shard_size))


class MlServiceStandIn(StandInServer):
    def __init__(self, callers=("zooniverse",), latency: float = 0.0, seed: int = 0,
                 base_path: str = "/v4/camera-trap/detection-batch", max_active_jobs: Optional[int] = None,
                 download_timeout: float = 10.0):
        super().__init__(latency=latency, seed=seed)
        self.callers = set(callers)
        self.base_path = base_path.rstrip("/")
        self.max_active_jobs = max_active_jobs  # None: no limit (real service: 300)
        self.download_timeout = download_timeout
        # Defaults for tasks created from now on; per task: set_plan()/configure().
        self.default_plan: list = ["created", "running", "completed"]
        self.failure_rate = 0.0
        self.failed_shards = 0
        self.shard_size = 2000  # NUM_IMAGES_PER_TASK in the real config
        self.submissions: list[Submission] = []
        self.accepted_count = 0
        self.cancel_calls = 0
        self.status_calls: dict[str, int] = {}
        self._tasks: dict[str, _Task] = {}
        self._task_lock = threading.RLock()

    @property
    def url(self) -> str:
        return self.root_url + self.base_path

    # -- test controls -----------------------------------------------------------
    def task(self, request_id: str) -> dict:
        """Current status of a task, without counting as a status call."""
        with self._task_lock:
            t = self._tasks[request_id]
            return {"request_status": t.status, "message": t.message}

    def set_plan(self, request_id: str, steps: list) -> None:
        """The next status calls walk through `steps`, one per call."""
        with self._task_lock:
            t = self._tasks[request_id]
            t.plan, t.pos = [(t.status, t.message)] + list(steps), 0

    def set_status(self, request_id: str, status: str, message: Any = None) -> None:
        """Jump to a status now and stay there."""
        with self._task_lock:
            t = self._tasks[request_id]
            t.plan, t.pos = [(status, message)], 0
            self._apply(t, status, message)

    def configure(self, request_id: str, *, failure_rate: Optional[float] = None,
                  failed_shards: Optional[int] = None, shard_size: Optional[int] = None) -> None:
        with self._task_lock:
            t = self._tasks[request_id]
            t.failure_rate = t.failure_rate if failure_rate is None else failure_rate
            t.failed_shards = t.failed_shards if failed_shards is None else failed_shards
            t.shard_size = t.shard_size if shard_size is None else shard_size

    def wait_for_downloads(self, timeout: float = 5.0) -> bool:
        """Block until every accepted task has fetched and checked its manifest."""
        deadline = time.monotonic() + timeout
        with self._task_lock:
            tasks = list(self._tasks.values())
        return all(t.downloaded.wait(max(0.0, deadline - time.monotonic())) for t in tasks)

    # -- HTTP ------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if req.method == "GET" and req.path.startswith("/results/"):
            return self._results(req)
        if not req.path.startswith(self.base_path + "/") and req.path != self.base_path:
            return Response(404, {"error": "Not found"})
        route = req.path[len(self.base_path):].strip("/")
        if req.method == "POST" and route == "request_detections":
            return self._request_detections(req)
        if req.method == "POST" and route == "cancel_request":
            return self._cancel(req)
        if req.method == "GET" and route.startswith("task/") and route.count("/") == 1:
            return self._status(route.split("/", 1)[1])
        if req.method == "GET" and route == "":
            return Response(200, "Camera traps batch processing API. Instance: zooniverse")
        if req.method == "GET" and route == "default_model_version":
            return Response(200, DEFAULT_MODEL_VERSION)
        if req.method == "GET" and route == "supported_model_versions":
            return Response(200, list(MODEL_VERSIONS))
        return Response(404, {"error": "Not found"})

    def _read_json(self, req: Request):
        """Flask's request.is_json + get_json(): both failures are 415 there."""
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not (ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))):
            return None, Response(415, {"error": "Body needs to have a JSON mimetype (e.g., application/json)."})
        try:
            body = req.json()
            if not isinstance(body, dict):
                raise ValueError("the JSON body is not an object")
        except Exception as e:
            return None, Response(415, {"error": f"Error occurred reading POST request body: {e}."})
        return body, None

    def _request_detections(self, req: Request) -> Response:
        body, err = self._read_json(req)
        if err:
            return err
        if body.get("caller") not in self.callers:
            return _err(401, "Parameter caller is not supplied or is not on our allowlist. "
                             "Please email cameratraps@lila.science to request access.")
        use_url = body.get("use_url", False)
        if isinstance(use_url, str) and use_url.lower() in ("false", "f", "no", "n"):
            use_url = False
        if body.get("input_container_sas") is None and not use_url:
            return _err(400, "input_container_sas with read and list access is a required "
                             "field when not using image URLs.")
        if body.get("input_container_sas") is not None:
            return _err(400, "input_container_sas is not supported by this emulator (use_url only).")
        sas = body.get("images_requested_json_sas")
        if sas is not None and not (isinstance(sas, str) and sas.startswith(("http://", "https://"))):
            return _err(400, "images_requested_json_sas needs to be an URL.")
        if use_url and sas is None:
            return _err(400, "images_requested_json_sas is required since use_url is true.")
        model_version = str(body.get("model_version", "") or "")
        if model_version and model_version not in MODEL_VERSIONS:
            return _err(400, f"model_version {model_version} is not supported.")
        name = body.get("request_name", "")
        if name != "":
            if len(str(name)) > 92:
                return _err(400, "request_name is longer than 92 characters.")
            if not isinstance(name, str) or not set(name) <= ALLOWED_NAME_CHARS:
                return _err(400, "request_name contains invalid characters (only letters, "
                                 "digits, - and _ are allowed).")
        with self._task_lock:
            if self.max_active_jobs is not None and self._active_jobs() >= self.max_active_jobs:
                return _err(503, "Too many active jobs, please try again later")
            request_id = uuid.uuid4().hex
            task = _Task(request_id, body, list(self.default_plan), self.failure_rate,
                         self.failed_shards, self.shard_size)
            sub = Submission(request_id, body)
            self._tasks[request_id] = task
            self.submissions.append(sub)
            self.status_calls[request_id] = 0
            self.accepted_count += 1
        threading.Thread(target=self._prepare, args=(task, sub, sas, bool(use_url)),
                         name=f"job_{request_id}", daemon=True).start()
        return Response(200, {"request_id": request_id})

    def _active_jobs(self) -> int:
        return sum(1 for t in self._tasks.values() if t.status not in FINAL)

    def _prepare(self, task: _Task, sub: Submission, sas: str, use_url: bool) -> None:
        """create_batch_job(): fetch the manifest, validate and filter it."""
        try:
            try:
                with _DIRECT.open(sas, timeout=self.download_timeout) as resp:
                    sub.download_status = resp.status
                    sub.content_type = resp.headers.get("Content-Type")
                    sub.manifest_bytes = resp.read()
            except urllib.error.HTTPError as e:
                sub.download_status, sub.content_type = e.code, e.headers.get("Content-Type")
                raise RuntimeError(f"HTTP {e.code} downloading images_requested_json_sas") from None
            sub.manifest = json.loads(sub.manifest_bytes)
            rows = _filter_manifest(sub.manifest, use_url)
        except Exception as e:
            sub.error = f"Error occurred while preparing the Batch job: {e}"
            with self._task_lock:
                task.plan, task.pos = [("failed", sub.error)], 0
                self._apply(task, "failed", sub.error)
        else:
            with self._task_lock:
                task.images = rows
                if rows is None or not rows:  # nothing to process: done, with a plain string
                    msg = EMPTY_LIST_MSG if rows is None else NO_IMAGES_MSG
                    task.plan, task.pos = [("completed", msg)], 0
                    self._apply(task, "completed", msg)
                elif task.status == "created":
                    self._apply(task, "created", f"{len(rows)} images listed; submitting the job...")
        finally:
            task.downloaded.set()

    def _status(self, raw_id: str) -> Response:
        request_id = raw_id.replace("-", "")  # "Fix for Zooniverse" in the real server
        with self._task_lock:
            t = self._tasks.get(request_id)
            if t is None:
                return _err(404, "Task is not found.")
            self.status_calls[request_id] += 1
            # The plan only moves once the manifest is in, as the real job stays
            # "created" while it lists images.
            if t.downloaded.is_set() and t.status not in FINAL and t.pos + 1 < len(t.plan):
                t.pos += 1
                step = t.plan[t.pos]
                status, message = (step, None) if isinstance(step, str) else step
                self._apply(t, status, message)
            status = {"request_status": t.status, "time": t.last_updated, "message": t.message}
            if t.images:
                status["num_images"] = len(t.images)
            return Response(200, {"Status": status, "Endpoint": f"{self.base_path}/request_detections",
                                  "TaskId": request_id, "Timestamp": t.last_updated})

    def _apply(self, t: _Task, status: str, message: Any = None) -> None:
        """Set a status with the real service's wording unless a message is given."""
        n, shards = len(t.images or []), t.num_shards
        failed = min(t.failed_shards, shards)
        if message is None:
            if status == "created":
                message = "Request received. Listing images next..."
            elif status == "running" and t.running_checks == 0:
                message = (f"Submitted {n} images to cluster in {shards} shards. "
                           "Number of shards failed to be submitted: 0")
            elif status == "running":
                message = (f"Check number {t.running_checks}, {shards - failed} out of {shards} shards "
                           f"have completed successfully, {failed} shards have failed.")
            elif status == "problem":
                message = (f"Job unfinished after {t.running_checks + 1} x 10 minutes, please contact us "
                           f"to retrieve the results. Number of succeeded shards: {shards - failed}")
            elif status == "failed":
                message = "Error occurred while preparing the Batch job: emulated failure"
            elif status == "canceled":
                message = "Request has been canceled by the user."
            elif status == "completed":
                message = {"num_failed_shards": failed,
                           "output_file_urls": {"detections": self._results_url(t.request_id)}}
        if status in ("running", "problem"):
            t.running_checks += 1
        t.status, t.message, t.last_updated = status, message, utc_now()

    def _results_url(self, request_id: str) -> str:
        return (f"{self.root_url}/results/{request_id}/detections.json"
                "?sv=2019-12-12&sr=b&sp=r&se=2099-01-01T00%3A00%3A00Z&sig=FAKE")

    def _cancel(self, req: Request) -> Response:
        with self._task_lock:
            self.cancel_calls += 1
        body, err = self._read_json(req)
        if err:
            return err
        request_id = body.get("request_id")
        if request_id is None:
            return _err(400, "request_id is a required field.")
        if body.get("caller") not in self.callers:
            return _err(401, "Parameter caller is not supplied or is not on our allowlist.")
        with self._task_lock:
            t = self._tasks.get(str(request_id))  # no dash stripping here, as in the real server
            if t is None:
                return _err(404, "Task is not found.")
            if t.status not in ("running", "problem"):
                return _err(400, f"Task has {t.status} and cannot be canceled")
            t.plan, t.pos = [("canceled", None)], 0
            self._apply(t, "canceled")
        return Response(200, CANCEL_OK)

    def _results(self, req: Request) -> Response:
        parts = req.path.strip("/").split("/")  # results/<id>/detections.json
        with self._task_lock:
            t = self._tasks.get(parts[1]) if len(parts) == 3 and parts[2] == "detections.json" else None
            ready = t is not None and isinstance(t.message, dict) and t.status == "completed"
        if not ready:
            return Response(404, "The specified blob does not exist.", content_type="text/plain")
        if not req.query.get("sig"):
            return Response(403, "Server failed to authenticate the request.", content_type="text/plain")
        return Response(200, self.detections(t.request_id), content_type="application/json")

    def detections(self, request_id: str) -> dict:
        """The detections file of a task, in the batch API output format 1.1."""
        t = self._tasks[request_id]
        # Images in a failed shard are simply missing; the failed shards are the last ones.
        kept = (t.num_shards - min(t.failed_shards, t.num_shards)) * t.shard_size
        images = [_detect(row, t.failure_rate) for row in t.images[:kept]]
        version = str(t.body.get("model_version") or DEFAULT_MODEL_VERSION)
        return {"info": {"detector": f"megadetector_v{version}", "detection_completion_time": t.last_updated,
                         "format_version": "1.1"},
                "detection_categories": dict(DETECTION_CATEGORIES), "images": images}


def _err(status: int, message: str) -> Response:
    return Response(status, {"error": message})


def _filter_manifest(manifest: Any, use_url: bool) -> Optional[list]:
    """validate_provided_image_paths() plus the suffix filter; None for an empty list."""
    if not isinstance(manifest, list):
        raise ValueError("image paths provided in the json are not valid: not a JSON list.")
    if not manifest:
        return None
    with_meta = isinstance(manifest[0], list)
    for row in manifest:
        ok = (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)) if with_meta \
            else isinstance(row, str)
        if not ok:
            raise ValueError("image paths provided in the json are not valid: items must all be strings "
                             "or all be [image locator, metadata] lists.")
    kept = []
    for row in manifest:
        locator = row[0] if with_meta else row
        path = urllib.parse.urlparse(locator).path if use_url else locator
        if path.lower().endswith(IMAGE_SUFFIXES):
            kept.append(row)
    return kept


def _detect(row, failure_rate: float) -> dict:
    """Deterministic fake MegaDetector output for one image (hash of its URL)."""
    url, meta = (row[0], row[1]) if isinstance(row, list) else (row, None)
    h = hashlib.sha256(url.encode("utf-8")).digest()
    unit = [int.from_bytes(h[i:i + 2], "big") / 65535 for i in range(0, 32, 2)]
    out: dict = {"file": url}
    if meta is not None:
        out["meta"] = meta  # verbatim: the Subject Assistant parses it
    if unit[0] < failure_rate:
        out["failure"] = "Failure image access"
        return out
    n = 0 if unit[1] < 0.4 else 1 + int(unit[2] * 3) % 3  # ~40% empty, like camera-trap data
    dets = []
    for k in range(n):
        u = unit[3 + 3 * k: 6 + 3 * k]
        category = "1" if u[0] < 0.8 else ("2" if u[0] < 0.95 else "3")
        x, y = round(u[1] * 0.6, 4), round(u[2] * 0.6, 4)
        dets.append({"category": category, "conf": round(0.1 + 0.899 * u[(k + 1) % 3], 3),
                     "bbox": [x, y, round(0.1 + u[2] * 0.3, 4), round(0.1 + u[1] * 0.3, 4)]})
    out["max_detection_conf"] = max((d["conf"] for d in dets), default=0.0)
    out["detections"] = dets
    return out
