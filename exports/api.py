"""HTTP handlers of the export API. Each takes the request and the services and returns a
response; errors are raised as ApiError and rendered in the contract's shape by `handle`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable

import azure.functions as func

from exports import callbacks, delivery, events, model, openapi, tracking
from exports.access import UNAUTHENTICATED, Access
from exports.contract import ErrorCode, Failure, MlStatus, Status
from exports.errors import api_error
from exports.messages import ExportMessage
from exports.ml_service import MlError, MlRejected, MlTaskNotFound, TaskStatus
from exports.ml_status import NOT_FOUND
from exports.panoptes import PanoptesUser
from exports.services import Services, get_services
from exports.store import ConcurrentUpdate, Versioned
from shared import telemetry
from shared.responses import INTERNAL_ERROR, ApiError, bearer_token, error_response, json_response
from shared.settings import SettingsError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

EXPORT_NOT_FOUND = api_error(
    ErrorCode.EXPORT_NOT_FOUND,
    "No export with that id exists, or you "
    "have no role on its project that may see exports (owner or "
    "collaborator).",
)


def handle(
    req: func.HttpRequest,
    handler: Callable[[func.HttpRequest, Services], func.HttpResponse],
    services: Callable[[], Services] = get_services,
) -> func.HttpResponse:
    with telemetry.log_context(**_route_ids(req)):
        return _answer(req, handler, services)


def _route_ids(req: func.HttpRequest) -> dict[str, str | None]:
    """The ids a route names, as log dimensions (only well-formed ones: they come from outside)."""
    params = req.route_params
    if params.get("export_id"):
        return events.ids(params.get("export_id"))
    return {
        "project_id": model.parse_panoptes_id(params.get("project_id")),
        "subject_set_id": model.parse_panoptes_id(params.get("subject_set_id")),
    }


def _answer(
    req: func.HttpRequest,
    handler: Callable[[func.HttpRequest, Services], func.HttpResponse],
    services: Callable[[], Services],
) -> func.HttpResponse:
    try:
        return handler(req, services())
    except ApiError as error:
        return error_response(error)
    except ConcurrentUpdate:  # the export kept changing under this request (store.apply gave up)
        return error_response(
            api_error(
                ErrorCode.EXPORT_BUSY, "The export is changing right now; please try again in a moment."
            )
        )
    except SettingsError as exc:
        log.error("configuration error: %s", exc)  # names the setting; the caller sees none
        return error_response(
            api_error(
                ErrorCode.SERVICE_MISCONFIGURED,
                "The export service is not configured correctly. The operators have been told.",
            )
        )
    except Exception:
        log.exception("unexpected error in %s %s", req.method, req.route_params)
        return error_response(INTERNAL_ERROR)


def _id(req: func.HttpRequest, name: str) -> str:
    raw = req.route_params.get(name) or ""
    value = model.parse_panoptes_id(raw)
    if value is None:
        label = name.replace("_", " ")
        digits = raw.lstrip("0")
        # Length first: int() refuses strings of more than 4,300 digits (a ValueError, not an answer).
        if (
            raw.isascii()
            and raw.isdigit()
            and digits
            and (len(digits) > 19 or int(digits) > model.MAX_PANOPTES_ID)
        ):
            raise api_error(
                ErrorCode.INVALID_ID,
                f"The {label} {raw[:40]} is too large for a Panoptes "
                f"id: Panoptes ids go up to {model.MAX_PANOPTES_ID}.",
            )
        raise api_error(
            ErrorCode.INVALID_ID, f"The {label} must be a positive whole number (a Panoptes id), like 1234."
        )
    return value


def _too_large(size: int) -> ApiError:
    return api_error(
        ErrorCode.BODY_TOO_LARGE,
        f"The request body is {size:,} bytes; this route takes no body, or a JSON object of at most 64 KiB.",
    )


def _refuse_large_body(req: func.HttpRequest) -> None:
    """413 on the declared Content-Length, before anything reads the body."""
    declared = (req.headers.get("Content-Length") or "").strip()
    if declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_BODY):
        raise _too_large(int(declared) if len(declared) <= 12 else 10**12)


def _check_body(req: func.HttpRequest) -> dict:
    """Read the body (only once the caller's token was accepted) and check its shape: the JSON
    object it holds ({} when empty)."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY:  # sent without a Content-Length (chunked)
        raise _too_large(len(body))
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON under MAX_BODY
        raise api_error(ErrorCode.INVALID_BODY, "The request body must be empty or a JSON object.") from None
    if not isinstance(parsed, dict):
        raise api_error(ErrorCode.INVALID_BODY, "The request body must be empty or a JSON object.")
    return parsed


def _callback(body: dict, services: Services) -> callbacks.CallbackRequest | None:
    """The callback a start POST asks for, checked (400 invalid_callback, nothing sent)."""
    allow_private = services.settings.callback_allow_private
    try:
        asked = callbacks.requested(body, allow_private)
        if asked is not None:
            problem = services.callback_sender.check_host(asked.url)
            if problem is not None:
                raise callbacks.InvalidCallback(f"callback_url cannot receive callbacks: {problem}.")
    except callbacks.InvalidCallback as exc:
        raise api_error(ErrorCode.INVALID_CALLBACK, str(exc)) from None
    return asked


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling (Panoptes said so), with the checks that need their token."""

    access: Access
    token: str
    user: PanoptesUser


def _caller(req: func.HttpRequest, services: Services) -> Caller:
    """The caller of a request, checked with Panoptes; 401 without a token Panoptes accepts."""
    access = Access(
        services.panoptes_for_requests,
        services.auth_cache,
        services.rejected_tokens,
        services.known_tokens,
        services.token_lookups,
    )
    token = bearer_token(req.headers)
    if token is None:
        raise UNAUTHENTICATED
    return Caller(access, token, access.user(token))


def _resource(services: Services, export: model.Export) -> dict:
    return services.resource(export)


def _visible_export(req: func.HttpRequest, services: Services, caller: Caller | None = None) -> Versioned:
    """An export the caller may see and cancel (owner or collaborator of its project, the roles
    that may start one), as read, for a conditional write; else 404 (or 401)."""
    caller = caller or _caller(req, services)
    export_id = req.route_params.get("export_id") or ""
    ids = model.parse_export_id(export_id)
    if ids is None or not caller.access.can_export(caller.token, caller.user.id, ids[0]):
        raise EXPORT_NOT_FOUND
    current = services.store.get(export_id)
    if current is None:
        raise EXPORT_NOT_FOUND
    return current


# -- routes ------------------------------------------------------------------------------
def start_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    project_id = _id(req, "project_id")
    subject_set_id = _id(req, "subject_set_id")
    _refuse_large_body(req)
    caller = _caller(req, services)
    callback = _callback(_check_body(req), services)
    caller.access.require_export_role(caller.token, caller.user.id, project_id)
    subject_count = caller.access.require_subject_set(caller.token, project_id, subject_set_id)

    now = services.clock()
    export_id = model.new_export_id(project_id, subject_set_id, now)
    sealed = services.cipher.encrypt(caller.token, bound_to=export_id)
    export = model.new_export(
        export_id,
        project_id,
        subject_set_id,
        caller.user.id,
        now,
        dt.timedelta(hours=services.settings.transient_retry_hours),
        sealed,
        subjects_total=subject_count,
        # A re-POST while this set's export is active keeps the first export's callback.
        callback_url=callback.url.text if callback else None,
        callback_token=services.cipher.encrypt(callback.token, delivery.token_binding(export_id))
        if callback
        else None,
    )
    return _queue(services, export, sealed, caller)


def _queue(services: Services, export: model.Export, sealed: str | None, caller: Caller) -> func.HttpResponse:
    """Create the export (or find the one already active for its subject set) and queue it:
    202 and the new export, or 200 and the active one."""
    current, created = services.store.create(export)
    telemetry.bind(export_id=current.export.id)
    headers = {"Location": f"/api/exports/{current.export.id}"}
    if not created:
        return json_response(_resource(services, current.export), 200, headers)
    try:
        services.enqueue(ExportMessage(export.id, sealed))
    except Exception:
        log.exception("export %s: could not queue", export.id)
        _fail_unqueued(services, current)
        raise api_error(
            ErrorCode.QUEUE_UNAVAILABLE, "The export could not be queued. Please try again in a minute."
        ) from None
    log.info(
        "export %s (project %s, subject set %s): queued by user %s%s",
        export.id,
        export.project_id,
        export.subject_set_id,
        caller.user.id,
        f", re-running {export.rerun_of}" if export.rerun_of else "",
    )
    return json_response(_resource(services, current.export), 202, headers)


def rerun_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """A new export of the same subject set whose manifest is exactly the failed and missing rows
    of a completed export (recorded when it completed: the detections link is not needed)."""
    _refuse_large_body(req)
    caller = _caller(req, services)
    _check_body(req)
    parent = _visible_export(req, services, caller).export
    if parent.status != Status.COMPLETED:
        raise api_error(
            ErrorCode.EXPORT_NOT_COMPLETED,
            f"Export {parent.id} is {parent.status}: only a completed export's failed and missing "
            "images can be re-run.",
        )
    if not parent.rerun_images or parent.rerun_blob is None:
        reason = parent.rerun_note or "Every image was scored: nothing failed or went missing."
        raise api_error(
            ErrorCode.NOTHING_TO_RERUN, f"There is nothing to re-run for export {parent.id}. {reason}"
        )
    now = services.clock()
    export = model.new_rerun(
        parent,
        model.new_export_id(parent.project_id, parent.subject_set_id, now),
        caller.user.id,
        now,
        dt.timedelta(hours=services.settings.transient_retry_hours),
    )
    return _queue(services, export, None, caller)


def _fail_unqueued(services: Services, current: Versioned) -> None:
    try:
        services.store.apply(
            current,
            lambda e: (
                None
                if e.is_final
                else model.fail(
                    e,
                    Failure.INTERNAL_ERROR,
                    "The export could not be queued. Please export again.",
                    services.clock(),
                )
            ),
        )
    except Exception:
        log.exception("export %s: could not mark the unqueued export failed", current.export.id)


def get_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    return json_response(_resource(services, _visible_export(req, services).export))


def list_projects(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """Who is signed in, and the projects on which they may export (what the page lists first)."""
    caller = _caller(req, services)
    user = caller.user
    projects = [
        {
            "id": str(p["id"]),
            "display_name": _text(p.get("display_name")),
            "slug": _text(p.get("slug")),
            "roles": roles,
        }
        for p, roles in caller.access.export_projects(caller.token, user.id)
    ]
    return json_response(
        {
            "user": {"id": user.id, "login": user.login, "display_name": user.display_name},
            "projects": projects,
        }
    )


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def list_project_exports(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    project_id = _id(req, "project_id")
    caller = _caller(req, services)
    caller.access.require_export_role(caller.token, caller.user.id, project_id)
    subject_sets = caller.access.subject_sets_of_project(caller.token, project_id)
    exports = services.store.latest_of_project(project_id)
    body: dict[str, list[dict[str, object]]] = {"subject_sets": []}
    for subject_set in subject_sets:
        set_id = str(subject_set["id"])
        latest, completed = exports.get(set_id, (None, None))
        count = subject_set.get("set_member_subjects_count")
        body["subject_sets"].append(
            {
                "id": set_id,
                "display_name": _text(subject_set.get("display_name")),
                "subjects_count": count if isinstance(count, int) and not isinstance(count, bool) else None,
                "latest_export": _maybe(services, latest),
                "latest_completed_export": _maybe(services, completed),
            }
        )
    return json_response(body)


def _maybe(services: Services, export: model.Export | None) -> dict | None:
    return _resource(services, export) if export is not None else None


# -- cancel ------------------------------------------------------------------------------
class _NowWithTheService(Exception):
    """The export reached the ML service while the cancel was being decided."""


def _already_final(export: model.Export) -> ApiError:
    return api_error(
        ErrorCode.EXPORT_FINAL, f"The export is already {export.status}; there is nothing to cancel."
    )


def cancel_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    _refuse_large_body(req)
    caller = _caller(req, services)
    _check_body(req)
    current = _visible_export(req, services, caller)
    if current.export.is_final:
        raise _already_final(current.export)
    if current.export.ml_task_id is None:
        # Not with the ML service (yet): cancelled here; a worker stops at its next write, and
        # one whose submission was in flight passes the cancel on (exports/worker.py).
        def cancel_here(export: model.Export) -> model.Export:
            if export.is_final:
                raise _already_final(export)
            if export.ml_task_id is not None:
                raise _NowWithTheService()
            return model.cancel(export, services.clock())

        try:
            current = services.store.apply(current, cancel_here)
            log.info("export %s: cancelled before submission", current.export.id)
            return json_response(_resource(services, current.export))
        except _NowWithTheService:
            current = services.store.get(current.export.id) or current
    return _cancel_ml_task(services, current)


def _cancel_ml_task(services: Services, current: Versioned) -> func.HttpResponse:
    """Ask the ML service to cancel, and record the outcome. The service cancels only running
    (or problem) tasks; what it refuses is settled by reading the task's status at once."""
    task_id = current.export.ml_task_id
    assert task_id is not None  # only exports with the ML service get here
    for attempt in range(2):  # a second try only if the task started running in between
        try:
            services.ml.cancel(task_id)
            break
        except MlTaskNotFound:
            updated = tracking.record(services, current, NOT_FOUND)
            if updated.is_final:
                raise _already_final(updated) from None
            raise api_error(
                ErrorCode.CANCEL_REFUSED,
                f"The ML service does not know task {task_id} "
                "right now, so nothing is running there to cancel. If it stays unknown, "
                "the export is marked failed (ml_task_not_found).",
            ) from None
        except MlRejected as exc:
            if exc.status != 400:
                log.error(
                    "export %s: the ML service refused to cancel task %s: HTTP %s %s",
                    current.export.id,
                    task_id,
                    exc.status,
                    exc.message,
                )
                raise api_error(
                    ErrorCode.ML_UNAVAILABLE,
                    f"The ML service refused the cancel request "
                    f"(HTTP {exc.status}). The operators have been told.",
                ) from None
            current, answer = _read_and_record(services, current)
            if current.export.is_final:
                raise _already_final(current.export) from None
            if (
                attempt == 0
                and isinstance(answer, TaskStatus)
                and answer.status in (MlStatus.RUNNING, MlStatus.PROBLEM)
            ):
                continue
            status = answer.status if isinstance(answer, TaskStatus) else "unknown"
            raise api_error(
                ErrorCode.CANCEL_REFUSED,
                f"The ML service cannot cancel task {task_id} "
                f"while it is {status}: {_status_in_words(status)} It can cancel a "
                "task once it runs; try again in a few minutes.",
            ) from None
        except MlError:
            raise api_error(
                ErrorCode.ML_UNAVAILABLE,
                "The ML service could not be reached to cancel the task. Please try again in a minute.",
            ) from None
    log.info("export %s: cancel accepted for ML task %s", current.export.id, task_id)
    # Recorded now, and for good: the service's monitor later overwrites its own `canceled`
    # with `running` and then `completed` (partial results), which must not undo the cancel.
    current = services.store.apply(
        current,
        lambda e: None if e.is_final else model.cancel(e, services.clock(), ml_status=MlStatus.CANCELED),
    )
    return json_response(_resource(services, current.export))


def _read_and_record(services: Services, current: Versioned) -> tuple[Versioned, object]:
    """The task's status now, recorded as the poller would; (export as stored, the answer)."""
    assert current.export.ml_task_id is not None
    try:
        answer: object = services.ml.status(current.export.ml_task_id)
    except MlTaskNotFound:
        answer = NOT_FOUND
    except MlError:
        raise api_error(
            ErrorCode.ML_UNAVAILABLE,
            "The ML service refused to cancel the task and then "
            "could not be reached to say why. Please try again in a minute.",
        ) from None
    tracking.record(services, current, answer)
    return services.store.get(current.export.id) or current, answer


_STATUS_IN_WORDS: dict[str, str] = {
    MlStatus.CREATED: "it has accepted the task but is still listing its images.",
    MlStatus.RUNNING: "it is processing the images.",
    MlStatus.PROBLEM: "it reported a problem with the task.",
}


def _status_in_words(status: str) -> str:
    return _STATUS_IN_WORDS.get(status, "its state is unclear.")


def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI description: anonymous and cacheable (it changes only with a deployment)."""
    return json_response(openapi.document(), headers={"Cache-Control": "public, max-age=300"})


def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        services = get_services()
        services.store.ping()
        services.queue.get_queue_properties()
    except Exception as exc:
        log.error("health check failed: %s", type(exc).__name__)
        return json_response({"status": "unavailable"}, 503)
    return json_response({"status": "ok"})
