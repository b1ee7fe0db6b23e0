"""Results people can act on, end to end through the local host and Azurite: every image
accounted for against the detections file the emulator serves, the results CSV, and a re-run of
exactly the failed and missing rows (CONTRACT.md "Results people can act on")."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import urllib.parse

import pytest
import requests

from exports import completion

FAILED_ROWS, MISSING_ROWS = [3, 17], [8, 30]


def blob_bytes(stack, name: str) -> bytes:
    return stack.services.container.get_blob_client(name).download_blob().readall()


def manifest_rows(stack, export: dict) -> list[list[str]]:
    return json.loads(blob_bytes(stack, export["manifest"]["blob"]))


def completed_with_failures(stack, failed=FAILED_ROWS, missing=MISSING_ROWS, **configure) -> dict:
    export = stack.submitted_export()
    stack.ml.configure(export["ml_task_id"], failed_rows=failed, missing_rows=missing, **configure)
    stack.tick(), stack.tick()
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed", done
    return done


def expected_per_subject(rows, detections, threshold=0.5):
    by_pair = {(i["file"], i["meta"]): i for i in detections["images"]}
    subjects: dict[str, dict] = {}
    for url, meta in rows:
        s = subjects.setdefault(
            json.loads(meta)["subject_id"], {"sent": 0, "scored": 0, "failed": 0, "missing": 0, "confs": []}
        )
        s["sent"] += 1
        image = by_pair.get((url, meta))
        if image is None:
            s["missing"] += 1
        elif "failure" in image:
            s["failed"] += 1
        else:
            s["scored"] += 1
            s["confs"].append(image["max_detection_conf"])
    return subjects


def test_a_job_with_failed_and_missing_frames_is_counted_exactly(stack):
    done = completed_with_failures(stack)
    rows = manifest_rows(stack, done)
    detections = stack.ml.detections(done["ml_task_id"])
    scored = [i for i in detections["images"] if "failure" not in i]
    summary = done["results_summary"]
    assert summary["available"] is True and summary["model"] == "megadetector_v5a"
    assert summary["images_sent"] == len(rows) == 49
    assert (summary["images_failed"], summary["images_missing"]) == (2, 2)
    assert summary["images_scored"] == len(scored) == 45
    assert summary["failures"] == {"Failure inference": 2}
    assert summary["images_unknown"] == 0
    # The Subject Assistant's default filter: (1 - max_detection_conf) * 100 >= 50.
    assert summary["likely_empty_threshold"] == 0.5
    assert summary["images_likely_empty"] == sum(
        1 for i in scored if (1 - i["max_detection_conf"]) * 100 >= 50
    )
    subjects = expected_per_subject(rows, detections)
    assert summary["subjects_sent"] == len(subjects) == 25
    incomplete = {sid for sid, s in subjects.items() if s["failed"] or s["missing"]}
    assert summary["subjects_incomplete"] == len(incomplete) == 4
    all_empty = [
        sid
        for sid, s in subjects.items()
        if s["scored"] == s["sent"] and all((1 - c) * 100 >= 50 for c in s["confs"])
    ]
    assert summary["subjects_all_likely_empty"] == len(all_empty)
    assert done["rerun_images"] == 4 and done["rerun_of"] is None


def test_the_results_csv_has_one_right_row_per_subject_in_manifest_order(stack):
    done = completed_with_failures(stack)
    rows = manifest_rows(stack, done)
    detections = stack.ml.detections(done["ml_task_id"])
    url = done["results_csv_url"]
    assert "sp=r" in url and "sr=b" in url and url.split("?")[0].endswith("-results.csv")
    response = requests.get(url, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="subject-assistant-results-{done["id"]}.csv"'
    )
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert list(table[0]) == [
        "subject_id",
        "frames_sent",
        "frames_scored",
        "frames_failed",
        "frames_missing",
        "max_detection_conf",
        "max_conf_animal",
        "max_conf_person",
        "max_conf_vehicle",
        "all_frames_likely_empty",
    ]
    subjects = expected_per_subject(rows, detections)
    assert [line["subject_id"] for line in table] == list(subjects)
    by_pair = {(i["file"], i["meta"]): i for i in detections["images"]}
    for line in table:
        s = subjects[line["subject_id"]]
        assert [
            int(line[k]) for k in ("frames_sent", "frames_scored", "frames_failed", "frames_missing")
        ] == [
            s["sent"],
            s["scored"],
            s["failed"],
            s["missing"],
        ]
        frames = [
            by_pair[(u, m)]
            for u, m in rows
            if json.loads(m)["subject_id"] == line["subject_id"]
            and (u, m) in by_pair
            and "failure" not in by_pair[(u, m)]
        ]
        if not frames:
            assert line["max_detection_conf"] == line["max_conf_animal"] == ""
            continue
        assert float(line["max_detection_conf"]) == max(f["max_detection_conf"] for f in frames)
        for category, name in (("1", "animal"), ("2", "person"), ("3", "vehicle")):
            best = max(
                (d["conf"] for f in frames for d in f["detections"] if d["category"] == category), default=0
            )
            assert float(line[f"max_conf_{name}"]) == best
        empty = s["scored"] == s["sent"] and all((1 - c) * 100 >= 50 for c in s["confs"])
        assert line["all_frames_likely_empty"] == ("true" if empty else "false")


def test_a_rerun_sends_exactly_the_failed_and_missing_rows_and_can_be_rerun_itself(stack):
    parent = completed_with_failures(stack)
    rows = manifest_rows(stack, parent)
    wanted = [rows[i] for i in sorted(FAILED_ROWS + MISSING_ROWS)]
    response = stack.call("POST", f"/api/exports/{parent['id']}/rerun")
    assert response.status_code == 202, response.text
    child = response.json()
    assert response.headers["Location"] == f"/api/exports/{child['id']}"
    assert child["rerun_of"] == parent["id"] and child["subject_set_id"] == parent["subject_set_id"]
    again = stack.call("POST", f"/api/exports/{parent['id']}/rerun")  # idempotent while active
    assert again.status_code == 200 and again.json()["id"] == child["id"]
    assert stack.start_export().json()["id"] == child["id"]  # the set's active export, whoever asked
    stack.settle()
    assert stack.ml.wait_for_downloads(10)
    child = stack.get(child["id"]).json()
    assert child["status"] == "submitted" and child["ml_task_id"] != parent["ml_task_id"]
    assert child["subject_assistant_url"].endswith(child["ml_task_id"])
    # The manifest: exactly those rows, byte for byte, in the parent's order.
    assert blob_bytes(stack, child["manifest"]["blob"]) == json.dumps(wanted).encode()
    assert child["manifest"]["images"] == 4 and child["manifest"]["subjects"] == 4
    assert stack.ml.submissions[-1].manifest == wanted  # what the ML service received
    # A re-run of the re-run works the same way: one image fails again.
    stack.ml.configure(child["ml_task_id"], failed_rows=[1])
    stack.tick(), stack.tick()
    child = stack.get(child["id"]).json()
    assert child["status"] == "completed" and child["rerun_images"] == 1
    assert (child["results_summary"]["images_sent"], child["results_summary"]["images_failed"]) == (4, 1)
    grandchild = stack.call("POST", f"/api/exports/{child['id']}/rerun").json()
    assert grandchild["rerun_of"] == child["id"]
    stack.settle()
    grandchild = stack.get(grandchild["id"]).json()
    assert blob_bytes(stack, grandchild["manifest"]["blob"]) == json.dumps([wanted[1]]).encode()


def test_rerun_refusals_say_why(stack):
    export = stack.submitted_export()
    response = stack.call("POST", f"/api/exports/{export['id']}/rerun")
    assert response.status_code == 409 and response.json()["error"]["code"] == "export_not_completed"
    stack.tick(), stack.tick()  # completes with every image scored
    done = stack.get(export["id"]).json()
    assert done["rerun_images"] == 0
    response = stack.call("POST", f"/api/exports/{export['id']}/rerun")
    error = response.json()["error"]
    assert response.status_code == 409 and error["code"] == "nothing_to_rerun"
    assert "nothing failed or went missing" in error["message"]
    for token in ("demo-tester-token", "demo-outsider-token"):  # the roles that may start one
        response = stack.call("POST", f"/api/exports/{export['id']}/rerun", token=token)
        assert response.status_code == 404 and response.json()["error"]["code"] == "export_not_found"
    assert stack.call("POST", "/api/exports/1234-5678-0000000000000deadbeef/rerun").status_code == 404


def test_rows_the_manifest_never_held_are_counted_and_change_nothing_else(stack):
    extra = [["https://elsewhere.example/x.jpg", '{"subject_id": "1"}'], "https://elsewhere.example/y.jpg"]
    done = completed_with_failures(stack, extra_rows=extra)
    summary = done["results_summary"]
    assert summary["images_unknown"] == 2
    assert (summary["images_sent"], summary["images_failed"], summary["images_missing"]) == (49, 2, 2)


def test_a_manifest_that_is_gone_is_said_and_leaves_nothing_to_rerun(stack):
    export = stack.submitted_export()
    stack.services.container.delete_blob(export["manifest"]["blob"])
    stack.tick(), stack.tick()
    done = stack.get(export["id"]).json()
    assert done["status"] == "completed" and done["results_summary"]["available"] is False
    assert "manifest is no longer stored" in done["results_summary"]["reason"]
    assert done["rerun_images"] is None and done["results_csv_url"] is None
    response = stack.call("POST", f"/api/exports/{export['id']}/rerun")
    error = response.json()["error"]
    assert response.status_code == 409 and error["code"] == "nothing_to_rerun"
    assert "manifest is no longer stored" in error["message"]


def test_a_csv_that_cannot_be_written_leaves_the_export_completed_with_the_reason(stack, monkeypatch):
    container = stack.services.container
    real = container.get_blob_client

    def blob_client(name):  # the CSV goes to a container that does not exist: storage refuses it
        if name == completion.csv_blob_name(name.split("ml-subject-assistant-")[-1].split("-results")[0]):
            return stack.services.storage.blob_service.get_blob_client("no-such-container", name)
        return real(name)

    monkeypatch.setattr(container, "get_blob_client", blob_client)
    done = completed_with_failures(stack)
    summary = done["results_summary"]
    assert summary["available"] is True and summary["images_failed"] == 2
    assert summary["csv_reason"].startswith("The results CSV is not available")
    assert done["results_csv_url"] is None and done["rerun_images"] == 4


@pytest.mark.parametrize("settings_overrides", [{"RESULTS_CSV_MINUTES": "5"}])
def test_the_csv_link_is_minted_on_each_read_for_at_most_its_lifetime(stack):
    done = completed_with_failures(stack)
    first = done["results_csv_url"]

    query = urllib.parse.parse_qs(first.split("?", 1)[1])
    start = dt.datetime.fromisoformat(query["st"][0].replace("Z", "+00:00"))
    expiry = dt.datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    assert expiry - start <= dt.timedelta(minutes=5 + 5)  # its lifetime plus the clock-skew margin
    listing = stack.call("GET", "/api/projects/1234/exports").json()
    entry = next(s for s in listing["subject_sets"] if s["id"] == "5678")
    assert entry["latest_completed_export"]["results_csv_url"].split("?")[0] == first.split("?")[0]
