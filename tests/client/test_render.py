"""The words sa-export prints, from the service's JSON (pure functions)."""

import pytest

from sa_export import render
from tests.client.fake_service import export_resource

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover


def test_a_summary_the_service_could_not_make_says_why():
    lines = render.summary_lines(
        {"available": False, "reason": "The detections file is larger than 2048 MB."}
    )
    assert lines == ["Results summary: not available (The detections file is larger than 2048 MB.)"]
    assert render.summary_lines(None) == []


def test_summary_keys_the_client_does_not_know_yet_are_shown_by_their_names():
    lines = render.summary_lines({"available": True, "images_sent": 3, "images_blurry": 1, "model": "md"})
    assert lines == ["Results (md):", "  images sent    3", "  images blurry  1"]


def test_null_fields_read_as_nothing_and_a_csv_reason_as_a_sentence():
    summary = {"available": True, "images_sent": 3, "failed_shards": None, "csv_reason": None, "model": "md"}
    assert render.summary_lines(summary) == ["Results (md):", "  images sent  3"]
    reason = "The results CSV is not available: the storage refused it."
    assert render.summary_lines({**summary, "csv_reason": reason}) == [
        "Results (md):",
        "  images sent  3",
        f"  {reason}",
    ]


def test_messages_from_elsewhere_stay_on_one_bounded_line():
    export = export_resource("running", ml_message="Check number 3\n" + "x" * 500)
    [first, *_] = render.describe_export(export)
    assert "\n" not in first and first.endswith("…") and len(first) < 250


def test_the_listing_in_words():
    completed = export_resource("completed")
    running = export_resource("running")
    listing = {
        "subject_sets": [
            {
                "id": "5678",
                "display_name": "Camera A",
                "subjects_count": 25,
                "latest_export": running,
                "latest_completed_export": completed,
            },
            {
                "id": "5679",
                "display_name": "Empty",
                "subjects_count": 0,
                "latest_export": None,
                "latest_completed_export": None,
            },
        ]
    }
    assert render.describe_listing(listing) == [
        "Subject set 5678: Camera A (25 subjects)",
        f"  latest export {running['id']}: at the ML service, running (2026-11-22T13:01:00Z)",
        f"  latest completed: {completed['subject_assistant_url']}",
        "Subject set 5679: Empty (0 subjects)",
        "  no export yet",
    ]
    assert render.describe_listing({"subject_sets": []}) == ["This project has no subject sets."]


def test_the_follow_command_can_be_pasted_into_a_shell():
    assert render.follow_command("1234-5678-abc", None) == "sa-export status 1234-5678-abc --wait"
    assert (
        render.follow_command("1234-5678-abc", "https://host/a b")
        == "sa-export status 1234-5678-abc --wait --url 'https://host/a b'"
    )
