"""The MegaDetector batch API v4 emulator: validation, async manifest
download, status progression, detections file, cancel rules and faults."""
import json
import re

import pytest
import requests

from standins import MlServiceStandIn
from standins.server import Response, StandInServer



def META(sid, frame):  # Hamlet's meta string
    return json.dumps({"project_id": "1234", "subject_set_id": "5678",
                       "subject_id": str(sid), "frame_id": str(frame)})


MANIFEST = [
    ["https://panoptes-uploads.zooniverse.org/production/subject_location/a.jpeg", META(1, 0)],
    ["https://panoptes-uploads.zooniverse.org/production/subject_location/b.JPG", META(1, 1)],
    ["https://panoptes-uploads.zooniverse.org/production/subject_location/c.png?x=1", META(2, 0)],
    ["https://panoptes-uploads.zooniverse.org/production/subject_location/d.mp4", META(3, 0)],
]


class BlobHost(StandInServer):
    """Serves fixed blobs, standing in for Azurite's blob GET with a SAS."""

    def __init__(self):
        super().__init__()
        self.blobs = {}

    def put(self, name, data, content_type="application/json"):
        self.blobs["/" + name] = (data if isinstance(data, bytes) else json.dumps(data).encode(), content_type)
        return f"{self.url}/{name}?sv=2021-08-06&sp=r&sig=abc"

    def handle(self, req):
        if req.path not in self.blobs:
            return Response(404, "BlobNotFound", content_type="application/xml")
        data, ctype = self.blobs[req.path]
        return Response(200, data, content_type=ctype)


@pytest.fixture
def blobs():
    with BlobHost() as b:
        yield b


@pytest.fixture
def ml():
    with MlServiceStandIn(callers=("zooniverse",)) as m:
        yield m


def submit(ml, sas=None, timeout=5, **overrides):
    body = {"images_requested_json_sas": sas, "use_url": "true",
            "request_name": "zooniverse-subject-assistant", "caller": "zooniverse", **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    return requests.post(ml.url + "/request_detections", json=body, timeout=timeout)


def poll(ml, request_id):
    r = requests.get(f"{ml.url}/task/{request_id}", timeout=5)
    assert r.status_code == 200
    return r.json()


def test_full_flow(ml, blobs):
    sas = blobs.put("manifests/export-1.json", MANIFEST)
    r = submit(ml, sas)
    assert r.status_code == 200
    request_id = r.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert ml.wait_for_downloads(5)

    sub = ml.submissions[0]
    assert sub.request_id == request_id and sub.body["caller"] == "zooniverse"
    assert sub.download_status == 200 and sub.content_type == "application/json"
    assert sub.manifest == MANIFEST and json.loads(sub.manifest_bytes) == MANIFEST
    assert ml.accepted_count == 1

    s0 = ml.task(request_id)
    assert s0 == {"request_status": "created", "message": "3 images listed; submitting the job..."}
    first = poll(ml, request_id)
    assert first["Status"]["request_status"] == "running"
    assert first["Status"]["message"].startswith("Submitted 3 images to cluster in 1 shards.")
    assert first["TaskId"] == request_id
    assert first["Endpoint"] == "/v4/camera-trap/detection-batch/request_detections"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first["Timestamp"])
    done = poll(ml, request_id)["Status"]
    assert done["request_status"] == "completed"
    assert done["message"]["num_failed_shards"] == 0
    url = done["message"]["output_file_urls"]["detections"]
    assert "sig=" in url and poll(ml, request_id)["Status"]["request_status"] == "completed"
    assert ml.status_calls[request_id] == 3

    results = requests.get(url, timeout=5).json()
    assert results["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert [img["file"] for img in results["images"]] == [row[0] for row in MANIFEST[:3]]
    assert [img["meta"] for img in results["images"]] == [row[1] for row in MANIFEST[:3]]  # verbatim
    for img in results["images"]:
        assert img["max_detection_conf"] == max([d["conf"] for d in img["detections"]], default=0.0)
        for d in img["detections"]:
            assert d["category"] in "123" and 0 < d["conf"] < 1 and len(d["bbox"]) == 4
    assert requests.get(url, timeout=5).json()["images"] == results["images"]  # deterministic
    assert requests.get(url.split("?")[0], timeout=5).status_code == 403  # the SAS is needed


def test_validation_errors(ml):
    base = ml.url + "/request_detections"
    r = requests.post(base, data="{not json", headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 415 and "error" in r.json()
    assert requests.post(base, data="{}", headers={"Content-Type": "text/plain"}, timeout=5).status_code == 415
    r = submit(ml, "https://x/m.json", caller="someone-else")
    assert r.status_code == 401 and "allowlist" in r.json()["error"]
    r = submit(ml, None)
    assert r.status_code == 400 and r.json()["error"] == "images_requested_json_sas is required since use_url is true."
    assert submit(ml, "ftp://x/m.json").json()["error"] == "images_requested_json_sas needs to be an URL."
    r = submit(ml, "https://x/m.json", request_name="a" * 93)
    assert r.status_code == 400 and "92" in r.json()["error"]
    assert submit(ml, "https://x/m.json", request_name="bad name!").status_code == 400
    assert submit(ml, "https://x/m.json", request_name="ok_" + "a" * 89).status_code == 200
    assert submit(ml, "https://x/m.json", model_version="9").status_code == 400
    assert submit(ml, None, use_url="false").status_code == 400
    assert ml.accepted_count == 1


def test_too_many_active_jobs(blobs):
    sas = blobs.put("m.json", MANIFEST)
    with MlServiceStandIn(max_active_jobs=2) as ml:
        ids = [submit(ml, sas).json()["request_id"] for _ in range(2)]
        r = submit(ml, sas)
        assert r.status_code == 503 and r.json() == {"error": "Too many active jobs, please try again later"}
        ml.wait_for_downloads(5)
        ml.set_status(ids[0], "completed")
        assert submit(ml, sas).status_code == 200
        assert ml.accepted_count == 3


def test_unknown_task_and_dashes(ml, blobs):
    r = requests.get(ml.url + "/task/" + "0" * 32, timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "Task is not found."}
    request_id = submit(ml, blobs.put("m.json", MANIFEST)).json()["request_id"]
    ml.wait_for_downloads(5)
    dashed = "-".join([request_id[:8], request_id[8:12], request_id[12:16], request_id[16:20], request_id[20:]])
    body = poll(ml, dashed)
    assert body["TaskId"] == request_id and body["Status"]["request_status"] == "running"


def test_problem_then_completed_and_custom_plans(ml, blobs):
    sas = blobs.put("m.json", MANIFEST)
    request_id = submit(ml, sas).json()["request_id"]
    ml.wait_for_downloads(5)
    ml.set_plan(request_id, ["running", "problem", "problem", "completed"])
    statuses = [poll(ml, request_id)["Status"] for _ in range(5)]
    assert [s["request_status"] for s in statuses] == ["running", "problem", "problem", "completed", "completed"]
    assert "please contact us" in statuses[1]["message"]

    ml.default_plan = ["created", ("failed", "Error occurred while preparing the Batch job: boom")]
    failed_id = submit(ml, sas).json()["request_id"]
    ml.wait_for_downloads(5)
    assert poll(ml, failed_id)["Status"] == {**poll(ml, failed_id)["Status"], "request_status": "failed",
                                              "message": "Error occurred while preparing the Batch job: boom"}


def test_status_stays_created_until_manifest_is_in(ml, blobs):
    blobs.faults.add(r"slow\.json", "slow", delay=0.5)
    request_id = submit(ml, blobs.put("slow.json", MANIFEST)).json()["request_id"]
    first = poll(ml, request_id)["Status"]
    assert first["request_status"] == "created" and first["message"] == "Request received. Listing images next..."
    assert ml.wait_for_downloads(5)
    assert poll(ml, request_id)["Status"]["request_status"] == "running"


def test_manifest_failures(ml, blobs):
    missing = submit(ml, blobs.url + "/nope.json?sig=x").json()["request_id"]
    bad_json = submit(ml, blobs.put("bad.json", b"[oops")).json()["request_id"]
    mixed = submit(ml, blobs.put("mixed.json", ["https://x/a.jpg", ["https://x/b.jpg", "{}"]])).json()["request_id"]
    videos = submit(ml, blobs.put("videos.json", [["https://x/a.mp4", "{}"]])).json()["request_id"]
    empty = submit(ml, blobs.put("empty.json", [])).json()["request_id"]
    assert ml.wait_for_downloads(5)
    for request_id in (missing, bad_json, mixed):
        status = poll(ml, request_id)["Status"]
        assert status["request_status"] == "failed"
        assert status["message"].startswith("Error occurred while preparing the Batch job:")
    assert ml.submissions[0].download_status == 404
    assert poll(ml, videos)["Status"] == {**poll(ml, videos)["Status"], "request_status": "completed",
                                          "message": ("Zero images found in container or in provided list of "
                                                      "images after filtering with the provided parameters.")}
    assert poll(ml, empty)["Status"]["message"] == "0 images found in provided list of images."


def test_failed_images_and_shards(ml, blobs):
    rows = [[f"https://x/img{i}.jpg", META(i, 0)] for i in range(10)]
    ml.failure_rate, ml.failed_shards, ml.shard_size = 0.5, 1, 4
    request_id = submit(ml, blobs.put("m.json", rows)).json()["request_id"]
    ml.wait_for_downloads(5)
    poll(ml, request_id)
    message = poll(ml, request_id)["Status"]["message"]
    assert message["num_failed_shards"] == 1
    images = requests.get(message["output_file_urls"]["detections"], timeout=5).json()["images"]
    assert [i["file"] for i in images] == [r[0] for r in rows[:8]]  # the last shard (2 images) is missing
    failures = [i for i in images if "failure" in i]
    assert 0 < len(failures) < 8 and all("detections" not in i for i in failures)


def test_cancel_rules(ml, blobs):
    request_id = submit(ml, blobs.put("m.json", MANIFEST)).json()["request_id"]
    ml.wait_for_downloads(5)
    cancel = ml.url + "/cancel_request"
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 400 and r.json() == {"error": "Task has created and cannot be canceled"}
    assert requests.post(cancel, json={"caller": "nope", "request_id": request_id}, timeout=5).status_code == 401
    assert requests.post(cancel, json={"caller": "zooniverse"}, timeout=5).status_code == 400
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": "f" * 32}, timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "Task is not found."}
    poll(ml, request_id)  # -> running
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 200 and r.text.startswith("Canceling signal has been sent.")
    status = poll(ml, request_id)["Status"]
    assert status["request_status"] == "canceled" and status["message"] == "Request has been canceled by the user."
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "Task has canceled and cannot be canceled"
    assert ml.cancel_calls == 6

    other = submit(ml, blobs.put("m2.json", MANIFEST)).json()["request_id"]
    ml.wait_for_downloads(5)
    ml.set_status(other, "problem")
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": other}, timeout=5)
    assert r.status_code == 200 and ml.task(other)["request_status"] == "canceled"


def test_accept_then_hang_creates_the_task(ml, blobs):
    fault = ml.faults.add(r"request_detections", "accept_then_hang", delay=1.0, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        submit(ml, blobs.put("m.json", MANIFEST), timeout=0.3)
    assert fault.hits == 1 and ml.accepted_count == 1
    assert ml.wait_for_downloads(5)
    request_id = ml.submissions[0].request_id
    assert ml.task(request_id)["request_status"] == "created"
    assert submit(ml, blobs.put("m.json", MANIFEST)).status_code == 200  # a retry makes a duplicate job
    assert ml.accepted_count == 2


def test_status_faults_and_misc_routes(ml):
    ml.faults.add(r"/task/", "status", status=502, times=1)
    assert requests.get(ml.url + "/task/abc", timeout=5).status_code == 502
    assert requests.get(ml.url + "/task/abc", timeout=5).status_code == 404
    assert requests.get(ml.url + "/default_model_version", timeout=5).text == "4.1"
    assert requests.get(ml.url.rsplit("/v4", 1)[0] + "/elsewhere", timeout=5).status_code == 404
