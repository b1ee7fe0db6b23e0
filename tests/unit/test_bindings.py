"""The binding metadata the real Functions host indexes: what we test locally is what Azure runs."""

import json
import pathlib

import function_app
from shared.names import CALLBACK_QUEUE, EXPORT_POISON_QUEUE, EXPORT_QUEUE, ROUTE_PREFIX, STORAGE_CONNECTION

ROOT = pathlib.Path(__file__).resolve().parents[2]


# get_functions() validates as it builds, and a second call sees every name twice: call it once.
_FUNCTIONS = {
    f.get_function_name(): json.loads(f.get_function_json())["bindings"]
    for f in function_app.app.get_functions()
}


def functions():
    return _FUNCTIONS


def trigger(name):
    return next(b for b in functions()[name] if b["direction"] == "IN")


def test_http_routes_methods_and_auth_levels():
    get = ["GET", "HEAD"]  # HEAD works wherever GET does (health checks use it)
    expected = {
        "start_export": ("api/projects/{project_id}/subject-sets/{subject_set_id}/exports", ["POST"]),
        "list_project_exports": ("api/projects/{project_id}/exports", get),
        "list_projects": ("api/projects", get),
        "get_export": ("api/exports/{export_id}", get),
        "cancel_export": ("api/exports/{export_id}/cancel", ["POST"]),
        "rerun_export": ("api/exports/{export_id}/rerun", ["POST"]),
        "health": ("api/health", get),
        "openapi_document": ("api/openapi.json", get),
        "page_project": ("subject-assistant/{project_id}", get),
        "page_static": ("static/{*file}", get),
    }
    for name, (route, methods) in expected.items():
        binding = trigger(name)
        assert binding["type"] == "httpTrigger"
        assert binding["route"] == route
        assert binding["methods"] == methods
        # The Panoptes token is the credential: a browser cannot keep a function key secret.
        assert binding["authLevel"] == "ANONYMOUS"
    catch_all = trigger("zz_unmatched_route")
    assert catch_all["route"] == "{*path}" and catch_all["authLevel"] == "ANONYMOUS"


def test_catch_all_sorts_after_every_other_http_function():
    """The host tries routes by function name, so the catch-all must come last or it would
    answer 404 for real routes in Azure."""
    http = sorted(
        name.lower()
        for name, bindings in functions().items()
        if any(b["type"] == "httpTrigger" for b in bindings)
    )
    assert http[-1] == "zz_unmatched_route"


def test_queue_triggers():
    worker = trigger("build_and_submit_export")
    assert worker == {
        "direction": "IN",
        "type": "queueTrigger",
        "name": "msg",
        "queueName": EXPORT_QUEUE,
        "connection": STORAGE_CONNECTION,
    }
    poison = trigger("fail_poisoned_export")
    assert poison["queueName"] == EXPORT_POISON_QUEUE == EXPORT_QUEUE + "-poison"
    assert poison["connection"] == "AzureWebJobsStorage"
    callbacks = trigger("deliver_export_callback")
    assert callbacks == {**worker, "queueName": CALLBACK_QUEUE}


def test_timer_reads_its_schedule_from_the_setting():
    timer = trigger("poll_ml_tasks")
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "%ML_POLL_SCHEDULE%"
    assert timer["runOnStartup"] is False and timer["useMonitor"] is True


def test_every_function_is_registered_once():
    assert sorted(functions()) == sorted(
        [
            "start_export",
            "list_project_exports",
            "list_projects",
            "get_export",
            "cancel_export",
            "rerun_export",
            "health",
            "openapi_document",
            "page_project",
            "page_static",
            "zz_unmatched_route",
            "build_and_submit_export",
            "fail_poisoned_export",
            "deliver_export_callback",
            "poll_ml_tasks",
        ]
    )


def test_no_route_is_reserved_by_the_host_or_overlaps_another():
    """With routePrefix "" the host keeps /admin/... and /runtime/... for itself
    (Azure/azure-functions-host#1781); and since it tries routes by function name, not by
    specificity, two routes that could match the same path would misroute in Azure."""
    import re

    routes = {
        name: trigger(name)["route"]
        for name, bindings in functions().items()
        if bindings[0]["type"] == "httpTrigger" and name != "zz_unmatched_route"
    }
    for name, route in routes.items():
        assert not re.match(r"(?i)(admin|runtime)(/|$)", route), name
    shapes = {
        name: [
            ("*" if p.startswith("{*") else "{}" if p.startswith("{") else p.lower())
            for p in route.split("/")
        ]
        if route
        else []
        for name, route in routes.items()
    }
    for a, sa in shapes.items():
        for b, sb in shapes.items():
            if a < b:
                same_length = len(sa) == len(sb) and all(x == y or "{}" in (x, y) for x, y in zip(sa, sb))
                catch = "*" in sa + sb and sa[:1] == sb[:1]
                assert not same_length and not catch, (a, b)


def test_host_json_queue_and_http_settings():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensionBundle"]["version"].startswith("[4.")
    assert host["extensions"]["http"]["routePrefix"] == ROUTE_PREFIX
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"
    assert queues["maxDequeueCount"] >= 2
    assert {"visibilityTimeout", "batchSize"} <= set(queues)
