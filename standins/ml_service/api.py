"""The Flask app's routes (server.py): request_detections with its checks in the real order,
cancel_request, the status read, and the small routes, answered as Flask answers them."""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..server import Request, Response, untraced
from . import real
from .listing import Submission
from .tasks import Task
from .wire import error, flask_json, flask_page

if TYPE_CHECKING:
    from .service import MlServiceStandIn


def route(service: MlServiceStandIn, req: Request) -> Response:
    """Every path of the Flask app under `service.base_path`."""
    if req.path == service.base_path:  # Werkzeug's strict slashes: redirect to the rule with "/"
        return Response(308, "", headers={"Location": service.url + "/"})
    if not req.path.startswith(service.base_path + "/"):
        return flask_page(404)
    path = req.path[len(service.base_path) + 1 :]
    get_routes: dict[str, Callable[[], Response]] = {
        "": lambda: Response(200, "Camera traps batch processing API. Instance: zooniverse"),
        "default_model_version": lambda: Response(200, real.DEFAULT_MODEL_VERSION),
        "supported_model_versions": lambda: flask_json(200, sorted(real.MD_VERSIONS)),
        "all_jobs": lambda: flask_json(200, _monitored_jobs(service)),
    }
    if path in ("request_detections", "cancel_request"):
        if req.method != "POST":
            return flask_page(405, allow="OPTIONS, POST")
        return (
            request_detections(service, req) if path == "request_detections" else cancel_request(service, req)
        )
    reading = req.method in ("GET", "HEAD")  # Flask answers HEAD wherever GET is routed
    if path.startswith("task/") and path.count("/") == 1 and len(path) > len("task/"):
        if not reading:
            return flask_page(405, allow="GET, HEAD, OPTIONS")
        return retrieve_job_status(service, path[len("task/") :])
    if path in get_routes:
        return get_routes[path]() if reading else flask_page(405, allow="GET, HEAD, OPTIONS")
    return flask_page(404)


def _read_json(req: Request) -> tuple[Any, Response | None]:
    """Flask's request.is_json + get_json(): both failures are 415 in the real views."""
    ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not (ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))):
        return None, error(415, real.JSON_MIMETYPE_415)
    try:
        return req.json(), None
    except ValueError:
        return None, error(415, f"Error occurred reading POST request body: {real.BAD_JSON_TEXT}.")


# -- request_detections ---------------------------------------------------------------
def request_detections(service: MlServiceStandIn, req: Request) -> Response:
    body, err = _read_json(req)
    if err:
        return err
    try:
        err = validate_request(body, service.callers)
    except Exception:  # the real view crashes on these bodies: Flask's 500 page
        return flask_page(500)
    if err:
        return err
    table = service.table
    with table.lock:
        if service.max_active_jobs is not None and table.active_jobs() >= service.max_active_jobs:
            return error(503, real.TOO_MANY_JOBS)
        request_id = uuid.uuid4().hex
        task = Task(
            request_id,
            body,
            list(service.default_plan),
            service.failure_rate,
            service.failed_shards,
            service.shard_size,
            service.access_failure_rate,
        )
        sub = Submission(request_id, body)
        table.tasks[request_id] = task
        service.submissions.append(sub)
        service.status_calls[request_id] = 0
        service.accepted_count += 1
    threading.Thread(
        target=untraced(table.run_job_thread),
        args=(task, sub, service.download_timeout, service.sample_rng),
        name=f"job_{request_id}",
        daemon=True,
    ).start()
    return flask_json(200, {"request_id": request_id})


def validate_request(post_body: Any, callers: set[str]) -> Response | None:
    """server.request_detections() line by line; exceptions escape as they do there."""
    caller_id = post_body.get("caller", None)  # AttributeError for a non-object body
    if caller_id is None or caller_id not in list(callers):
        return error(401, real.CALLER_401)
    use_url = post_body.get("use_url", False)
    if use_url and isinstance(use_url, str) and use_url.lower() in ["false", "f", "no", "n"]:
        use_url = False
    input_container_sas = post_body.get("input_container_sas", None)
    if not input_container_sas and not use_url:
        return error(
            400,
            "input_container_sas with read and list access is a required field when not using image URLs.",
        )
    if input_container_sas is not None:
        err = _check_container_sas(input_container_sas)
        if err:
            return err
    images_requested_json_sas = post_body.get("images_requested_json_sas", None)
    if images_requested_json_sas is not None:
        if not images_requested_json_sas.startswith(("http://", "https://")):
            return error(400, "images_requested_json_sas needs to be an URL.")
    if use_url and images_requested_json_sas is None:
        return error(400, "images_requested_json_sas is required since use_url is true.")
    model_version = post_body.get("model_version", "")
    if model_version != "":
        model_version = str(model_version)
        if model_version not in real.MD_VERSIONS:
            return error(400, f"model_version {model_version} is not supported.")
    request_name = post_body.get("request_name", "")
    if request_name != "":
        if len(request_name) > 92:
            return error(400, "request_name is longer than 92 characters.")
        if not set(request_name) <= real.ALLOWED_NAME_CHARS:
            return error(
                400, "request_name contains invalid characters (only letters, digits, - and _ are allowed)."
            )
    if images_requested_json_sas is None:
        return error(
            400,
            "Listing images in input_container_sas is not supported by this emulator "
            "(send images_requested_json_sas).",
        )
    return None


def _check_container_sas(sas: Any) -> Response | None:
    """sas_blob_utils.is_container_uri() and server_utils.check_data_container_sas()."""
    data = urllib.parse.parse_qs(urllib.parse.urlsplit(sas).query)
    if "sr" not in data or not ("c" in data["sr"] or "d" in data["sr"]):
        return error(400, "input_container_sas provided is not for a container.")
    permissions = data["sp"][0] if "sp" in data else ""
    if ("r" not in permissions or "l" not in permissions) and "si" not in data:
        return error(400, "input_container_sas provided does not have both read and list permissions.")
    return None


# -- cancel_request ---------------------------------------------------------------------
def cancel_request(service: MlServiceStandIn, req: Request) -> Response:
    table = service.table
    with table.lock:
        service.cancel_calls += 1
    body, err = _read_json(req)
    if err:
        return err
    try:
        request_id = body.get("request_id", None)
        caller_id = body.get("caller", None)
    except AttributeError:
        return flask_page(500)
    if request_id is None:
        return error(400, "request_id is a required field.")
    if caller_id is None or caller_id not in list(service.callers):
        return error(401, real.CANCEL_CALLER_401)
    with table.lock:
        t = table.tasks.get(str(request_id))  # no dash stripping here, as in the real server
        if t is None:
            return error(404, real.TASK_NOT_FOUND)
        if t.status not in ("running", "problem"):
            return error(400, f"Task has {t.status} and cannot be canceled")
        if not t.batch_job_exists:
            return error(500, f"Error when canceling the request: {real.JOB_NOT_FOUND_TEXT}")
        table.terminate(t)
    return Response(200, real.CANCEL_OK)


# -- the status read ------------------------------------------------------------------------
def retrieve_job_status(service: MlServiceStandIn, raw_id: str) -> Response:
    """What the job's threads last wrote; reading it changes nothing."""
    request_id = raw_id.replace("-", "")  # "Fix for Zooniverse" in the real server
    table = service.table
    with table.lock:
        t = table.tasks.get(request_id)
        if t is None:
            return error(404, real.TASK_NOT_FOUND)
        service.status_calls[request_id] += 1
        return flask_json(
            200,
            {
                "Status": table.status_dict(t, with_num_tasks=False),
                "Endpoint": f"{service.base_path}/request_detections",
                "TaskId": request_id,
                "Timestamp": t.last_updated,
            },
        )


def _monitored_jobs(service: MlServiceStandIn) -> list[str]:
    """/all_jobs: the jobs that have a monitor thread (named job_<id>) right now."""
    with service.table.lock:
        return service.table.monitored_jobs()
