"""A small v2-model app for the local host's tests (routePrefix "api"): overlapping HTTP routes,
a catch-all, a queue trigger and a timer. Templates use only what the local host routes: literal
segments, {name}, {name?} and {*name}."""

import asyncio
import json
import os
import threading
import time

import azure.functions as func

bp = func.Blueprint()
# What the queue and timer functions saw, for the tests to inspect (shared across hosts).
QUEUE_CALLS: list[dict] = []
TIMER_CALLS: list[dict] = []
_timer_running = threading.Lock()


def _json(payload, status=200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


@bp.route(route="items/new", methods=["GET"])
def item_a_new_form(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"fn": "item_a_new_form"})


# Same template, different methods: item_by_id sorts first, so it takes GET and PUT and
# item_by_name only gets the DELETEs that fall through to it.
@bp.route(route="items/{name}", methods=["GET", "DELETE"])
def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"fn": "item_by_name", "route": dict(req.route_params)})


@bp.route(route="items/{id}", methods=["GET", "PUT"])
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"fn": "item_by_id", "route": dict(req.route_params)})


@bp.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"fn": "files", "route": dict(req.route_params)})


@bp.route(route="files/readme", methods=["GET", "HEAD"])
def docs_readme(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("read me", headers={"X-Doc": "readme"})


@bp.route(route="echo/{word?}", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return _json(
        {
            "fn": "echo",
            "route": dict(req.route_params),
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "method": req.method,
            "url": req.url,
            "content_type": req.headers.get("content-type"),
        },
        status=201,
    )


@bp.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internals")


@bp.route(route="slow/{n}", methods=["GET"])
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(int(req.route_params["n"]) / 1000)
    return _json({"fn": "slow"})


@bp.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    """Body "fail" always raises, "fail-until:N" raises until dequeue N, "sleep:S" takes S seconds."""
    body = msg.get_body()
    QUEUE_CALLS.append({"id": msg.id, "body": body, "dequeue_count": msg.dequeue_count, "msg": msg})
    text = body.decode("utf-8", "replace")
    if text == "fail":
        raise ValueError("asked to fail")
    if text.startswith("fail-until:") and msg.dequeue_count < int(text.split(":")[1]):
        raise ValueError("not yet")
    if text.startswith("sleep:"):
        time.sleep(float(text.split(":")[1]))


@bp.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    overlapped = not _timer_running.acquire(blocking=False)
    try:
        TIMER_CALLS.append(
            {
                "past_due": timer.past_due,
                "status": timer.schedule_status,
                "at": time.monotonic(),
                "overlapped": overlapped,
            }
        )
        time.sleep(float(os.environ.get("SAMPLE_TIMER_SECONDS", "0.05")))
    finally:
        if not overlapped:
            _timer_running.release()


app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)
