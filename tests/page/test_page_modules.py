"""The page's pure modules (status.js: words, links and questions for every state; summary.js:
the results summary, from the contract's keys or the first release's), run in the browser as
the page runs them, on made-up exports the backend cannot easily produce. No stack: the
browser is served page/static/ from disk under a made-up origin."""

from __future__ import annotations

import pytest

from page.blueprint import STATIC

ORIGIN = "https://page.test"

URL = "https://subject-assistant.zooniverse.org/#/tasks/t1"
BASE = {
    "id": "e1",
    "project_id": "1234",
    "subject_set_id": "5678",
    "created_at": "2026-12-02T10:00:00Z",
    "updated_at": "2026-12-02T11:30:00Z",
    "requested_by": "42",
    "progress": {"subjects_done": 25, "subjects_total": 25},
    "manifest": {"subjects": 25, "images": 49, "skipped_frames": 1, "blob": "b"},
    "ml_task_id": "t1",
    "ml_message": None,
    "results_url": None,
    "subject_assistant_url": URL,
    "error": None,
    "results_summary": None,
}
SET = {
    "id": "5678",
    "display_name": "Camera A - March",
    "subjects_count": 25,
    "latest_completed_export": None,
}


def export(status, ml_status, **changes):
    return {**BASE, "status": status, "ml_status": ml_status, **changes}


def serve_static(route):
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>modules</title>")
    elif path.startswith("/static/") and (STATIC / path.removeprefix("/static/")).is_file():
        route.fulfill(status=200, content_type="text/javascript", path=STATIC / path.removeprefix("/static/"))
    else:
        route.fulfill(status=404, body="")


@pytest.fixture(scope="module")
def modules(browser):
    """A page with status.js and summary.js imported as window.status_ / window.summary_."""
    context = browser.new_context(locale="en-US", timezone_id="UTC")  # the dates the tests read
    context.route(f"{ORIGIN}/**", serve_static)
    page = context.new_page()
    page.goto(f"{ORIGIN}/")
    page.evaluate(
        "async () => { window.status_ = await import('/static/status.js');"
        " window.summary_ = await import('/static/summary.js'); }"
    )
    yield page
    context.close()


def call(page, module, function, *args):
    return page.evaluate(f"(args) => window.{module}.{function}(...args)", list(args))


@pytest.mark.parametrize(
    "status, ml_status, kind",
    [
        ("queued", None, None),
        ("building", None, None),
        ("submitted", "created", None),  # the Subject Assistant: "ML Task encountered an unknown error"
        ("running", "running", "running"),
        ("running", "problem", None),  # the same unknown error while the service reports a problem
        ("completed", "completed", "completed"),
        ("failed", "failed", "failed"),  # the Subject Assistant shows the ML service's message
        ("failed", "created", None),  # it never ran (a failed Batch submission)
        ("cancelled", "canceled", "partial"),  # the service completes it with the part it had done
        ("cancelled", None, None),  # cancelled before the ML service started on it
    ],
)
def test_the_subject_assistant_link_only_from_ml_running_on(modules, status, ml_status, kind):
    exp = export(status, ml_status, ml_task_id=None if status in ("queued", "building") else "t1")
    link = call(modules, "status_", "assistantLink", exp)
    assert (link and link["kind"]) == kind
    if link:
        assert link["url"] == URL
    note = call(modules, "status_", "linkNote", exp)
    if status in ("queued", "building", "submitted"):
        assert (
            note == "The Subject Assistant link appears here once the ML service starts working on the task."
        )
    elif (status, ml_status) == ("running", "running"):
        assert note == "Until the results are ready, the Subject Assistant says the task is still running."
    elif status == "running":
        assert "cannot open the task while the ML service reports a problem" in note


def test_a_task_the_ml_service_lost_gets_no_link(modules):
    lost = export("failed", "running", error={"code": "ml_task_not_found", "message": "gone"})
    assert call(modules, "status_", "assistantLink", lost) is None


def test_a_link_that_is_not_http_is_never_shown(modules):
    exp = export("completed", "completed", subject_assistant_url="javascript:alert(1)")
    assert call(modules, "status_", "assistantLink", exp) is None


def test_the_links_are_named_by_what_they_show(modules):
    running = call(modules, "status_", "assistantLink", export("running", "running"))
    completed = call(modules, "status_", "assistantLink", export("completed", "completed"))
    partial = call(modules, "status_", "assistantLink", export("cancelled", "canceled"))
    failed = call(modules, "status_", "assistantLink", export("failed", "failed"))
    assert failed["text"] == "The failed export's task in the Subject Assistant"
    assert running["text"] == "Open the running task in the Subject Assistant"
    assert completed["text"].startswith("Results of the export completed on ")
    assert any(c.isdigit() for c in completed["text"])  # the date
    assert partial["text"] == "Partial results of the cancelled export"


@pytest.mark.parametrize(
    "status, ml_status, words",
    [
        ("queued", None, "none of its images have gone to the ML service"),
        ("building", None, "none of its images have gone to the ML service"),
        ("submitted", "created", "It cancels a task only once it is running, so it may refuse now"),
        (
            "running",
            "running",
            "It may still finish the part it had done, and the Subject Assistant link stays",
        ),
        (
            "running",
            "problem",
            "It may still finish the part it had done, and the Subject Assistant link stays",
        ),
    ],
)
def test_the_cancel_question_for_each_active_state(modules, status, ml_status, words):
    text = call(modules, "status_", "cancelQuestion", SET, export(status, ml_status))
    assert words in text
    assert "“Camera A - March”" in text


@pytest.mark.parametrize(
    "status, ml_status, asks",
    [
        ("completed", "completed", "The results of the export completed on"),
        ("cancelled", "canceled", "The partial results of the export cancelled on"),
        ("cancelled", None, None),  # nothing reached the ML service: nothing to lose
        ("failed", "failed", None),
    ],
)
def test_export_again_asks_only_when_results_exist(modules, status, ml_status, asks):
    question = call(
        modules, "status_", "exportAgainQuestion", {**SET, "latest_export": export(status, ml_status)}
    )
    if asks is None:
        assert question is None
    else:
        assert question["title"] == "Export “Camera A - March” again?"
        assert question["text"].startswith(asks)
        assert "sends all 49 images to the ML service once more" in question["text"]


def test_export_again_names_every_result_that_exists(modules):
    completed = export("completed", "completed", id="e0", updated_at="2026-11-30T09:00:00Z")
    cancelled = export("cancelled", "canceled")
    question = call(
        modules,
        "status_",
        "exportAgainQuestion",
        {**SET, "latest_export": cancelled, "latest_completed_export": completed},
    )
    assert question["text"].startswith("The partial results of the export cancelled on ")
    assert ", and the results of the export completed on " in question["text"]
    assert "Nov 30, 2026" in question["text"] and "Dec 2, 2026" in question["text"]


def test_the_failed_empty_set_says_what_to_do_instead_of_export_again(modules):
    message = (
        "Subject set 5679 has no images to send. Add images to the set in the Zooniverse Project Builder."
    )
    empty = export("failed", None, error={"code": "subject_set_empty", "message": message})
    other = export("failed", "failed", error={"code": "ml_failed", "message": "out of GPUs"})
    assert call(modules, "status_", "statusDetail", empty) == message
    assert call(modules, "status_", "statusDetail", other) == "out of GPUs. To try again, press Export."
    queued = call(modules, "status_", "statusDetail", export("queued", None))
    assert "export worker" not in queued and "read this set from Zooniverse" in queued


CONTRACT_SUMMARY = {
    "available": True,
    "reason": None,
    "model": "megadetector_v5a",
    "images_sent": 49,
    "images_scored": 45,
    "images_failed": 2,
    "images_missing": 2,
    "failures": {"Failure inference": 2},
    "likely_empty_threshold": 0.5,
    "images_likely_empty": 21,
    "subjects_sent": 25,
    "subjects_all_likely_empty": 3,
    "subjects_incomplete": 2,
}
FIRST_RELEASE_SUMMARY = {
    "available": True,
    "images_submitted": 49,
    "images_returned": 47,
    "images_failed": 2,
    "images_missing": 2,
    "images_likely_empty": 17,
    "likely_empty_threshold": 0.2,
    "failed_shards": 1,
}


def summarize(page, summary):
    return call(page, "summary_", "summarize", export("completed", "completed", results_summary=summary))


def test_the_summary_reads_the_contracts_keys(modules):
    result = summarize(modules, CONTRACT_SUMMARY)
    assert [(i["label"], i["value"]) for i in result["items"]] == [
        ("Subjects", "25"),
        ("Images sent", "49"),
        ("Scored", "45"),
        ("Likely empty", "21"),
        ("Failed", "2"),
        ("Missing", "2"),
    ]
    # The Subject Assistant's default filter: "with at least one image that is >= 50 % likely to
    # be empty", i.e. max_detection_conf <= 0.5.
    assert result["likelyEmpty"] == (
        "“Likely empty” means 50% or more likely to be empty, in the Subject Assistant's terms, "
        "what its default filter selects."
    )
    help_text = " ".join(result["help"])
    assert "The ML service said: “Failure inference” (2 images)." in help_text
    assert "1 frame that is not an image (such as a video) was left out" in help_text
    assert "confidence" not in help_text + result["likelyEmpty"]


def test_the_summary_falls_back_to_the_first_releases_keys(modules):
    result = summarize(modules, FIRST_RELEASE_SUMMARY)
    assert [(i["label"], i["value"]) for i in result["items"]] == [
        ("Subjects", "25"),  # from the manifest
        ("Images sent", "49"),
        ("Scored", "45"),  # returned minus failed
        ("Likely empty", "17"),
        ("Failed", "2"),
        ("Missing", "2"),
    ]
    # max_detection_conf < 0.2 is "more than 80% likely to be empty"; not the default filter.
    assert (
        result["likelyEmpty"]
        == "“Likely empty” means more than 80% likely to be empty, in the Subject Assistant's terms."
    )
    assert "1 part of this job failed." in " ".join(result["help"])


def test_an_unavailable_summary_says_why(modules):
    result = summarize(modules, {"available": False, "reason": "the results link is not allowed"})
    assert result == {"unavailable": "Results summary unavailable: the results link is not allowed"}
