"""Binding metadata of the export feature. Thin: each function hands over to a handler.

Routes are written with their `api/` prefix (host.json's routePrefix is "", so the page can be
served at `/`); shared/routing.py registers them and shared/fallback.py answers the rest.

Importing this module does only what indexing needs: the handlers, and with them the SDK
clients, Panoptes and ML code, are imported by the first invocation that needs them (a cold
start imports function_app before anything else; tests/unit/test_cold_start.py pins it), and
telemetry starts with the first invocation (shared/telemetry.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.names import CALLBACK_QUEUE, EXPORT_POISON_QUEUE, EXPORT_QUEUE, STORAGE_CONNECTION
from shared.routing import http_route
from shared.telemetry import started

bp = func.Blueprint()


@http_route(bp, "api/projects/{project_id}/subject-sets/{subject_set_id}/exports", ["POST"])
def start_export(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.start_export)


@http_route(bp, "api/projects/{project_id}/exports", ["GET"])
def list_project_exports(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.list_project_exports)


@http_route(bp, "api/projects", ["GET"])
def list_projects(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.list_projects)


@http_route(bp, "api/exports/{export_id}", ["GET"])
def get_export(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.get_export)


@http_route(bp, "api/exports/{export_id}/cancel", ["POST"])
def cancel_export(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.cancel_export)


@http_route(bp, "api/exports/{export_id}/rerun", ["POST"])
def rerun_export(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.handle(req, api.rerun_export)


@http_route(bp, "api/health", ["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.health(req)


@http_route(bp, "api/openapi.json", ["GET"])
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    from exports import api

    return api.openapi_document(req)


@bp.queue_trigger(arg_name="msg", queue_name=EXPORT_QUEUE, connection=STORAGE_CONNECTION)
@started
def build_and_submit_export(msg: func.QueueMessage) -> None:
    from exports import worker
    from exports.services import get_services

    worker.process_export_message(msg.get_body().decode("utf-8"), get_services())


@bp.queue_trigger(arg_name="msg", queue_name=EXPORT_POISON_QUEUE, connection=STORAGE_CONNECTION)
@started
def fail_poisoned_export(msg: func.QueueMessage) -> None:
    from exports import worker
    from exports.services import get_services

    worker.process_poison_message(msg.get_body().decode("utf-8"), get_services())


@bp.queue_trigger(arg_name="msg", queue_name=CALLBACK_QUEUE, connection=STORAGE_CONNECTION)
@started
def deliver_export_callback(msg: func.QueueMessage) -> None:
    from exports import delivery
    from exports.services import get_services

    delivery.process_callback_message(msg.get_body().decode("utf-8"), get_services())


@bp.timer_trigger(arg_name="timer", schedule="%ML_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True)
@started
def poll_ml_tasks(timer: func.TimerRequest) -> None:
    from exports import poller
    from exports.services import get_services

    if timer.past_due:
        logging.getLogger(__name__).info("poll tick is late; running now")
    poller.run_tick(get_services())
