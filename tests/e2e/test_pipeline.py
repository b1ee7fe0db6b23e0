"""Issue 2 end to end: POST → queue → manifest in Azurite → ML submission, with faults."""

import json
import time

import pytest

from exports.manifest import build_manifest
from standins.sample_data import sample_subjects


def expected_manifest():
    return build_manifest([sample_subjects()], "1234", "5678")


def test_export_reaches_submitted_with_the_exact_manifest(stack):
    response = stack.start_export()
    assert response.status_code == 202, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "queued" and body["requested_by"] == "42"
    # Panoptes' count of the set, from the access check: shown at once, and the worker's hint.
    assert body["progress"] == {"subjects_done": 0, "subjects_total": 25}
    assert response.headers["Location"] == f"/api/exports/{body['id']}"
    stack.settle()

    export = stack.get(body["id"]).json()
    assert export["status"] == "submitted", export
    assert export["ml_status"] == "created"
    task_id = export["ml_task_id"]
    assert export["subject_assistant_url"] == "https://subject-assistant.zooniverse.org/#/tasks/" + task_id
    data, counts = expected_manifest()
    assert export["manifest"] == {
        "subjects": counts.subjects,
        "images": counts.images,
        "skipped_frames": counts.skipped_frames,
        "blob": export["manifest"]["blob"],
    }
    assert export["progress"] == {"subjects_done": 25, "subjects_total": 25}

    # The manifest blob in Azurite, and what the ML service downloaded through the SAS URL.
    blob = stack.services.container.get_blob_client(export["manifest"]["blob"])
    assert blob.download_blob().readall() == data
    assert blob.get_blob_properties().content_settings.content_type == "application/json"
    assert stack.ml.wait_for_downloads(10)
    [submission] = stack.ml.submissions
    assert submission.request_id == task_id
    assert submission.download_status == 200 and submission.manifest_bytes == data
    assert submission.body["use_url"] == "true" and submission.body["caller"] == "zooniverse"
    assert submission.body["request_name"].endswith(body["id"])
    sas = submission.body["images_requested_json_sas"]
    assert "sp=r" in sas and "sr=b" in sas
    assert stack.ml.task(task_id)["request_status"] in ("created", "running")


def test_second_post_while_active_returns_the_same_export(stack):
    first = stack.start_export()
    second = stack.start_export(token="demo-collaborator-token")
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    stack.settle()
    assert stack.ml.accepted_count == 1


@pytest.mark.slow
def test_duplicate_delivery_submits_once(stack):
    stack.panoptes.latency = 0.2  # keep the first worker busy while the copy arrives
    body = stack.start_export().json()
    message = None
    for _ in range(50):
        messages = stack.services.queue.peek_messages()
        if messages:
            message = messages[0].content
            break
        time.sleep(0.01)
    if message is None:  # already taken: rebuild the same message
        message = json.dumps({"v": 1, "export_id": body["id"], "token": None})
    stack.services.queue.send_message(message)
    stack.services.queue.send_message(message)
    stack.settle(60)
    stack.panoptes.latency = 0
    assert stack.export(body["id"]).status == "submitted"
    assert stack.ml.accepted_count == 1
    # A late redelivery after submission changes nothing either.
    stack.services.queue.send_message(message)
    stack.settle()
    assert stack.ml.accepted_count == 1


def test_panoptes_5xx_then_recovery(stack):
    fault = stack.panoptes.faults.add(r"/api/subjects", "status", status=500, times=5)
    body = stack.start_export().json()
    stack.settle(60)
    export = stack.export(body["id"])
    assert export.status == "submitted", export
    assert fault.hits == 5 and export.retries >= 1
    assert stack.ml.accepted_count == 1
    assert stack.ml.wait_for_downloads(10)
    assert stack.ml.submissions[0].manifest_bytes == expected_manifest()[0]


@pytest.mark.parametrize("settings_overrides", [{"TRANSIENT_RETRY_HOURS": "0.001"}])
def test_panoptes_down_for_too_long_fails_clearly(stack):
    stack.panoptes.faults.add(r"/api/subjects", "status", status=503)
    body = stack.start_export().json()
    deadline = time.time() + 30
    while stack.export(body["id"]).status != "failed" and time.time() < deadline:
        time.sleep(0.1)
    export = stack.get(body["id"]).json()
    assert export["status"] == "failed"
    assert export["error"]["code"] == "panoptes_unavailable"
    assert stack.ml.accepted_count == 0


def test_ml_busy_then_recovery(stack):
    fault = stack.ml.faults.add(
        r"request_detections",
        "status",
        status=503,
        body={"error": "Too many active jobs, please try again later"},
        times=3,
    )
    body = stack.start_export().json()
    stack.settle(60)
    export = stack.export(body["id"])
    assert export.status == "submitted"
    assert fault.hits == 3 and stack.ml.accepted_count == 1


@pytest.mark.parametrize("settings_overrides", [{"SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": "not-allowed"}])
def test_ml_401_fails_as_rejected(stack):
    body = stack.start_export().json()
    stack.settle()
    export = stack.get(body["id"]).json()
    assert export["status"] == "failed"
    assert export["error"]["code"] == "ml_rejected"
    assert "401" in export["error"]["message"]


@pytest.mark.slow
def test_ml_response_lost_is_never_resubmitted(stack):
    stack.ml.faults.add(r"request_detections", "accept_then_hang", delay=8, times=1)
    body = stack.start_export().json()
    stack.settle(60)
    export = stack.get(body["id"]).json()
    assert export["status"] == "failed"
    assert export["error"]["code"] == "ml_submission_unknown"
    assert stack.ml.accepted_count == 1  # the one the service accepted; never a second


def test_empty_subject_set_fails_without_ml_call(stack):
    body = stack.start_export(subject_set="5679").json()
    stack.settle()
    export = stack.get(body["id"]).json()
    assert export["status"] == "failed" and export["error"]["code"] == "subject_set_empty"
    assert stack.ml.accepted_count == 0


def test_expired_token_in_queue_fails_with_token_expired(stack, monkeypatch):
    """The token expires while its export waits in the queue: here at the worker's first read
    of the subjects, before Panoptes checks it. (Expiring it right after the POST raced the
    worker, which on a loaded machine had read everything by then.)"""
    handle = stack.panoptes.handle

    def expire_at_the_first_subjects_read(req):
        if req.path.startswith("/api/subjects"):
            stack.panoptes.expire_token("demo-owner-token")
        return handle(req)

    monkeypatch.setattr(stack.panoptes, "handle", expire_at_the_first_subjects_read)
    body = stack.start_export().json()
    assert body["status"] == "queued", body  # the POST itself read no subjects
    stack.settle()
    export = stack.get(body["id"], token="demo-collaborator-token").json()
    assert export["status"] == "failed" and export["error"]["code"] == "token_expired"
    assert "export again" in export["error"]["message"]


@pytest.mark.slow
def test_poison_message_fails_the_export(stack, monkeypatch):
    from exports import worker

    def crash(self):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(worker.ExportRun, "_build_manifest", crash)
    body = stack.start_export().json()
    deadline = time.time() + 60
    while stack.export(body["id"]).status != "failed" and time.time() < deadline:
        time.sleep(0.2)
    export = stack.get(body["id"]).json()
    assert export["status"] == "failed" and export["error"]["code"] == "internal_error"
    assert stack.host.invocations["fail_poisoned_export"] >= 1


@pytest.mark.parametrize("settings_overrides", [{"PANOPTES_PAGE_CONCURRENCY": "2"}])
def test_progress_is_visible_while_building(stack):
    stack.panoptes.add_synthetic_subject_set("6000", "1234", "Big set", count=1500, frames=2)
    stack.panoptes.faults.add(r"/api/subjects", "slow", delay=0.15)
    body = stack.start_export(subject_set="6000").json()
    seen = []
    deadline = time.time() + 30
    while time.time() < deadline:
        export = stack.get(body["id"]).json()
        seen.append(
            (export["status"], export["progress"]["subjects_done"], export["progress"]["subjects_total"])
        )
        if export["status"] != "queued" and export["status"] != "building":
            break
        time.sleep(0.1)
    building = [s for s in seen if s[0] == "building" and s[2] == 1500 and 0 < s[1] < 1500]
    assert building, seen
    assert seen[-1] == ("submitted", 1500, 1500)
