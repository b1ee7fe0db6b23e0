"""Issue 3 end to end: the poller follows every export to a final state; listing; cancel."""

import dataclasses
import datetime as dt
import time

import pytest

from exports import model
from exports.messages import ExportMessage


def test_submitted_running_completed_with_summary(stack):
    stack.ml.failure_rate = 0.1
    export = stack.submitted_export()
    stack.tick()
    running = stack.get(export["id"]).json()
    assert (running["status"], running["ml_status"]) == ("running", "running")
    stack.tick()
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed", done
    assert done["results_url"].startswith(stack.ml.root_url)
    detections = stack.ml.detections(export["ml_task_id"])
    images = detections["images"]
    summary = done["results_summary"]
    assert summary["available"] is True
    assert summary["images_sent"] == stack.sample.image_count
    assert summary["images_scored"] + summary["images_failed"] == len(images)
    assert summary["images_failed"] == sum("failure" in i for i in images)
    assert summary["images_likely_empty"] == sum(
        1 for i in images if "failure" not in i and i["max_detection_conf"] <= 0.5
    )
    assert summary["images_missing"] == 0
    assert done["subject_assistant_url"].endswith("/#/tasks/" + export["ml_task_id"])
    # Completed exports leave the active index: the next tick does not look at them.
    calls = stack.ml.status_calls[export["ml_task_id"]]
    stack.tick()
    assert stack.ml.status_calls[export["ml_task_id"]] == calls


def test_failed_shards_show_as_missing(stack):
    stack.ml.failed_shards = 1
    stack.ml.shard_size = 10
    export = stack.submitted_export()
    stack.tick(), stack.tick()
    summary = stack.get(export["id"]).json()["results_summary"]
    assert summary["images_missing"] > 0 and summary["failed_shards"] == 1
    assert (
        summary["images_scored"] + summary["images_failed"] + summary["images_missing"]
        == summary["images_sent"]
    )


def test_unreadable_results_leave_completed_with_summary_unavailable(stack):
    export = stack.submitted_export()
    stack.tick()
    stack.ml.faults.add(r"/results/", "status", status=500)
    stack.tick()
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed"
    assert done["results_summary"]["available"] is False and done["results_summary"]["reason"]


@pytest.mark.parametrize(
    "steps,status,code",
    [
        ([("failed", "Image list could not be read.")], "failed", "ml_failed"),
        (
            ["running", ("completed", "Zero images found in container or in provided list of images.")],
            "failed",
            "ml_no_results",
        ),
        (["canceled"], "cancelled", None),
    ],
)
def test_final_outcomes(stack, steps, status, code):
    export = stack.submitted_export()
    stack.ml.set_plan(export["ml_task_id"], steps)
    for _ in steps:
        stack.tick()
    result = stack.get(export["id"]).json()
    assert result["status"] == status
    assert (result["error"] or {}).get("code") == code
    if code:
        assert isinstance(result["ml_message"], str) and result["ml_message"] in result["error"]["message"]


def test_problem_keeps_polling_then_completes(stack):
    export = stack.submitted_export()
    stack.ml.set_plan(
        export["ml_task_id"],
        [("problem", "please contact us"), ("problem", "please contact us"), "running", "completed"],
    )
    stack.tick()
    result = stack.get(export["id"]).json()
    assert (result["status"], result["ml_status"], result["ml_message"]) == (
        "running",
        "problem",
        "please contact us",
    )
    for _ in range(3):
        stack.tick()
    assert stack.get(export["id"]).json()["status"] == "completed"


@pytest.mark.parametrize("settings_overrides", [{"ML_NOT_FOUND_TICKS": "3"}])
def test_transient_404_then_persistent_404(stack):
    export = stack.submitted_export()
    fault = stack.ml.faults.add(
        r"/task/", "status", status=404, body={"error": "Task is not found."}, times=2
    )
    stack.poll(), stack.poll()  # the service is unreachable for its task, and stands still
    assert stack.get(export["id"]).json()["status"] == "submitted"
    stack.tick()
    assert stack.get(export["id"]).json()["status"] == "running" and fault.hits == 2
    stack.ml.faults.add(r"/task/", "status", status=404, body={"error": "Task is not found."})
    stack.poll(), stack.poll()
    assert stack.get(export["id"]).json()["status"] == "running"
    stack.poll()
    result = stack.get(export["id"]).json()
    assert result["status"] == "failed" and result["error"]["code"] == "ml_task_not_found"


def test_ml_outage_leaves_exports_untouched(stack):
    export = stack.submitted_export()
    before = stack.export(export["id"])
    stack.ml.faults.add(r"/task/", "status", status=502)
    stack.tick()
    assert stack.export(export["id"]) == before


@pytest.mark.parametrize("settings_overrides", [{"ML_TASK_DEADLINE_DAYS": "0.00002"}])
@pytest.mark.slow
def test_deadline_runs_from_the_last_change_of_the_task(stack):
    """ML_TASK_DEADLINE_DAYS is 1.7 s here. A task whose message changes at every poll ("Check
    number N", as the real monitor writes) is never past it; one that stops changing is."""
    export = stack.submitted_export()
    stack.ml.set_plan(export["ml_task_id"], ["running"] * 4 + [("running", "stuck")] * 3)
    for _ in range(4):
        time.sleep(1)
        stack.tick()
        assert stack.get(export["id"]).json()["status"] == "running"
    stack.tick()  # "stuck": a change, then no more
    time.sleep(2)
    stack.tick()
    result = stack.get(export["id"]).json()
    assert result["status"] == "failed" and result["error"]["code"] == "deadline_exceeded"


@pytest.mark.parametrize("settings_overrides", [{"STUCK_EXPORT_MINUTES": "0.02"}])
def test_stuck_queued_export_is_requeued_once_then_failed(stack):
    services = stack.services
    now = services.clock() - dt.timedelta(minutes=5)
    lost_id = model.new_export_id("1234", "5678", now)
    lost = model.new_export(
        lost_id,
        "1234",
        "5678",
        "42",
        now,
        dt.timedelta(hours=1),
        services.cipher.encrypt("demo-owner-token", bound_to=lost_id),
    )
    services.store.create(lost)  # a record whose queue message was lost
    stack.tick()
    stack.settle()
    assert stack.export(lost.id).requeued
    assert stack.get(lost.id).json()["status"] == "submitted"

    again = model.new_export(
        model.new_export_id("1234", "5679", now), "1234", "5679", "42", now, dt.timedelta(hours=1)
    )
    services.store.create(dataclasses.replace(again, requeued=True))
    stack.tick()
    result = stack.get(again.id).json()
    assert result["status"] == "failed" and result["error"]["code"] == "internal_error"
    assert "stopped making progress" in result["error"]["message"]


def test_listing_shows_latest_and_latest_completed(stack):
    for i in range(150):
        stack.panoptes.add_subject_set(str(20000 + i), "1234", f"Extra set {i}", [])
    completed = stack.submitted_export()
    stack.tick(), stack.tick()
    assert stack.get(completed["id"]).json()["status"] == "completed"
    newer = stack.submitted_export()
    stack.ml.set_plan(newer["ml_task_id"], [("failed", "boom")])
    stack.tick()
    response = stack.call("GET", "/api/projects/1234/exports")
    assert response.status_code == 200
    sets = {s["id"]: s for s in response.json()["subject_sets"]}
    assert len(sets) == 152  # every page of subject sets from Panoptes
    entry = sets["5678"]
    assert entry["display_name"] == "Camera A - March"
    assert entry["latest_export"]["id"] == newer["id"] and entry["latest_export"]["status"] == "failed"
    assert entry["latest_completed_export"]["id"] == completed["id"]
    assert entry["latest_completed_export"]["subject_assistant_url"]
    assert sets["5679"]["latest_export"] is None and sets["5679"]["latest_completed_export"] is None


def test_listing_auth(stack):
    assert stack.call("GET", "/api/projects/1234/exports", token=None).status_code == 401
    assert stack.call("GET", "/api/projects/1234/exports", token="demo-outsider-token").status_code == 403
    assert stack.call("GET", "/api/projects/0/exports").json()["error"]["code"] == "invalid_id"
    stack.panoptes.faults.add(r"/api/subject_sets", "status", status=503)
    assert stack.call("GET", "/api/projects/1234/exports").status_code == 502


def cancel(stack, export_id):
    return stack.call("POST", f"/api/exports/{export_id}/cancel")


def test_cancel_queued(stack):
    services = stack.services
    now = services.clock()
    queued = model.new_export(
        model.new_export_id("1234", "5678", now), "1234", "5678", "42", now, dt.timedelta(hours=1)
    )
    services.store.create(queued)
    response = cancel(stack, queued.id)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert services.store.active_export_ids() == []
    services.enqueue(ExportMessage(queued.id, None))  # its message arrives late: nothing happens
    stack.settle()
    assert stack.ml.accepted_count == 0


def test_cancel_while_building_stops_before_submitting(stack):
    stack.panoptes.add_synthetic_subject_set("6000", "1234", "Big set", count=2000, frames=1)
    stack.panoptes.faults.add(r"/api/subjects", "slow", delay=0.3)
    export_id = stack.start_export(subject_set="6000").json()["id"]
    deadline = time.time() + 20
    while stack.export(export_id).status != "building" and time.time() < deadline:
        time.sleep(0.05)
    response = cancel(stack, export_id)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    stack.settle(60)
    assert stack.export(export_id).status == "cancelled"
    assert stack.ml.accepted_count == 0


def test_cancel_running_and_submitted(stack):
    export = stack.submitted_export()
    stack.ml.set_plan(export["ml_task_id"], ["running", "running", "completed"])
    refused = cancel(stack, export["id"])  # the service cancels only running tasks
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cancel_refused"
    assert "created" in refused.json()["error"]["message"]
    stack.tick()
    response = cancel(stack, export["id"])
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert stack.ml.task(export["ml_task_id"])["request_status"] == "canceled"
    final = cancel(stack, export["id"])
    assert final.status_code == 409 and final.json()["error"]["code"] == "export_final"


def test_cancel_when_ml_unreachable_is_502(stack):
    export = stack.submitted_export()
    stack.tick()
    stack.ml.faults.add(r"cancel_request", "status", status=500)
    response = cancel(stack, export["id"])
    assert response.status_code == 502 and response.json()["error"]["code"] == "ml_unavailable"
    assert stack.get(export["id"]).json()["status"] == "running"
