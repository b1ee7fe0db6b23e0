"""Binding metadata of the export feature. Thin: each function hands over to a handler."""
from __future__ import annotations

import logging

import azure.functions as func

from exports import api, poller, worker
from exports.services import get_services
from shared.names import EXPORT_POISON_QUEUE, EXPORT_QUEUE, STORAGE_CONNECTION

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS  # the Panoptes bearer token is the credential
ROUTES: list[tuple[str, list[str]]] = []  # (template, methods) of every route below


def route(template: str, methods: list[str]):
    """Register an anonymous HTTP route and remember its shape for the catch-all's 405s."""
    ROUTES.append((template, methods))
    return bp.route(route=template, methods=methods, auth_level=ANONYMOUS)


@route("projects/{project_id}/subject-sets/{subject_set_id}/exports", ["POST"])
def start_export(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, api.start_export)


@route("projects/{project_id}/exports", ["GET"])
def list_project_exports(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, api.list_project_exports)


@route("exports/{export_id}", ["GET"])
def get_export(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, api.get_export)


@route("exports/{export_id}/cancel", ["POST"])
def cancel_export(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, api.cancel_export)


@route("health", ["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return api.health(req)


# Anything no other route matched gets a JSON 404/405, never the host's empty answer. The
# Functions host tries routes in the alphabetical order of function names (not by ASP.NET
# precedence: Azure/azure-functions-host#9876), so this catch-all's name must sort last.
@bp.function_name("zz_unmatched_route")
@bp.route(route="{*path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
          auth_level=ANONYMOUS)
def unmatched_route(req: func.HttpRequest) -> func.HttpResponse:
    return api.not_found(req, ROUTES)


@bp.queue_trigger(arg_name="msg", queue_name=EXPORT_QUEUE, connection=STORAGE_CONNECTION)
def build_and_submit_export(msg: func.QueueMessage) -> None:
    worker.process_export_message(msg.get_body().decode("utf-8"), get_services())


@bp.queue_trigger(arg_name="msg", queue_name=EXPORT_POISON_QUEUE, connection=STORAGE_CONNECTION)
def fail_poisoned_export(msg: func.QueueMessage) -> None:
    worker.process_poison_message(msg.get_body().decode("utf-8"), get_services())


@bp.timer_trigger(arg_name="timer", schedule="%ML_POLL_SCHEDULE%", run_on_startup=False,
                  use_monitor=True)
def poll_ml_tasks(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logging.getLogger(__name__).info("poll tick is late; running now")
    poller.run_tick(get_services())
