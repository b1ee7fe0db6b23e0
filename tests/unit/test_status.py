"""Every ML status answer maps to the contract's Export transition (table-driven)."""
import dataclasses
import datetime as dt

import pytest

from exports import model
from exports.ml_service import TaskStatus
from exports.status import NOT_FOUND, PollRules, next_state, summarize_detections

T0 = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.timezone.utc)
RULES = PollRules(deadline=dt.timedelta(days=28), not_found_ticks=3)
DONE = {"num_failed_shards": 0, "output_file_urls": {"detections": "https://ml/detections.json?sig=x"}}


def submitted(**changes):
    export = model.new_export("1-2-0000000000000abcdef01", "1", "2", "9", T0, dt.timedelta(hours=1))
    return dataclasses.replace(export, status=model.SUBMITTED, ml_task_id="f" * 32, ml_status="created",
                               submitted_at=T0, manifest_blob="b", manifest_images=4, **changes)


NOW = T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize("answer,status,ml_status,error_code,results_url", [
    (TaskStatus("created", None), "submitted", "created", None, None),
    (TaskStatus("running", "Submitted 2 batches."), "running", "running", None, None),
    (TaskStatus("problem", "please contact us"), "running", "problem", None, None),
    (TaskStatus("completed", DONE), "completed", "completed", None, DONE["output_file_urls"]["detections"]),
    (TaskStatus("completed", "Zero images found in container or in provided list."), "failed", "completed",
     "ml_no_results", None),
    (TaskStatus("completed", {"num_failed_shards": 1}), "failed", "completed", "ml_no_results", None),
    (TaskStatus("failed", "images_requested_json_sas could not be read"), "failed", "failed", "ml_failed", None),
    (TaskStatus("canceled", "canceled"), "cancelled", "canceled", None, None),
])
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


def test_deadline_exceeded():
    late = T0 + dt.timedelta(days=28, minutes=1)
    export = next_state(submitted(), TaskStatus("running", "still going"), late, RULES)
    assert (export.status, export.error_code) == ("failed", "deadline_exceeded")
    assert export.ml_message == "still going"


def test_same_answer_twice_changes_nothing():
    export = next_state(submitted(), TaskStatus("running", "x"), NOW, RULES)
    assert next_state(export, TaskStatus("running", "x"), NOW + dt.timedelta(minutes=5), RULES) == export


def test_final_exports_are_left_alone():
    export = model.cancel(submitted(), NOW)
    assert next_state(export, TaskStatus("completed", DONE), NOW, RULES) is export


def test_summary_counts():
    detections = {"images": [
        {"file": "a", "max_detection_conf": 0.9, "detections": [{"category": "1", "conf": 0.9}]},
        {"file": "b", "max_detection_conf": 0.05, "detections": []},
        {"file": "c", "failure": "Failed to load image"},
    ]}
    summary = summarize_detections(detections, 5, 0.2, 1)
    assert summary == {"available": True, "images_submitted": 5, "images_returned": 3, "images_failed": 1,
                       "images_missing": 2, "images_likely_empty": 1, "likely_empty_threshold": 0.2,
                       "failed_shards": 1}
    with pytest.raises(ValueError):
        summarize_detections({"nope": 1}, 5, 0.2)
