"""Every ML status answer maps to the contract's Export transition (table-driven)."""

import dataclasses
import datetime as dt

import pytest

from exports import model
from exports.contract import Status
from exports.ml_service import TaskStatus
from exports.ml_status import NOT_FOUND, PollRules, next_state
from exports.results import ResultsPolicy

T0 = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)
POLICY = ResultsPolicy(("*.blob.core.windows.net",), ("https", "ml.example.org", 443))
RULES = PollRules(deadline=dt.timedelta(days=3), not_found_ticks=3, problem_ticks=4, results=POLICY)
RESULTS = "https://acct.blob.core.windows.net/batch-api/detections.json?sv=1&sig=SECRET"
DONE = {"num_failed_shards": 0, "output_file_urls": {"detections": RESULTS}}


def submitted(**changes):
    export = model.new_export("1-2-0000000000000abcdef01", "1", "2", "9", T0, dt.timedelta(hours=1))
    return dataclasses.replace(
        export,
        status=Status.SUBMITTED,
        ml_task_id="f" * 32,
        ml_status="created",
        submitted_at=T0,
        ml_changed_at=T0,
        manifest_blob="b",
        manifest_images=4,
        **changes,
    )


NOW = T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    "answer,status,ml_status,error_code,results_url",
    [
        (TaskStatus("created", None), "submitted", "created", None, None),
        (TaskStatus("running", "Submitted 2 batches."), "running", "running", None, None),
        (TaskStatus("problem", "please contact us"), "running", "problem", None, None),
        (
            TaskStatus("completed", DONE),
            "completed",
            "completed",
            None,
            DONE["output_file_urls"]["detections"],
        ),
        (
            TaskStatus("completed", "Zero images found in container or in provided list."),
            "failed",
            "completed",
            "ml_no_results",
            None,
        ),
        (TaskStatus("completed", {"num_failed_shards": 1}), "failed", "completed", "ml_no_results", None),
        (
            TaskStatus("failed", "images_requested_json_sas could not be read"),
            "failed",
            "failed",
            "ml_failed",
            None,
        ),
        (TaskStatus("canceled", "canceled"), "cancelled", "canceled", None, None),
    ],
)
def test_status_mapping(answer, status, ml_status, error_code, results_url):
    result = next_state(submitted(), answer, NOW, RULES)
    assert result.status == status
    assert result.ml_status == ml_status
    assert result.error_code == error_code
    assert result.results_url == results_url
    if isinstance(answer.message, str):
        assert result.ml_message == answer.message
    if status == "failed" and isinstance(answer.message, str):
        assert answer.message in result.error_message


def test_problem_keeps_polling_and_can_still_complete():
    export = next_state(submitted(), TaskStatus("problem", "stale"), NOW, RULES)
    assert export.status == "running" and not export.is_final
    export = next_state(export, TaskStatus("completed", DONE), NOW, RULES)
    assert export.status == "completed"


def test_not_found_fails_only_after_several_ticks_in_a_row():
    export = submitted()
    export = next_state(export, NOT_FOUND, NOW, RULES)
    export = next_state(export, NOT_FOUND, NOW, RULES)
    assert export.status == "submitted" and export.ml_not_found == 2
    export = next_state(export, TaskStatus("running", None), NOW, RULES)
    assert export.ml_not_found == 0
    for _ in range(3):
        export = next_state(export, NOT_FOUND, NOW, RULES)
    assert export.status == "failed" and export.error_code == "ml_task_not_found"


def test_deadline_runs_from_the_last_change_of_the_ml_status_or_message():
    export = submitted()
    for day in range(1, 40):  # the service rewrites a working job's message: never a deadline
        now = T0 + dt.timedelta(days=day)
        export = next_state(export, TaskStatus("running", f"Check number {day * 144}, ..."), now, RULES)
        assert export.status == "running", day
    quiet = export.ml_changed_at + dt.timedelta(days=3, minutes=1)
    failed = next_state(export, TaskStatus("running", export.ml_message), quiet, RULES)
    assert (failed.status, failed.error_code) == ("failed", "deadline_exceeded")
    assert "3 days" in failed.error_message


def test_a_problem_without_num_images_fails_after_the_set_number_of_polls():
    """No num_images: the Batch job was never submitted, and the service never restarts it."""
    message = "Please contact us. Error occurred while submitting the Batch job: boom"
    export = next_state(submitted(), TaskStatus("problem", message), NOW, RULES)
    for tick in range(RULES.problem_ticks):
        assert (export.status, export.ml_status) == ("running", "problem"), tick
        export = next_state(export, TaskStatus("problem", message), NOW + dt.timedelta(minutes=tick), RULES)
    assert (export.status, export.error_code) == ("failed", "ml_failed")
    assert message in export.error_message


def test_a_problem_with_num_images_keeps_polling_until_the_deadline_however_long_it_stays():
    """With num_images the job was submitted: the service restarts its monitoring, so the same
    message for many polls is no reason to give up before the deadline (from the last change)."""
    message = "Job unfinished after 4033 x 10 minutes, please contact us. Number of succeeded shards: 1"
    export = next_state(submitted(), TaskStatus("running", "Submitted 9 images", num_images=9), NOW, RULES)
    changed = NOW + dt.timedelta(minutes=10)
    export = next_state(export, TaskStatus("problem", message, num_images=9), changed, RULES)
    for tick in range(1, 400):  # 400 ten-minute polls: 2.8 days, within the 3-day deadline
        when = changed + dt.timedelta(minutes=10 * tick)
        export = next_state(export, TaskStatus("problem", message, num_images=9), when, RULES)
        assert (export.status, export.ml_status) == ("running", "problem"), tick
    late = changed + dt.timedelta(days=3, minutes=1)
    failed = next_state(export, TaskStatus("problem", message, num_images=9), late, RULES)
    assert (failed.status, failed.error_code) == ("failed", "deadline_exceeded")


def test_a_problem_after_num_images_was_seen_is_not_taken_for_a_failed_submission():
    export = next_state(submitted(), TaskStatus("running", "Submitted 9 images", num_images=9), NOW, RULES)
    for tick in range(3 * RULES.problem_ticks):  # an answer that drops num_images: still submitted
        export = next_state(export, TaskStatus("problem", "stale"), NOW + dt.timedelta(minutes=tick), RULES)
    assert export.status == "running"


def test_a_changing_problem_keeps_polling():
    export = submitted()
    for tick in range(3 * RULES.problem_ticks):
        export = next_state(
            export, TaskStatus("problem", f"Job unfinished after {tick} x 10 minutes"), NOW, RULES
        )
    assert export.status == "running" and export.ml_same_ticks == 0


def test_num_images_from_the_service_is_kept():
    export = next_state(submitted(), TaskStatus("running", "Submitted", num_images=3), NOW, RULES)
    export = next_state(export, TaskStatus("completed", DONE), NOW, RULES)
    assert export.ml_num_images == 3


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://acct.blob.core.windows.net/x.json?sig=S",
        "https://evil.example/x.json",
        "https://acct.blob.core.windows.net.evil.example/x.json",
        "https://blob.core.windows.net/x.json",
        "https://user:pw@acct.blob.core.windows.net/x.json",
        "https://acct.blob.core.windows.net:8443/x.json",
        "http://ml.example.org/results.json",
    ],
)
def test_a_results_link_off_the_allowlist_is_neither_kept_nor_shown(url):
    answer = TaskStatus("completed", {"num_failed_shards": 0, "output_file_urls": {"detections": url}})
    export = next_state(submitted(), answer, NOW, RULES)
    resource = model.to_resource(export, "https://sa/#/tasks/")
    assert export.status == "completed" and export.results_url is None
    assert export.summary["available"] is False and export.summary["reason"]
    assert url not in str(resource) and "sig=" not in str(resource)


def test_results_on_allowed_hosts_and_the_ml_origin_are_kept():
    for url in (RESULTS, "https://ml.example.org/results/x.json?sig=1"):
        answer = TaskStatus("completed", {"num_failed_shards": 0, "output_file_urls": {"detections": url}})
        export = next_state(submitted(), answer, NOW, RULES)
        assert export.results_url == url and export.summary is None  # the poller adds the summary
        assert "sig=" not in export.ml_message  # the message never repeats the link


def test_same_answer_twice_changes_nothing():
    export = next_state(submitted(), TaskStatus("running", "x"), NOW, RULES)
    assert next_state(export, TaskStatus("running", "x"), NOW + dt.timedelta(minutes=5), RULES) == export


def test_final_exports_are_left_alone():
    export = model.cancel(submitted(), NOW)
    assert next_state(export, TaskStatus("completed", DONE), NOW, RULES) is export
