"""The MegaDetector batch API v4 emulator: validation, async manifest
download, status progression, detections file, cancel rules and faults."""

import json
import re
import threading
import time
import tracemalloc
import zlib

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from standins import MlServiceStandIn
from standins.ml_service import detections, real
from standins.server import Response, StandInServer

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def META(sid, frame):  # Hamlet's meta string
    return json.dumps(
        {"project_id": "1234", "subject_set_id": "5678", "subject_id": str(sid), "frame_id": str(frame)}
    )


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
        self.blobs["/" + name] = (
            data if isinstance(data, bytes) else json.dumps(data).encode(),
            content_type,
        )
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
    body = {
        "images_requested_json_sas": sas,
        "use_url": "true",
        "request_name": "zooniverse-subject-assistant",
        "caller": "zooniverse",
        **overrides,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return requests.post(ml.url + "/request_detections", json=body, timeout=timeout)


def poll(ml, request_id):
    r = requests.get(f"{ml.url}/task/{request_id}", timeout=5)
    assert r.status_code == 200
    return r.json()


def checked(ml, request_id):
    """One monitor check of every task, then the task's status as GET /task answers it."""
    ml.run_monitor()
    return poll(ml, request_id)


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
    first = checked(ml, request_id)
    assert first["Status"]["request_status"] == "running"
    assert first["Status"]["message"].startswith("Submitted 3 images to cluster in 1 shards.")
    assert first["TaskId"] == request_id
    assert first["Endpoint"] == "/v4/camera-trap/detection-batch/request_detections"
    assert re.fullmatch(ISO_Z, first["Timestamp"])  # get_utc_time(): microseconds and "Z"
    assert first["Status"]["num_images"] == 3 and "num_tasks" not in first["Status"]
    assert set(first["Status"]) == {"request_status", "message", "num_images"}  # no time field
    assert ml.stored_status(request_id)["num_tasks"] == 1 and ml.can_restart_monitoring(request_id)
    done = checked(ml, request_id)["Status"]
    assert done["request_status"] == "completed"
    assert done["message"]["num_failed_shards"] == 0
    url = done["message"]["output_file_urls"]["detections"]
    assert "sig=" in url and poll(ml, request_id)["Status"]["request_status"] == "completed"
    assert ml.status_calls[request_id] == 3

    answer = requests.get(url, timeout=5)
    results = answer.json()
    # aggregate_results(): json.dumps(..., ensure_ascii=False, indent=1), sent with its length
    assert answer.content == json.dumps(results, ensure_ascii=False, indent=1).encode("utf-8")
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert answer.content == b"".join(ml.iter_detections_bytes(request_id))
    assert results["info"]["detector"] == "megadetector_v5a" and results["info"]["format_version"] == "1.1"
    assert re.fullmatch(ISO_Z, results["info"]["detection_completion_time"])
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
    assert (
        requests.post(base, data="{}", headers={"Content-Type": "text/plain"}, timeout=5).status_code == 415
    )
    r = submit(ml, "https://x/m.json", caller="someone-else")
    assert r.status_code == 401 and "allowlist" in r.json()["error"]
    r = submit(ml, None)
    assert (
        r.status_code == 400
        and r.json()["error"] == "images_requested_json_sas is required since use_url is true."
    )
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
    dashed = "-".join(
        [request_id[:8], request_id[8:12], request_id[12:16], request_id[16:20], request_id[20:]]
    )
    ml.run_monitor()
    body = poll(ml, dashed)
    assert body["TaskId"] == request_id and body["Status"]["request_status"] == "running"


def test_problem_then_completed_and_custom_plans(ml, blobs):
    sas = blobs.put("m.json", MANIFEST)
    request_id = submit(ml, sas).json()["request_id"]
    ml.wait_for_downloads(5)
    ml.set_plan(request_id, ["running", "problem", "problem", "completed"])
    statuses = [checked(ml, request_id)["Status"] for _ in range(5)]
    assert [s["request_status"] for s in statuses] == [
        "running",
        "problem",
        "problem",
        "completed",
        "completed",
    ]
    assert "please contact us" in statuses[1]["message"]

    ml.default_plan = ["created", ("failed", "Error occurred while preparing the Batch job: boom")]
    failed_id = submit(ml, sas).json()["request_id"]
    ml.wait_for_downloads(5)
    ml.run_monitor()
    assert poll(ml, failed_id)["Status"] == {
        **poll(ml, failed_id)["Status"],
        "request_status": "failed",
        "message": "Error occurred while preparing the Batch job: boom",
    }


def test_status_stays_created_until_manifest_is_in(ml, blobs):
    blobs.faults.add(r"slow\.json", "slow", delay=0.5)
    request_id = submit(ml, blobs.put("slow.json", MANIFEST)).json()["request_id"]
    first = checked(ml, request_id)["Status"]  # a monitor check while it lists: nothing moves
    assert (
        first["request_status"] == "created"
        and first["message"] == "Request received. Listing images next..."
    )
    assert ml.wait_for_downloads(5)
    assert checked(ml, request_id)["Status"]["request_status"] == "running"


def test_manifest_failures(ml, blobs):
    missing = submit(ml, blobs.url + "/nope.json?sig=x").json()["request_id"]
    bad_json = submit(ml, blobs.put("bad.json", b"[oops")).json()["request_id"]
    mixed = submit(ml, blobs.put("mixed.json", ["https://x/a.jpg", ["https://x/b.jpg", "{}"]])).json()[
        "request_id"
    ]
    videos = submit(ml, blobs.put("videos.json", [["https://x/a.mp4", "{}"]])).json()["request_id"]
    empty = submit(ml, blobs.put("empty.json", [])).json()["request_id"]
    assert ml.wait_for_downloads(5)
    for request_id in (missing, bad_json, mixed):
        status = poll(ml, request_id)["Status"]
        assert status["request_status"] == "failed"
        assert status["message"].startswith("Error occurred while preparing the Batch job:")
    assert ml.submissions[0].download_status == 404
    assert poll(ml, videos)["Status"] == {
        **poll(ml, videos)["Status"],
        "request_status": "completed",
        "message": (
            "Zero images found in container or in provided list of "
            "images after filtering with the provided parameters."
        ),
    }
    assert poll(ml, empty)["Status"]["message"] == "0 images found in provided list of images."


def test_failed_images_and_shards(ml, blobs):
    rows = [[f"https://x/img{i}.jpg", META(i, 0)] for i in range(10)]
    ml.failure_rate, ml.failed_shards, ml.shard_size = 0.5, 1, 4
    request_id = submit(ml, blobs.put("m.json", rows)).json()["request_id"]
    ml.wait_for_downloads(5)
    checked(ml, request_id)
    message = checked(ml, request_id)["Status"]["message"]
    assert message["num_failed_shards"] == 1
    images = requests.get(message["output_file_urls"]["detections"], timeout=5).json()["images"]
    assert [i["file"] for i in images] == [r[0] for r in rows[:8]]  # the last shard (2 images) is missing
    failures = [i for i in images if "failure" in i]
    assert 0 < len(failures) < 8
    for image in failures:  # pytorch_detector.py: inference failures keep both keys
        assert image["failure"] == "Failure inference"
        assert image["max_detection_conf"] == 0.0 and image["detections"] == []


def test_cancel_rules(ml, blobs):
    request_id = submit(ml, blobs.put("m.json", MANIFEST)).json()["request_id"]
    ml.wait_for_downloads(5)
    cancel = ml.url + "/cancel_request"
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 400 and r.json() == {"error": "Task has created and cannot be canceled"}
    assert (
        requests.post(cancel, json={"caller": "nope", "request_id": request_id}, timeout=5).status_code == 401
    )
    assert requests.post(cancel, json={"caller": "zooniverse"}, timeout=5).status_code == 400
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": "f" * 32}, timeout=5)
    assert r.status_code == 404 and r.json() == {"error": "Task is not found."}
    checked(ml, request_id)  # -> running
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 200 and r.text.startswith("Canceling signal has been sent.")
    assert ml.task(request_id) == {
        "request_status": "canceled",
        "message": "Request has been canceled by the user.",
    }
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": request_id}, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "Task has canceled and cannot be canceled"
    assert ml.cancel_calls == 6

    other = submit(ml, blobs.put("m2.json", MANIFEST)).json()["request_id"]
    ml.wait_for_downloads(5)
    ml.set_status(other, "problem")
    r = requests.post(cancel, json={"caller": "zooniverse", "request_id": other}, timeout=5)
    assert r.status_code == 200 and ml.task(other)["request_status"] == "canceled"
    assert checked(ml, other)["Status"]["request_status"] == "running"  # its monitor is still alive


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
    assert requests.get(ml.url + "/default_model_version", timeout=5).text == "5a"
    assert requests.get(ml.url.rsplit("/v4", 1)[0] + "/elsewhere", timeout=5).status_code == 404


# -- helpers for the scenarios below -----------------------------------------------------
def rows(n):
    return [[f"https://x/img{i}.jpg", META(i, 0)] for i in range(n)]


def started(ml, blobs, manifest=None, **overrides):
    """A task whose manifest is in (status `created`)."""
    r = submit(
        ml,
        blobs.put(f"m{len(blobs.blobs)}.json", manifest if manifest is not None else MANIFEST),
        **overrides,
    )
    assert r.status_code == 200, r.text
    assert ml.wait_for_downloads(5)
    return r.json()["request_id"]


def cancel(ml, request_id):
    return requests.post(
        ml.url + "/cancel_request", json={"caller": "zooniverse", "request_id": request_id}, timeout=5
    )


def results_of(ml, status):
    return requests.get(status["message"]["output_file_urls"]["detections"], timeout=30)


# -- 1. model versions ---------------------------------------------------------------------
def test_model_versions_follow_the_zooniverse_config(ml, blobs):
    assert real.DEFAULT_MODEL_VERSION == "5a"
    assert requests.get(ml.url + "/supported_model_versions", timeout=5).json() == ["2", "3", "4.1", "5a"]
    r = submit(ml, "https://x/m.json", model_version="4")
    assert r.status_code == 400 and r.json() == {"error": "model_version 4 is not supported."}
    r = requests.post(
        ml.url + "/request_detections",
        timeout=5,
        json={  # str(None) is checked too
            "caller": "zooniverse",
            "use_url": True,
            "images_requested_json_sas": "https://x/m.json",
            "model_version": None,
        },
    )
    assert r.status_code == 400 and r.json() == {"error": "model_version None is not supported."}

    ml.legacy_models_fail = False
    v3 = started(ml, blobs, model_version="3")
    checked(ml, v3)
    assert ml.detections(v3)["info"]["detector"] == "megadetector_v3"
    assert len(results_of(ml, checked(ml, v3)["Status"]).json()["images"]) == 3


def test_legacy_models_fail_every_shard_by_default(ml, blobs):
    request_id = started(ml, blobs, rows(5), model_version="4.1")
    ml.configure(request_id, shard_size=2)
    assert checked(ml, request_id)["Status"]["message"].startswith(
        "Submitted 5 images to cluster in 3 shards."
    )
    done = checked(ml, request_id)["Status"]
    assert done["message"]["num_failed_shards"] == 3
    results = results_of(ml, done).json()
    assert results["info"]["detector"] == "megadetector_v4.1" and results["images"] == []


def test_numeric_model_version_is_a_permanent_submission_problem(ml, blobs):
    # str(3) passes the view's check; MD_VERSIONS_TO_REL_PATH[3] then raises KeyError(3).
    request_id = started(ml, blobs, model_version=3)
    status = poll(ml, request_id)["Status"]
    assert status == {
        "request_status": "problem",
        "message": "Please contact us. Error occurred while submitting the Batch job: 3",
    }
    r = cancel(ml, request_id)  # no Batch job was ever created: terminate fails
    assert r.status_code == 500 and r.json()["error"].startswith("Error when canceling the request: ")
    assert poll(ml, request_id)["Status"]["request_status"] == "problem"


# -- 2. failed images ----------------------------------------------------------------------
def test_failure_shapes_follow_score_v5(ml, blobs):
    ml.failure_rate, ml.access_failure_rate = 0.3, 0.3
    request_id = started(ml, blobs, rows(60))
    checked(ml, request_id)
    images = results_of(ml, checked(ml, request_id)["Status"]).json()["images"]
    inference = [i for i in images if i.get("failure") == "Failure inference"]
    access = [i for i in images if i.get("failure") == "Failure image access"]
    assert inference and access and len(inference) + len(access) < len(images)
    for image in inference:
        assert list(image) == ["file", "failure", "max_detection_conf", "detections", "meta"]
        assert image["max_detection_conf"] == 0.0 and image["detections"] == []
    for image in access:  # the download failed: score_v5 writes no detector output at all
        assert list(image) == ["file", "failure", "meta"]
    for image in images:
        if "failure" not in image:
            assert list(image) == ["file", "max_detection_conf", "detections", "meta"]


def test_chosen_rows_fail_and_go_missing_exactly(ml, blobs):
    """configure(failed_rows=, missing_rows=) names manifest rows as sent (the service drops
    the .mp4 row 2 itself): exactly those fail, as the deployed service writes a failed image,
    and exactly those are absent; a shard that held a missing row counts as failed."""
    manifest = rows(7)
    manifest[2] = ["https://x/video.mp4", META(2, 0)]
    request_id = started(ml, blobs, manifest)
    ml.configure(request_id, shard_size=2, failed_rows=[0, 4], missing_rows=[3, 6])
    ml.set_plan(request_id, ["running", "running", "completed"])
    # Images 0 1 3 4 5 6 in shards [0 1] [3 4] [5 6]: rows 3 and 6 are in the last two.
    assert checked(ml, request_id)["Status"]["message"].startswith(
        "Submitted 6 images to cluster in 3 shards"
    )
    assert checked(ml, request_id)["Status"]["message"] == (
        "Check number 1, 1 out of 3 shards have completed successfully, 2 shards have failed."
    )
    done = checked(ml, request_id)["Status"]
    assert done["message"]["num_failed_shards"] == 2
    answer = results_of(ml, done)
    images = answer.json()["images"]
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert [i["file"] for i in images] == [manifest[k][0] for k in (0, 1, 4, 5)]
    assert [i["meta"] for i in images] == [manifest[k][1] for k in (0, 1, 4, 5)]
    failed = [i for i in images if "failure" in i]
    assert [i["file"] for i in failed] == [manifest[0][0], manifest[4][0]]
    for image in failed:  # pytorch_detector.py: shown by the Subject Assistant as 100% empty
        assert image == {
            "file": image["file"],
            "failure": "Failure inference",
            "max_detection_conf": 0.0,
            "detections": [],
            "meta": image["meta"],
        }
        assert list(image) == ["file", "failure", "max_detection_conf", "detections", "meta"]
    assert all("failure" not in i for i in images if i not in failed)  # the rates are 0


def test_extra_rows_the_manifest_never_held(ml, blobs):
    """Hostile input for the results accounting: rows in the file that match no manifest row
    (an unknown file, a known file with another meta, a plain URL), among the real ones."""
    manifest = rows(3)
    extra = [["https://x/never-sent.jpg", META(99, 0)], [manifest[1][0], META(98, 0)], "https://x/bare.jpg"]
    request_id, done = completed_task(ml, blobs, manifest=manifest, extra_rows=extra, missing_rows=[2])
    images = results_of(ml, done).json()["images"]
    assert [(i["file"], i.get("meta")) for i in images] == [
        (manifest[0][0], manifest[0][1]),
        (extra[0][0], extra[0][1]),
        (manifest[1][0], manifest[1][1]),
        (extra[1][0], extra[1][1]),
        (extra[2], None),
    ]
    assert all("max_detection_conf" in i for i in images)  # scored like any image
    assert done["message"]["num_failed_shards"] == 1  # row 2 is missing, and its shard failed
    with pytest.raises(ValueError):
        ml.configure(request_id, extra_rows=[{"file": "x"}])
    with pytest.raises(ValueError):
        ml.configure(request_id, failed_rows=[-1])
    with pytest.raises(ValueError):
        ml.configure(request_id, missing_rows=["1"])
    assert results_of(ml, done).json()["images"] == images  # a refused configure changes nothing


def test_chosen_rows_in_a_large_synthetic_file(ml, blobs):
    """With results_images, the indices are the synthetic rows': 5% failed and 1% missing of
    20,000, streamed with its exact length."""
    n = 20_000
    failed, missing = set(range(0, n, 20)), set(range(7, n, 100))
    request_id, done = completed_task(ml, blobs, results_images=n, failed_rows=failed, missing_rows=missing)
    answer = results_of(ml, done)
    assert answer.headers["Content-Length"] == str(len(answer.content))
    images = answer.json()["images"]
    synthetic = ml.blobs.file_spec(request_id).synthetic
    expected = [synthetic.row(i) for i in range(n) if i not in missing]
    assert [[i["file"], i["meta"]] for i in images] == expected
    assert [k for k, i in enumerate(r for r in range(n) if r not in missing) if i in failed] == [
        k for k, image in enumerate(images) if image.get("failure") == "Failure inference"
    ]
    assert done["message"]["num_failed_shards"] == 0  # synthetic rows belong to no shard


def test_oversized_results_ignore_the_row_controls(ml, blobs):
    request_id, done = completed_task(
        ml,
        blobs,
        results_mode="oversized",
        results_bytes=200_000,
        missing_rows=[0],
        extra_rows=["https://x/y.jpg"],
    )
    answer = results_of(ml, done)
    assert int(answer.headers["Content-Length"]) == len(answer.content) > 200_000


# -- 4. num_images / num_tasks -------------------------------------------------------------
def test_num_images_appears_once_running_and_stays(ml, blobs):
    request_id = started(ml, blobs)
    assert ml.stored_status(request_id) == {
        "request_status": "created",
        "message": "3 images listed; submitting the job...",
    }
    ml.set_plan(request_id, ["running", "running", "problem", "completed"])
    for expected in ("running", "running", "problem", "completed"):
        status = checked(ml, request_id)["Status"]
        assert status["request_status"] == expected
        assert status["num_images"] == 3 and "num_tasks" not in status
        assert ml.stored_status(request_id)["num_tasks"] == 1
    assert not ml.can_restart_monitoring(request_id)


# -- 3. the emulator's own clock ------------------------------------------------------------
def read_everything(ml, request_id, times=25):
    """Every way a caller can read the service, `times` over."""
    for _ in range(times):
        for method in ("GET", "HEAD"):
            for path in (f"/task/{request_id}", "/all_jobs", "/", "/supported_model_versions"):
                assert requests.request(method, ml.url + path, timeout=5).status_code == 200


def test_reads_change_nothing(ml, blobs):
    """The deployed service writes a status from its own threads only (the job thread, the
    10-minute monitor, a cancel); GET /task reads it. Breaks if any read moves a task."""
    request_id = started(ml, blobs)
    ml.set_plan(request_id, ["running"] * 4)
    for _ in range(3):  # created, running "Submitted ...", running "Check number 1", ...
        before = poll(ml, request_id)
        calls = ml.status_calls[request_id]
        read_everything(ml, request_id)
        assert poll(ml, request_id) == before  # status, message, num_images and Timestamp
        assert ml.status_calls[request_id] == calls + 2 * 25 + 1  # HEAD is a read too
        assert ml.run_monitor() == [request_id]  # ... and only a monitor check moves it
        assert poll(ml, request_id) != before
    assert cancel(ml, request_id).status_code == 200
    canceled = poll(ml, request_id)
    read_everything(ml, request_id)  # the monitor's overwrite of `canceled` waits for a check
    assert poll(ml, request_id) == canceled and canceled["Status"]["request_status"] == "canceled"
    assert checked(ml, request_id)["Status"]["request_status"] == "running"


def test_run_monitor_checks_every_task_or_one(ml, blobs):
    first, second = started(ml, blobs), started(ml, blobs)
    assert ml.run_monitor(second) == [second]
    assert [ml.task(t)["request_status"] for t in (first, second)] == ["created", "running"]
    assert sorted(ml.run_monitor()) == sorted([first, second])
    assert [ml.task(t)["request_status"] for t in (first, second)] == ["running", "completed"]
    assert ml.run_monitor() == [first] and ml.run_monitor() == []  # plans end: nothing moves
    assert ml.status_calls == {first: 0, second: 0}


def test_the_monitor_keeps_its_own_pace(blobs):
    """With monitor_seconds set, tasks move with nobody reading them; None stops the pace and
    a new pace applies at once."""
    with MlServiceStandIn(monitor_seconds=0.05) as ml:
        request_id = started(ml, blobs)
        assert wait_until(lambda: ml.task(request_id)["request_status"] == "completed")
        assert ml.status_calls[request_id] == 0
        ml.monitor_seconds = None
        paused = started(ml, blobs)
        time.sleep(0.5)  # ten periods of the old pace
        assert ml.task(paused)["request_status"] == "created"
        ml.monitor_seconds = 0.05  # wakes the monitor, which was waiting for no deadline
        assert wait_until(lambda: ml.task(paused)["request_status"] == "completed")
    with MlServiceStandIn() as idle:
        assert idle.monitor_seconds is None


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_status_answer_is_flask_jsonify(ml, blobs):
    request_id = started(ml, blobs)
    r = requests.get(f"{ml.url}/task/{request_id}", timeout=5)
    assert r.headers["Content-Type"] == "application/json" and r.text.endswith("}\n")
    assert r.text.startswith('{"Endpoint":"/v4/camera-trap/detection-batch/request_detections","Status":')


# -- 5. cancel as the real service does it ----------------------------------------------------
def test_cancel_is_overwritten_by_the_monitor(ml, blobs):
    request_id = started(ml, blobs)
    first = checked(ml, request_id)["Status"]  # "Submitted ...": no shard has finished yet
    assert first["message"].startswith("Submitted 3 images")
    assert cancel(ml, request_id).status_code == 200
    assert ml.task(request_id)["request_status"] == "canceled"
    check = checked(ml, request_id)["Status"]
    assert check == {
        "request_status": "running",
        "num_images": 3,
        "message": "Check number 1, 0 out of 1 shards have completed successfully, 1 shards have failed.",
    }
    done = checked(ml, request_id)["Status"]
    assert done["request_status"] == "completed" and done["message"]["num_failed_shards"] == 1
    answer = results_of(ml, done)
    # No shard succeeded: aggregate_results() still writes the file, with no images.
    assert answer.json()["images"] == []
    assert answer.content == json.dumps(answer.json(), ensure_ascii=False, indent=1).encode()
    assert b'"images": []\n}' in answer.content
    assert poll(ml, request_id)["Status"]["request_status"] == "completed"
    r = cancel(ml, request_id)
    assert r.status_code == 400 and r.json() == {"error": "Task has completed and cannot be canceled"}


def test_cancel_keeps_the_shards_done_before_it(ml, blobs):
    manifest = rows(10)
    request_id = started(ml, blobs, manifest)
    ml.configure(request_id, shard_size=4, shards_done_at_cancel=2)
    checked(ml, request_id)
    cancel(ml, request_id)
    assert checked(ml, request_id)["Status"]["message"] == (
        "Check number 1, 2 out of 3 shards have completed successfully, 1 shards have failed."
    )
    done = checked(ml, request_id)["Status"]
    assert done["message"]["num_failed_shards"] == 1
    assert [i["file"] for i in results_of(ml, done).json()["images"]] == [r[0] for r in manifest[:8]]


def test_cancel_after_a_check_counts_the_reported_shards(ml, blobs):
    request_id = started(ml, blobs, rows(10))
    ml.configure(request_id, shard_size=4, failed_shards=1)
    ml.set_plan(request_id, ["running", "running", "running", "completed"])
    checked(ml, request_id), checked(ml, request_id)  # Check number 1: 2 succeeded, 1 failed
    cancel(ml, request_id)
    assert "Check number 2, 2 out of 3 shards" in checked(ml, request_id)["Status"]["message"]
    assert len(ml.detections(request_id)["images"]) == 8


def test_idealised_cancel_stays_canceled(blobs):
    with MlServiceStandIn() as ml:
        ml.cancel_overwritten = False
        request_id = started(ml, blobs)
        checked(ml, request_id)
        assert cancel(ml, request_id).status_code == 200
        assert [checked(ml, request_id)["Status"]["request_status"] for _ in range(3)] == ["canceled"] * 3
    assert MlServiceStandIn.cancel_overwritten is True


def test_canceled_jobs_leave_the_active_job_quota(blobs):
    with MlServiceStandIn(max_active_jobs=1) as ml:
        request_id = started(ml, blobs)
        checked(ml, request_id)
        assert submit(ml, "https://x/m.json").status_code == 503
        cancel(ml, request_id)
        assert (
            checked(ml, request_id)["Status"]["request_status"] == "running"
        )  # its Batch job was terminated
        assert submit(ml, blobs.put("q.json", MANIFEST)).status_code == 200


# -- 6. permanent problem --------------------------------------------------------------------
def test_submission_problem_never_moves(ml, blobs):
    request_id = started(ml, blobs)
    ml.script_submission_problem(request_id, error="pool is gone")
    ml.set_plan(request_id, ["running", "completed"])
    answers = [checked(ml, request_id) for _ in range(4)]
    assert {json.dumps(a, sort_keys=True) for a in answers} == {json.dumps(answers[0], sort_keys=True)}
    assert answers[0]["Status"] == {
        "request_status": "problem",
        "message": "Please contact us. Error occurred while submitting the Batch job: pool is gone",
    }
    assert "num_tasks" not in ml.stored_status(request_id) and not ml.can_restart_monitoring(request_id)
    assert cancel(ml, request_id).status_code == 200  # the Batch job exists; no monitor to overwrite
    assert [checked(ml, request_id)["Status"]["request_status"] for _ in range(2)] == ["canceled"] * 2


def test_submission_problem_scripted_before_the_manifest_is_in(ml, blobs):
    blobs.faults.add(r"slow\.json", "slow", delay=0.3)
    request_id = submit(ml, blobs.put("slow.json", MANIFEST)).json()["request_id"]
    ml.script_submission_problem(request_id, batch_job_exists=False)
    assert ml.wait_for_downloads(5)
    assert poll(ml, request_id)["Status"]["message"].startswith(real.SUBMIT_ERROR)
    assert cancel(ml, request_id).status_code == 500


# -- 7. max monitor cycles ---------------------------------------------------------------------
def test_max_monitor_cycles_then_aggregated(ml, blobs):
    manifest = rows(10)
    request_id = started(ml, blobs, manifest)
    ml.configure(request_id, shard_size=4)
    ml.script_max_cycles(request_id, running_checks=2)
    statuses = [checked(ml, request_id)["Status"] for _ in range(5)]
    assert [s["request_status"] for s in statuses] == [
        "running",
        "running",
        "problem",
        "completed",
        "completed",
    ]
    assert statuses[0]["message"] == (
        "Check number 4031, 2 out of 3 shards have completed successfully, 0 shards have failed."
    )
    assert statuses[1]["message"].startswith("Check number 4032, ")
    assert statuses[2]["message"] == (
        "Job unfinished after 4033 x 10 minutes, please contact us to retrieve "
        "the results. Number of succeeded shards: 2"
    )
    assert statuses[3]["message"]["num_failed_shards"] == 0
    assert [i["file"] for i in results_of(ml, statuses[3]).json()["images"]] == [r[0] for r in manifest[:8]]


# -- 8. results of a given size, streamed ------------------------------------------------------
def completed_task(ml, blobs, manifest=None, **config):
    request_id = started(ml, blobs, manifest)
    ml.configure(request_id, **config)
    checked(ml, request_id)
    return request_id, checked(ml, request_id)["Status"]


def test_synthetic_results_are_streamed_with_their_length(ml, blobs):
    ml.failure_rate = 0.1
    request_id, done = completed_task(ml, blobs, results_images=3000)
    answer = results_of(ml, done)
    assert answer.headers["Content-Length"] == str(len(answer.content))
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.content == b"".join(ml.iter_detections_bytes(request_id))
    results = answer.json()
    assert answer.content == json.dumps(results, ensure_ascii=False, indent=1).encode()
    images = results["images"]
    assert len(images) == 3000 and images == ml.detections(request_id)["images"]
    assert 150 < sum("failure" in i for i in images) < 450
    metas = [json.loads(i["meta"]) for i in images]
    assert list(metas[0]) == ["project_id", "subject_set_id", "subject_id", "frame_id"]
    assert {(m["project_id"], m["subject_set_id"]) for m in metas} == {("1234", "5678")}  # from the manifest
    assert all("max_detection_conf" in i and "detections" in i for i in images)


def test_the_reference_images_are_the_files_images(ml, blobs):
    """iter_detection_images() is what tests of files too large to parse compare with."""
    ml.failure_rate = 0.1
    request_id, _ = completed_task(ml, blobs, results_images=600, missing_rows=[0, 300, 599])
    images = ml.detections(request_id)["images"]
    assert len(images) == 597 and any("failure" in i for i in images)
    assert list(ml.iter_detection_images(request_id)) == images


def test_chunked_results(ml, blobs):
    request_id, done = completed_task(ml, blobs, results_images=500, results_chunked=True)
    answer = results_of(ml, done)
    assert answer.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in answer.headers
    assert len(answer.json()["images"]) == 500


def test_a_million_images_are_never_built_in_memory(ml, blobs):
    request_id, _ = completed_task(ml, blobs, results_images=1_000_000)
    tracemalloc.start()
    try:
        pieces = ml.iter_detections_bytes(request_id)
        taken = sum(len(next(pieces)) for _ in range(60))  # ~4 MB of the file
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert taken > 3_500_000 and peak < 3_000_000


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_encode_image_is_json_dumps_indent_1(value):
    expected = json.dumps({"images": [value]}, ensure_ascii=False, indent=1)
    assert '{\n "images": [\n' + detections.encode_image(value) + "\n ]\n}" == expected


# -- 9. hostile results --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "http://other-host/detections.json"]
)
def test_results_url_is_reported_verbatim(ml, blobs, url):
    request_id, done = completed_task(ml, blobs, results_url=url)
    assert done["message"] == {"num_failed_shards": 0, "output_file_urls": {"detections": url}}


def test_gzip_bomb(ml, blobs):
    request_id, done = completed_task(ml, blobs, results_mode="gzip_bomb")
    url = done["message"]["output_file_urls"]["detections"]
    assert url.startswith(ml.root_url + "/")
    with requests.get(url, stream=True, timeout=30) as answer:
        assert answer.headers["Content-Encoding"] == "gzip"
        compressed = answer.raw.read(decode_content=False)
    assert len(compressed) < 1_000_000 and compressed == b"".join(ml.iter_detections_bytes(request_id))
    inflater, inflated, head = zlib.decompressobj(31), 0, b""
    data = compressed
    while data:
        out = inflater.decompress(data, 1 << 20)
        head = head or out[:40]
        inflated += len(out)
        data = inflater.unconsumed_tail
    assert inflated >= 200 * 1024 * 1024 and head.startswith(b'{\n "info"')
    assert detections.gzip_bomb() is detections.gzip_bomb()  # built once


def test_drip(ml, blobs):
    request_id, done = completed_task(
        ml, blobs, results_mode="drip", drip_interval=0.05, drip_max_seconds=0.5
    )
    began = time.monotonic()
    with requests.get(results_of_url(done), stream=True, timeout=5) as answer:
        assert answer.headers["Content-Length"] == "10"
        body = b"".join(answer.iter_content(1))
    assert body == b'{\n "info":'[:10] and 0.4 < time.monotonic() - began < 3
    assert b"".join(ml.iter_detections_bytes(request_id)) == body


def results_of_url(done):
    return done["message"]["output_file_urls"]["detections"]


def test_drip_stops_when_the_server_stops(blobs):
    ml = MlServiceStandIn().start()
    try:
        request_id, done = completed_task(ml, blobs, results_mode="drip")
        got, errors = [], []

        def read():
            try:
                with requests.get(results_of_url(done), stream=True, timeout=10) as answer:
                    assert answer.headers["Content-Length"] == "240"  # 120 s at 0.5 s a byte
                    for byte in answer.iter_content(1):
                        got.append(byte)
            except requests.RequestException as e:
                errors.append(e)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.2)
    finally:
        ml.stop()
    reader.join(5)
    assert not reader.is_alive() and 2 <= len(got) <= 5 and errors  # cut short: not 240 bytes


def test_oversized_results(ml, blobs):
    request_id, done = completed_task(ml, blobs, results_mode="oversized", results_bytes=2_000_000)
    answer = results_of(ml, done)
    assert int(answer.headers["Content-Length"]) == len(answer.content) > 2_000_000
    assert len(answer.content) < 2_010_000  # just past the limit
    assert answer.content == json.dumps(answer.json(), ensure_ascii=False, indent=1).encode()
    assert answer.content == b"".join(ml.iter_detections_bytes(request_id))


def test_not_json_results(ml, blobs):
    request_id, done = completed_task(ml, blobs, results_mode="not_json")
    answer = results_of(ml, done)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        answer.json()
    assert ml.detections(request_id)["images"]  # the real file is still there


def test_results_before_completion_and_unknown_mode(ml, blobs):
    request_id = started(ml, blobs)
    r = requests.get(f"{ml.root_url}/results/{request_id}/detections.json?sig=x", timeout=5)
    assert r.status_code == 404 and b"BlobNotFound" in r.content
    with pytest.raises(ValueError):
        ml.configure(request_id, results_mode="bogus")


# -- request_detections validation against the real view ------------------------------------------
def test_validation_matches_the_real_view(ml):
    base = ml.url + "/request_detections"
    r = requests.post(base, data="{not json", headers={"Content-Type": "application/json"}, timeout=5)
    assert r.json() == {
        "error": "Error occurred reading POST request body: 400 Bad Request: The browser (or "
        "proxy) sent a request that this server could not understand.."
    }
    r = requests.post(base, data="{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert r.json() == {"error": "Body needs to have a JSON mimetype (e.g., application/json)."}
    for crashing in ("[1, 2]", "null"):  # post_body.get(...) raises in the real view
        r = requests.post(base, data=crashing, headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/html")
    assert submit(ml, 7).status_code == 500  # images_requested_json_sas.startswith
    assert submit(ml, "https://x/m.json", request_name=5).status_code == 500  # len(5)
    # Order: caller before URL, URL before model_version, model_version before request_name.
    assert submit(ml, "ftp://x", caller="nope").status_code == 401
    assert (
        submit(ml, "ftp://x", model_version="9").json()["error"]
        == "images_requested_json_sas needs to be an URL."
    )
    r = submit(ml, "https://x/m.json", model_version="9", request_name="bad name")
    assert r.json()["error"] == "model_version 9 is not supported."
    r = submit(ml, "https://x/m.json", use_url="no", input_container_sas="")
    assert r.json()["error"].startswith("input_container_sas with read and list access is a required field")
    r = submit(ml, "https://x/m.json", input_container_sas="https://a/c?sr=b&sp=rl&sig=x")
    assert r.json()["error"] == "input_container_sas provided is not for a container."
    r = submit(ml, "https://x/m.json", input_container_sas="https://a/c?sr=c&sp=r&sig=x")
    assert r.json()["error"] == "input_container_sas provided does not have both read and list permissions."
    assert ml.accepted_count == 0


def test_listing_quirks_of_create_batch_job(ml, blobs, monkeypatch):
    missing = submit(ml, blobs.url + "/nope.json?sig=x").json()["request_id"]
    as_dict = submit(ml, blobs.put("dict.json", {"a": 1})).json()["request_id"]
    first_two = submit(ml, blobs.put("first.json", MANIFEST), first_n=2).json()["request_id"]
    bad_first_n = submit(ml, blobs.put("neg.json", MANIFEST), first_n=-1).json()["request_id"]
    assert ml.wait_for_downloads(5)
    expected = {
        missing: "Error occurred while preparing the Batch job: Expecting value: line 1 column 1 (char 0)",
        as_dict: "Error occurred while preparing the Batch job: 0",  # image_paths[0] on a dict
        bad_first_n: "Error occurred while preparing the Batch job: parameter first_n is 0.",
    }
    for request_id, message in expected.items():
        assert ml.task(request_id) == {"request_status": "failed", "message": message}
    assert ml.task(first_two)["message"] == "2 images listed; submitting the job..."

    monkeypatch.setattr(real, "MAX_NUMBER_IMAGES_ACCEPTED_PER_JOB", 2)
    too_many = started(ml, blobs, MANIFEST)
    assert ml.task(too_many) == {
        "request_status": "failed",
        "message": (
            "The number of images (3) requested for processing exceeds the maximum accepted 2 in one call"
        ),
    }


def test_flask_routes(ml):
    r = requests.get(ml.url + "/request_detections", timeout=5)
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    r = requests.get(ml.url + "/nowhere", timeout=5)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html")
    assert (
        requests.get(ml.url + "/", timeout=5).text
        == "Camera traps batch processing API. Instance: zooniverse"
    )
    assert requests.get(ml.url + "/all_jobs", timeout=5).json() == []


# -- the server's streamed bodies ------------------------------------------------------------------
class Streamer(StandInServer):
    def __init__(self):
        super().__init__()
        self.length = None

    def handle(self, req):
        return Response(
            200,
            (bytes([65 + i]) * 1000 for i in range(5)),
            content_length=self.length,
            content_type="text/plain",
        )


def test_server_streams_iterables():
    with Streamer() as server:
        r = requests.get(server.url, timeout=5)
        assert r.headers["Transfer-Encoding"] == "chunked" and r.content == b"".join(
            bytes([65 + i]) * 1000 for i in range(5)
        )
        server.length = 5000
        r = requests.get(server.url, timeout=5)
        assert r.headers["Content-Length"] == "5000" and len(r.content) == 5000
        server.length = 6000  # the body falls short: the client must see a cut, not a hang
        with pytest.raises(requests.exceptions.RequestException):
            _ = requests.get(server.url, timeout=5).content


def test_cancel_during_the_max_cycles_problem_goes_straight_to_completed(ml, blobs):
    request_id = started(ml, blobs, rows(10))
    ml.configure(request_id, shard_size=4)
    ml.script_max_cycles(request_id, running_checks=1)
    assert [checked(ml, request_id)["Status"]["request_status"] for _ in range(2)] == ["running", "problem"]
    assert cancel(ml, request_id).status_code == 200
    done = checked(ml, request_id)["Status"]  # the monitor was already aggregating
    assert done["request_status"] == "completed" and len(results_of(ml, done).json()["images"]) == 8
