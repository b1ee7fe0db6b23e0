"""Cancel and `problem` as the deployed MegaDetector service really does them (emulated from
zooniverse/CameraTraps `zooniverse-deployment`; see standins/ml_service/README.md)."""

import pytest

from exports.contract import Status


def cancel(stack, export_id, token="demo-owner-token"):
    return stack.call("POST", f"/api/exports/{export_id}/cancel", token)


def test_a_cancelled_export_stays_cancelled_while_the_service_overwrites_its_cancel(stack):
    """The real monitor writes `running` ("Check number ...") over its own `canceled`, then
    `completed` with partial results. Breaks if the export follows the service back to running
    or completed, or if the cancel waits for the service to confirm."""
    export = stack.submitted_export()
    task = export["ml_task_id"]
    stack.tick()
    response = cancel(stack, export["id"])
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["ml_status"]) == ("cancelled", "canceled")
    assert stack.ml.task(task)["request_status"] == "canceled"
    status_calls = stack.ml.status_calls[task]
    seen = []
    for _ in range(3):  # the service's monitor goes on by itself; our export never follows it
        stack.tick()
        seen.append(stack.ml.task(task)["request_status"])
        assert stack.get(export["id"]).json()["status"] == "cancelled"
        assert stack.ml.status_calls[task] == status_calls  # no longer polled at all
    assert seen == ["running", "completed", "completed"]
    final = stack.get(export["id"]).json()
    assert final["status"] == "cancelled" and final["subject_assistant_url"].endswith(task)
    again = cancel(stack, export["id"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "export_final"


def test_cancelling_a_task_the_service_already_completed_answers_with_what_is_true(stack):
    """The service refuses (400 "Task has completed and cannot be canceled"): the status is read
    at once and recorded as the poller would, and the answer says the export is final."""
    export = stack.submitted_export()
    stack.ml.set_status(export["ml_task_id"], "completed")
    response = cancel(stack, export["id"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "export_final"
    assert "completed" in response.json()["error"]["message"]
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed" and done["results_summary"]["available"] is True


def test_cancelling_a_created_task_is_refused_in_words(stack):
    export = stack.submitted_export()
    stack.ml.set_plan(export["ml_task_id"], ["created", "created"])
    response = cancel(stack, export["id"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "cancel_refused"
    assert "still listing its images" in response.json()["error"]["message"]
    assert stack.get(export["id"]).json()["status"] == "submitted"


@pytest.mark.parametrize("settings_overrides", [{"ML_NOT_FOUND_TICKS": "2"}])
def test_a_task_the_service_no_longer_knows_is_recorded_as_the_poller_would(stack):
    export = stack.submitted_export()
    stack.ml.faults.add(r"/cancel_request", "status", status=404, body={"error": "Task is not found."})
    first = cancel(stack, export["id"])
    assert first.status_code == 409 and first.json()["error"]["code"] == "cancel_refused"
    assert "try again" not in first.json()["error"]["message"].lower()
    assert stack.export(export["id"]).ml_not_found == 1
    second = cancel(stack, export["id"])
    assert second.status_code == 409 and second.json()["error"]["code"] == "export_final"
    assert stack.get(export["id"]).json()["error"]["code"] == "ml_task_not_found"


@pytest.mark.parametrize("settings_overrides", [{"ML_PROBLEM_TICKS": "3"}])
def test_a_permanent_problem_fails_after_the_set_number_of_ticks(stack):
    """A failed Batch submission leaves `problem` (no num_tasks) forever."""
    export = stack.submitted_export()
    stack.ml.script_submission_problem(export["ml_task_id"], error="quota exceeded")
    for tick in range(3):  # seen, then unchanged twice
        stack.tick()
        current = stack.get(export["id"]).json()
        assert (current["status"], current["ml_status"]) == ("running", "problem"), tick
    stack.tick()  # unchanged a third time
    failed = stack.get(export["id"]).json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "ml_failed"
    assert "Error occurred while submitting the Batch job: quota exceeded" in failed["error"]["message"]


@pytest.mark.parametrize(
    "settings_overrides", [{"ML_PROBLEM_TICKS": "1", "ML_TASK_DEADLINE_DAYS": "0.00002"}]
)
def test_the_max_cycles_problem_still_completes(stack):
    """After 4 weeks of checks the service writes `problem` and aggregates anyway: the export
    waits for it (the problem's message changed, so no ml_failed; the status keeps changing,
    so no deadline_exceeded) and completes with the shards that succeeded."""
    stack.ml.shard_size = 10
    export = stack.submitted_export()
    stack.ml.script_max_cycles(export["ml_task_id"], running_checks=2)
    statuses = []
    for _ in range(5):
        stack.tick()
        current = stack.export(export["id"])
        statuses.append((current.status, current.ml_status))
        if current.is_final:
            break
    assert ("running", "problem") in statuses
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed", statuses
    assert done["results_summary"]["available"] is True
    assert done["results_summary"]["images_missing"] > 0  # the unfinished shard


def test_num_images_and_model_are_the_deployed_services(stack):
    export = stack.submitted_export()
    stack.tick(), stack.tick()
    done = stack.export(export["id"])
    assert done.status == Status.COMPLETED
    assert done.ml_num_images == stack.sample.image_count
    assert stack.ml.detections(export["ml_task_id"])["info"]["detector"] == "megadetector_v5a"
