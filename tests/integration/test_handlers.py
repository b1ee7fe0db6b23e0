"""The handlers in-process, as the code reads: each called with a `Services` wired to Azurite and
the stand-ins, no HTTP host in between (tests/e2e prove the wiring through the local host)."""

from __future__ import annotations

import datetime as dt
import json
import logging

import azure.functions as func
import pytest

from devtools.local_env import offline_settings
from exports import api, model, poller, worker
from exports.messages import ExportMessage
from exports.services import Services
from exports.settings import ExportSettings
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample
from tests.harness import FAST, TOKEN_KEY, clear_storage

OWNER, COLLABORATOR, OUTSIDER = "demo-owner-token", "demo-collaborator-token", "demo-outsider-token"


@pytest.fixture
def ml():
    with MlServiceStandIn(callers=("zooniverse",)) as emulator:
        yield emulator


@pytest.fixture
def services(azurite, ml):
    with PanoptesStandIn() as panoptes:
        load_sample(panoptes)
        env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **FAST)
        wired = Services.from_settings(ExportSettings.from_env(env))
        wired.ensure_resources()
        clear_storage(wired)
        yield wired


def request(
    method: str, path: str, token: str | None = OWNER, body: bytes = b"", **route_params: str
) -> func.HttpRequest:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return func.HttpRequest(
        method, f"http://localhost{path}", headers=headers, body=body, route_params=route_params
    )


def call(services, handler, method="GET", token=OWNER, body=b"", **route_params):
    response = api.handle(request(method, "/api/x", token, body, **route_params), handler, lambda: services)
    return response.status_code, json.loads(response.get_body())


def start(services, token=OWNER, project="1234", subject_set="5678"):
    return call(services, api.start_export, "POST", token, project_id=project, subject_set_id=subject_set)


def deliver_queued(services) -> int:
    """Hand every queued message to the worker, as the queue trigger would."""
    delivered = 0
    for message in services.queue.receive_messages(max_messages=32):
        worker.process_export_message(message.content, services)
        services.queue.delete_message(message)
        delivered += 1
    return delivered


def test_start_build_submit_poll_complete(services, ml):
    status, export = start(services)
    assert status == 202 and export["status"] == "queued" and export["progress"]["subjects_total"] == 25
    assert start(services)[0] == 200  # idempotent while active
    assert deliver_queued(services) == 1
    status, export = call(services, api.get_export, export_id=export["id"])
    assert (status, export["status"], export["manifest"]["images"]) == (200, "submitted", 49)
    assert ml.wait_for_downloads(10)
    for _ in range(2):  # the service's monitor moves the task on, then the poller reads it
        ml.run_monitor()
        poller.run_tick(services)
    status, export = call(services, api.get_export, token=COLLABORATOR, export_id=export["id"])
    assert export["status"] == "completed" and export["results_summary"]["images_sent"] == 49
    status, listing = call(services, api.list_project_exports, project_id="1234")
    entry = next(s for s in listing["subject_sets"] if s["id"] == "5678")
    assert entry["latest_completed_export"]["id"] == export["id"] and entry["subjects_count"] == 25


def test_access_rules_in_the_handlers(services):
    _, export = start(services)
    assert call(services, api.get_export, token=OUTSIDER, export_id=export["id"]) == (
        404,
        {"error": {"code": "export_not_found", "message": api.EXPORT_NOT_FOUND.message}},
    )
    assert call(services, api.get_export, token=None, export_id=export["id"])[0] == 401
    assert start(services, OUTSIDER)[1]["error"]["code"] == "forbidden"
    assert start(services, subject_set="7777")[1]["error"]["code"] == "subject_set_not_found"
    status, body = start(services, project="99999999999999999999")
    assert (status, body["error"]["code"]) == (400, "invalid_id") and "too large" in body["error"]["message"]
    status, projects = call(services, api.list_projects, token=OUTSIDER)
    assert status == 200 and [p["id"] for p in projects["projects"]] == ["9999"]


def test_cancel_before_the_worker_and_a_late_message(services, ml):
    _, export = start(services)
    status, cancelled = call(services, api.cancel_export, "POST", export_id=export["id"])
    assert (status, cancelled["status"]) == (200, "cancelled")
    assert deliver_queued(services) == 1  # the message arrives after the cancel: nothing happens
    assert call(services, api.get_export, export_id=export["id"])[1]["status"] == "cancelled"
    assert ml.accepted_count == 0
    status, again = call(services, api.cancel_export, "POST", export_id=export["id"])
    assert (status, again["error"]["code"]) == (409, "export_final")


def test_bodies_are_checked_before_anything_is_done(services):
    status, body = call(
        services,
        api.start_export,
        "POST",
        body=b"x" * (64 * 1024 + 1),
        project_id="1234",
        subject_set_id="5678",
    )
    assert (status, body["error"]["code"]) == (413, "body_too_large") and "64 KiB" in body["error"]["message"]
    assert (
        call(services, api.start_export, "POST", body=b"[1]", project_id="1234", subject_set_id="5678")[1][
            "error"
        ]["code"]
        == "invalid_body"
    )
    assert services.store.active_export_ids() == []


def test_the_worker_run_in_process_refuses_a_token_sealed_for_another_export(services):
    _, export = start(services)
    [message] = services.queue.receive_messages(max_messages=1)
    sealed = ExportMessage.parse(message.content).token
    services.queue.delete_message(message)
    other = model.new_export(
        model.new_export_id("1234", "5679", services.clock()),
        "1234",
        "5679",
        "42",
        services.clock(),
        dt.timedelta(hours=1),
    )
    services.store.create(other)
    worker.process_export_message(ExportMessage(other.id, sealed).encode(), services)
    assert services.store.get(other.id).export.error_code == "internal_error"
    worker.process_export_message(ExportMessage(export["id"], sealed).encode(), services)
    assert services.store.get(export["id"]).export.status == "submitted"


@pytest.fixture
def panoptes_with_many_projects(azurite, ml):
    """A user with 150 owner/collaborator projects (two pages of project roles) and one more as
    a tester; the auth cache on, as in production."""
    with PanoptesStandIn() as panoptes:
        load_sample(panoptes)
        panoptes.add_user("busy-token", "60", "busy")
        for i in range(150):
            panoptes.add_project(
                str(30000 + i), f"Project {i}", roles={"60": ["owner" if i % 2 else "collaborator"]}
            )
        panoptes.add_project("39999", "Testing only", roles={"60": ["tester"]})
        env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **{**FAST, "AUTH_CACHE_SECONDS": "60"})
        wired = Services.from_settings(ExportSettings.from_env(env))
        yield wired, panoptes


def test_projects_are_read_page_by_page_filtered_by_role_and_cached_per_token(panoptes_with_many_projects):
    services, panoptes = panoptes_with_many_projects
    status, body = call(services, api.list_projects, token="busy-token")
    assert status == 200 and body["user"] == {"id": "60", "login": "busy", "display_name": "busy"}
    ids = [p["id"] for p in body["projects"]]
    assert len(ids) == 150 and "39999" not in ids  # a tester may not export
    assert {tuple(p["roles"]) for p in body["projects"]} == {("owner",), ("collaborator",)}
    assert panoptes.count("/api/project_roles") == 2  # every page of roles (100 a page)
    assert panoptes.count("/api/projects") == 2  # 100 ids a request
    before = panoptes.total_requests
    assert call(services, api.list_projects, token="busy-token")[1] == body
    assert panoptes.total_requests == before  # cached for this token
    # The roles learned on the way answer the next access check without another lookup.
    assert call(services, api.list_project_exports, token="busy-token", project_id="39999")[0] == 403
    assert panoptes.count("/api/project_roles") == 2
    # Another token asks Panoptes itself.
    status, other = call(services, api.list_projects, token=OWNER)
    assert [p["id"] for p in other["projects"]] == ["1234"] and panoptes.count("/api/project_roles") == 3


def test_a_listing_whose_next_page_does_not_move_forward_ends(azurite, ml):
    """Panoptes' answers are untrusted: a `next_page` that names the same page again (or an
    earlier one) ends the read instead of looping forever."""
    from exports.panoptes import PanoptesClient

    with PanoptesStandIn() as panoptes:
        load_sample(panoptes)
        stuck = {
            "subject_sets": [{"id": "5678", "display_name": "A"}],
            "meta": {"subject_sets": {"page": 1, "next_page": 1}},
        }
        panoptes.faults.add(r"^/api/subject_sets\?", "status", status=200, body=stuck, times=5)
        client = PanoptesClient(panoptes.url, retries=0)
        assert [s["id"] for s in client.subject_sets_of_project(OWNER, "1234")] == ["5678"]


def test_a_tick_logs_at_info_only_when_it_had_something_to_look_at(services, ml, caplog):
    """`make run` ticks every 3 s: a tick with nothing active must not fill the log. A tick that
    polled is logged at INFO even when nothing changed: the ML alert reads every one of them
    (docs/OPERATIONS.md, `poll_tick`)."""
    caplog.set_level(logging.DEBUG, logger="exports.poller")

    def ticks(level):
        found = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("poll tick") and r.levelno == level
        ]
        caplog.clear()
        return found

    poller.run_tick(services)  # nothing active
    assert ticks(logging.INFO) == [] and ticks(logging.DEBUG) == []  # (cleared by the first call)
    poller.run_tick(services)
    assert len(ticks(logging.DEBUG)) == 1
    _, export = start(services)
    deliver_queued(services)
    assert ml.wait_for_downloads(10)
    ml.set_plan(services.store.get(export["id"]).export.ml_task_id, ["running", "running", "running"])
    ml.run_monitor()  # the service's own clock moves the task on
    poller.run_tick(services)  # submitted -> running: a change
    assert [m for m in ticks(logging.INFO) if "1 active" in m and "'running': 1" in m]
    poller.run_tick(services)  # still running: polled, so the alert's query sees it
    assert [m for m in ticks(logging.INFO) if "1 active" in m]
