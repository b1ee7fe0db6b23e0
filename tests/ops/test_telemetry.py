"""Telemetry that follows an export, as the exporter sent it (tests/appinsights.py): the ids as
custom dimensions on every event and log line about an export, set once where the export is
handled; Panoptes and ML calls as dependencies with duration, status and the URL without its
query string. Secrets in what was sent: tests/reliability/test_secrets.py."""

import json

from tests.appinsights import tables

IDS = ("export_id", "project_id", "subject_set_id")
EXPORT_EVENTS = ("export_created", "export_status_changed", "export_finished", "export_poisoned")


def rows(telemetry, table):
    return [
        {**row, "customDimensions": json.loads(row["customDimensions"])}
        for row in tables(telemetry.envelopes)[table]
    ]


def test_every_export_event_carries_the_ids_as_dimensions(telemetry):
    events = [r for r in rows(telemetry, "traces") if r["customDimensions"].get("event") in EXPORT_EVENTS]
    seen = {r["customDimensions"]["export_id"] for r in events}
    assert seen == set(telemetry.exports.values())
    for row in events:
        dims = row["customDimensions"]
        project, subject_set = dims["export_id"].split("-")[:2]
        assert (dims["project_id"], dims["subject_set_id"]) == (project, subject_set), row
        assert dims["export_id"] not in [v for k, v in dims.items() if k != "export_id"]
        if dims.get("status") in ("submitted", "running", "completed"):
            assert dims.get("ml_task_id"), row  # known once the ML service accepted the export
    completed = telemetry.exports["completed"]
    story = [
        r["customDimensions"].get("status") for r in events if r["customDimensions"]["export_id"] == completed
    ]
    assert story == ["queued", "building", "submitted", "running", "completed"]
    finished = {
        r["customDimensions"]["export_id"]: r["customDimensions"]
        for r in events
        if r["customDimensions"]["event"] == "export_finished"
    }
    assert finished[telemetry.exports["ml_rejected"]]["error_code"] == "ml_rejected"
    assert float(finished[completed]["seconds_to_submission"]) > 0
    assert float(finished[completed]["seconds_since_submission"]) > 0


def test_log_lines_inside_an_export_carry_its_ids_without_naming_them(telemetry):
    """The worker's own lines pass no ids as fields: the context entered where the message is
    handled adds them (shared/telemetry.py)."""
    written = [r for r in rows(telemetry, "traces") if "manifest written" in r["message"]]
    assert written
    for row in written:
        dims = row["customDimensions"]
        assert all(dims.get(k) for k in IDS), row
        assert "event" not in dims


def test_panoptes_and_ml_calls_are_dependencies_without_query_strings(telemetry):
    calls = [r for r in rows(telemetry, "dependencies") if r["customDimensions"].get("service")]
    assert calls and all(r["type"] == "HTTP" for r in calls)
    for row in calls:
        assert "?" not in row["data"] and "sig=" not in json.dumps(row), row
        assert row["data"].endswith(row["name"].split(" ", 1)[1]), row  # name = method + path
        assert row["resultCode"].isdigit() and row["duration"] >= 0
    by_name = {}
    for row in calls:
        by_name.setdefault((row["customDimensions"]["service"], row["name"].rsplit("/", 1)[-1]), []).append(
            row
        )
    pages = by_name[("Panoptes", "subjects")]
    assert all(r["customDimensions"]["params.page"] and r["customDimensions"]["export_id"] for r in pages)
    ml_polls = [
        r for r in calls if r["customDimensions"]["service"] == "ML service" and "/task/" in r["name"]
    ]
    assert {r["resultCode"] for r in ml_polls} == {"200", "503"}
    assert all(not r["success"] for r in ml_polls if r["resultCode"] == "503")
    assert all(r["customDimensions"].get("ml_task_id") for r in ml_polls)
    # The detections file is read through a SAS link: the dependency shows its path only.
    [download] = [r for r in calls if r["name"].endswith("/detections.json")]
    assert (
        download["resultCode"] == "200"
        and download["customDimensions"]["export_id"] == telemetry.exports["completed"]
    )
