"""The runbook's queries (docs/OPERATIONS.md) and the alert rules' queries (infra/app/alerts.bicep)
run, with duckdb-kql, on the telemetry the app's exporter sent during the scenario of
tests/appinsights.py. What only the Functions host writes (`requests`, its poison line) cannot be
produced here: those parts run on an empty table, and the 5xx rule on a synthetic one."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.appinsights import database, kql, tables
from tests.infra.test_bicep import ROOT, alert_rules

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

RUNBOOK = ROOT / "docs" / "OPERATIONS.md"


def runbook_queries() -> dict[str, str]:
    """Each `### heading` of the runbook followed by a kusto block: {heading: query}."""
    found = {}
    for section in re.split(r"^### ", RUNBOOK.read_text(), flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        block = re.search(r"```kusto\n(.*?)```", body.split("\n## ", 1)[0], re.S)
        if block:
            found[heading.strip()] = block.group(1)
    assert found, "no queries found in docs/OPERATIONS.md"
    return found


@pytest.fixture(scope="module")
def rows(telemetry):
    return tables(telemetry.envelopes)


@pytest.fixture(scope="module")
def db(rows):
    return database(rows)


def run(db, query):
    return kql(db, query)


def test_every_runbook_query_is_tested():
    assert set(runbook_queries()) == {
        "Exports per day by status",
        "Failures by code",
        "Time to ML submission and to completion",
        "Slowest Panoptes pages",
        "One export's whole story",
        "Poll ticks",
        "Callbacks given up",
        "Recent exceptions",
    }


def test_exports_per_day_by_status(db, telemetry):
    found = {r["status"]: r["exports"] for r in run(db, runbook_queries()["Exports per day by status"])}
    # The poisoned export's record was made by the test, not through the API: 3 started.
    assert found == {"started": 3, "completed": 1, "failed": 3}


def test_failures_by_code(db, telemetry):
    found = {r["error_code"]: r for r in run(db, runbook_queries()["Failures by code"])}
    assert {code: r["failures"] for code, r in found.items()} == {
        "ml_rejected": 1,
        "subject_set_empty": 1,
        "internal_error": 1,
    }
    assert found["ml_rejected"]["example"] == telemetry.exports["ml_rejected"]


def test_time_to_submission_and_completion(db):
    [found] = run(db, runbook_queries()["Time to ML submission and to completion"])
    assert found["exports"] == 1
    assert 0 < found["submission_p50"] <= found["submission_p95"]
    assert 0 < found["completion_p50"] <= found["completion_p95"]


def test_slowest_panoptes_pages(db, telemetry):
    found = run(db, runbook_queries()["Slowest Panoptes pages"])
    assert found and all(r["page"] >= 1 and r["resultCode"] == "200" for r in found)
    assert telemetry.exports["completed"] in {r["export_id"] for r in found}
    assert [r["duration"] for r in found] == sorted((r["duration"] for r in found), reverse=True)


def test_one_exports_whole_story(db, telemetry):
    export_id = telemetry.exports["completed"]
    query = runbook_queries()["One export's whole story"].replace("<export id>", export_id)
    story = run(db, query)
    statuses = [r["status"] for r in story if r["status"]]
    assert statuses == ["queued", "building", "submitted", "running", "completed"]
    what = [r["what"] for r in story]
    assert any(w.endswith("/request_detections") for w in what)  # the ML submission
    assert any(w == "GET /api/subjects" for w in what)  # its Panoptes pages
    assert [r["timestamp"] for r in story] == sorted(r["timestamp"] for r in story)
    assert run(db, runbook_queries()["One export's whole story"].replace("<export id>", "1-2-x")) == []


def test_poll_ticks_and_recent_exceptions(db):
    ticks = run(db, runbook_queries()["Poll ticks"])
    assert 4 <= len(ticks) <= 12 and {"active", "polled", "unanswered", "changed"} <= set(ticks[0])
    assert [t["timestamp"] for t in ticks] == sorted((t["timestamp"] for t in ticks), reverse=True)
    assert run(db, runbook_queries()["Recent exceptions"]) == []  # the scenario raised none


def test_callbacks_given_up(db, telemetry):
    found = run(db, runbook_queries()["Callbacks given up"])
    assert [(r["export_id"], r["status"], r["attempts"]) for r in found] == [
        (telemetry.exports["subject_set_empty"], "410", 1)
    ]


# -- alerts ------------------------------------------------------------------------------------
def test_the_failure_alert_fires_for_operational_codes_only(db, telemetry):
    found = run(db, alert_rules()["exports-failed-operational"]["query"])
    assert sorted(r["error_code"] for r in found) == ["internal_error", "ml_rejected"]
    assert telemetry.exports["subject_set_empty"] not in {r["export_id"] for r in found}


def test_the_poison_alert_fires_for_the_poisoned_export(db, telemetry):
    found = run(db, alert_rules()["export-message-poisoned"]["query"])
    assert [r["export_id"] for r in found if r["export_id"]] == [telemetry.exports["poisoned"]]


def as_of(rows, moment):
    """The tables as they were at `moment`."""
    return database({t: [r for r in found if r["timestamp"] <= moment] for t, found in rows.items()})


def test_the_ml_alert_fires_after_three_unanswered_ticks_and_resolves_after(rows, db):
    query = alert_rules()["ml-service-unreachable"]["query"]
    ticks = [
        (r["timestamp"], json.loads(r["customDimensions"]))
        for r in rows["traces"]
        if json.loads(r["customDimensions"]).get("event") == "poll_tick"
    ]
    down = [at for at, d in ticks if int(d["ml_polled"]) > 0 and d["ml_unavailable"] == d["ml_polled"]]
    assert len(down) >= 3, "the scenario must have three unanswered ticks in a row"
    assert run(as_of(rows, down[1]), query) == []  # two are not enough
    assert len(run(as_of(rows, down[2]), query)) == 1
    assert run(db, query) == []  # later ticks got answers: resolved


def test_the_5xx_alert_on_a_synthetic_requests_table(rows):
    """`requests` is written by the Functions host: not produced here. The rule's logic on a
    table of the documented shape."""
    query = alert_rules()["http-5xx-rate"]["query"]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def requests_with(ok, failed):
        made = [
            {
                "timestamp": now,
                "name": "get_export",
                "url": "https://app/api/exports/x",
                "resultCode": code,
                "duration": 5.0,
                "success": code == "200",
                "customDimensions": "{}",
                "operation_Id": "",
                "cloud_RoleName": "",
            }
            for code in ["200"] * ok + ["500"] * failed
        ]
        return database({**rows, "requests": made})

    assert run(database(rows), query) == []
    assert len(run(requests_with(ok=100, failed=5), query)) == 1  # 4.8%
    assert run(requests_with(ok=100, failed=4), query) == []  # fewer than 5
    assert run(requests_with(ok=400, failed=6), query) == []  # 1.5%
