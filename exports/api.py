"""HTTP handlers of the export API. Each takes the request and the services and returns a
response; errors are raised as ApiError and rendered in the contract's shape by `handle`."""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Callable

import azure.functions as func

from exports import model
from exports.access import Access
from exports.ml_service import MlError, MlRejected
from exports.poller import apply_status  # the poller owns ML status mapping
from exports.services import Services, get_services
from shared.http import ApiError, bearer_token, error_response, json_response
from shared.settings import SettingsError
from shared.store import ConcurrentUpdate, Versioned

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

EXPORT_NOT_FOUND = ApiError(404, "export_not_found", "No export with that id exists, or you "
                            "have no role on its project.")


def handle(req: func.HttpRequest, handler: Callable[[func.HttpRequest, Services], func.HttpResponse],
           services: Callable[[], Services] = get_services) -> func.HttpResponse:
    try:
        return handler(req, services())
    except ApiError as error:
        return error_response(error)
    except SettingsError as exc:
        log.error("configuration error: %s", exc)  # names the setting; the caller sees none
        return error_response(ApiError(500, "service_misconfigured", "The export service is not "
                                       "configured correctly. The operators have been told."))
    except Exception:
        log.exception("unexpected error in %s %s", req.method, req.route_params)
        return error_response(ApiError(500, "internal_error", "Something went wrong on our side. "
                                       "Please try again; nothing was changed if it fails again."))


def _id(req: func.HttpRequest, name: str) -> str:
    value = model.parse_panoptes_id(req.route_params.get(name))
    if value is None:
        label = name.replace("_", " ")
        raise ApiError(400, "invalid_id", f"The {label} must be a positive whole number "
                       f"(a Panoptes id), like 1234.")
    return value


def _check_body(req: func.HttpRequest) -> None:
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise ApiError(413, "body_too_large", "The request body is too large; this route takes "
                       "no body.")
    if body.strip():
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: deeply nested JSON under MAX_BODY
            raise ApiError(400, "invalid_body", "The request body must be empty or a JSON object.") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "invalid_body", "The request body must be empty or a JSON object.")


def _access(services: Services) -> Access:
    return Access(services.panoptes, services.auth_cache)


def _resource(services: Services, export: model.Export) -> dict:
    return model.to_resource(export, services.settings.external_url)


def _visible_export(req: func.HttpRequest, services: Services) -> Versioned:
    """An export the caller has a role on (as read, for a conditional write), else 404 (or 401)."""
    access = _access(services)
    token = bearer_token(req.headers)
    user_id = access.user_id(token)
    export_id = req.route_params.get("export_id") or ""
    ids = model.parse_export_id(export_id)
    if ids is None or not access.roles(token, user_id, ids[0]):
        raise EXPORT_NOT_FOUND
    current = services.store.get(export_id)
    if current is None:
        raise EXPORT_NOT_FOUND
    return current


# -- routes ------------------------------------------------------------------------------
def start_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    project_id = _id(req, "project_id")
    subject_set_id = _id(req, "subject_set_id")
    _check_body(req)
    access = _access(services)
    token = bearer_token(req.headers)
    user_id = access.user_id(token)
    access.require_export_role(token, user_id, project_id)
    subject_count = access.require_subject_set(token, project_id, subject_set_id)

    now = services.clock()
    ciphertext = services.cipher.encrypt(token)
    export = model.new_export(model.new_export_id(project_id, subject_set_id, now), project_id,
                              subject_set_id, user_id, now,
                              dt.timedelta(hours=services.settings.transient_retry_hours), ciphertext,
                              subjects_total=subject_count)
    current, created = services.store.create(export)
    headers = {"Location": f"/api/exports/{current.export.id}"}
    if not created:
        return json_response(_resource(services, current.export), 200, headers)
    try:
        services.enqueue(export.id, ciphertext)
    except Exception:
        log.exception("export %s: could not queue", export.id)
        _fail_unqueued(services, current)
        raise ApiError(503, "queue_unavailable", "The export could not be queued. Please try "
                       "again in a minute.") from None
    log.info("export %s (project %s, subject set %s): queued by user %s", export.id, project_id,
             subject_set_id, user_id)
    return json_response(_resource(services, current.export), 202, headers)


def _fail_unqueued(services: Services, current) -> None:
    try:
        services.store.update(model.fail(current.export, "internal_error", "The export could not "
                              "be queued. Please export again.", services.clock()), current)
    except Exception:
        log.exception("export %s: could not mark the unqueued export failed", current.export.id)


def get_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    return json_response(_resource(services, _visible_export(req, services).export))


def list_project_exports(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    project_id = _id(req, "project_id")
    access = _access(services)
    token = bearer_token(req.headers)
    user_id = access.user_id(token)
    access.require_export_role(token, user_id, project_id)
    subject_sets = access.subject_sets_of_project(token, project_id)
    latest: dict[str, model.Export] = {}
    latest_completed: dict[str, model.Export] = {}
    for export in services.store.exports_of_project(project_id):  # newest first per set
        latest.setdefault(export.subject_set_id, export)
        if export.status == model.COMPLETED:
            latest_completed.setdefault(export.subject_set_id, export)
    body = {"subject_sets": [
        {"id": str(s["id"]), "display_name": s.get("display_name"),
         "latest_export": _maybe(services, latest.get(str(s["id"]))),
         "latest_completed_export": _maybe(services, latest_completed.get(str(s["id"])))}
        for s in subject_sets]}
    return json_response(body)


def _maybe(services: Services, export: model.Export | None) -> dict | None:
    return _resource(services, export) if export is not None else None


def cancel_export(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    _check_body(req)
    current = _visible_export(req, services)
    for _ in range(5):
        export = current.export
        if export.is_final:
            raise ApiError(409, "export_final", f"The export is already {export.status}; there "
                           "is nothing to cancel.")
        if export.status in (model.QUEUED, model.BUILDING) and export.ml_task_id is None:
            try:
                current = services.store.update(model.cancel(export, services.clock()), current)
                log.info("export %s: cancelled before submission", export.id)
                return json_response(_resource(services, current.export))
            except ConcurrentUpdate:
                reread = services.store.get(export.id)
                if reread is None:
                    raise EXPORT_NOT_FOUND from None
                current = reread
                continue
        return _cancel_ml_task(services, current)
    raise ApiError(409, "export_busy", "The export is changing right now; please try again.")


def _cancel_ml_task(services: Services, current: Versioned) -> func.HttpResponse:
    export = current.export
    try:
        services.ml.cancel(export.ml_task_id)
    except MlRejected as exc:
        raise ApiError(409, "cancel_refused", f"The ML service cannot cancel task "
                       f"{export.ml_task_id} now ({exc.message}). It can only cancel a running "
                       "task; try again in a minute.") from None
    except MlError:
        raise ApiError(502, "ml_unavailable", "The ML service could not be reached to cancel "
                       "the task. Please try again in a minute.") from None
    log.info("export %s: cancel sent for ML task %s", export.id, export.ml_task_id)
    # Confirm with the service; if it is not cancelled yet, the next poll records it.
    try:
        status = services.ml.status(export.ml_task_id)
    except MlError:  # MlTaskNotFound included: the next poll records what happened
        return json_response(_resource(services, export))
    return json_response(_resource(services, apply_status(services, current, status)))


def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        services = get_services()
        services.store.ping()
        services.queue.get_queue_properties()
    except Exception as exc:
        log.error("health check failed: %s", type(exc).__name__)
        return json_response({"status": "unavailable"}, 503)
    return json_response({"status": "ok"})


# Path shapes of the routes above (after /api/), to tell a wrong method from an unknown path.
_ROUTE_SHAPES = [re.compile(p) for p in (r"projects/[^/]+/subject-sets/[^/]+/exports",
                                         r"projects/[^/]+/exports", r"exports/[^/]+",
                                         r"exports/[^/]+/cancel", r"health")]


def not_found(req: func.HttpRequest) -> func.HttpResponse:
    """Catch-all route: JSON 404/405 instead of the host's empty or HTML answers."""
    path = (req.route_params.get("path") or "").strip("/")
    if any(shape.fullmatch(path) for shape in _ROUTE_SHAPES):
        return error_response(ApiError(405, "method_not_allowed", f"{req.method} is not allowed "
                                       "on this route."))
    return error_response(ApiError(404, "not_found", "There is no such route. See the README for "
                                   "the export API's routes."))
