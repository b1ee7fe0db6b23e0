"""The page's pure modules (status.js: words, links and questions for every state; summary.js:
the results summary, from the contract's keys or the first release's; rerun.js: re-runs in
words and the earlier results a card keeps; download.js: when the CSV link must be renewed),
run in the browser as the page runs them, on made-up exports the backend cannot easily produce.
No stack: the browser is served page/static/ from disk under a made-up origin."""

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
    """A page with status.js, summary.js, rerun.js and download.js imported as window.status_,
    window.summary_, window.rerun_ and window.download_."""
    context = browser.new_context(locale="en-US", timezone_id="UTC")  # the dates the tests read
    context.route(f"{ORIGIN}/**", serve_static)
    page = context.new_page()
    page.goto(f"{ORIGIN}/")
    page.evaluate(
        "async () => { window.status_ = await import('/static/status.js');"
        " window.summary_ = await import('/static/summary.js');"
        " window.rerun_ = await import('/static/rerun.js');"
        " window.download_ = await import('/static/download.js'); }"
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


def groups(result) -> dict:
    return {g["title"]: [(i["label"], i["value"]) for i in g["items"]] for g in result["groups"]}


def test_the_summary_reads_the_contracts_keys(modules):
    result = summarize(modules, CONTRACT_SUMMARY)
    assert groups(result) == {
        "Images": [
            ("Sent", "49"),
            ("Scored", "45"),
            ("Likely empty", "21"),
            ("Failed", "2"),
            ("Missing", "2"),
        ],
        "Subjects": [
            ("Sent", "25"),
            ("All images likely empty", "3"),
            ("With failed or missing images", "2"),
        ],
    }
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
    assert groups(result) == {
        "Images": [
            ("Sent", "49"),
            ("Scored", "45"),  # returned minus failed
            ("Likely empty", "17"),
            ("Failed", "2"),
            ("Missing", "2"),
        ],
        "Subjects": [("Sent", "25")],  # from the manifest
    }
    # max_detection_conf < 0.2 is "more than 80% likely to be empty"; not the default filter.
    assert (
        result["likelyEmpty"]
        == "“Likely empty” means more than 80% likely to be empty, in the Subject Assistant's terms."
    )
    assert "1 part of this job failed." in " ".join(result["help"])


def test_an_unavailable_summary_says_why(modules):
    result = summarize(modules, {"available": False, "reason": "the results link is not allowed"})
    assert result == {"unavailable": "Results summary unavailable: the results link is not allowed"}


# -- images without a result, and re-runs ----------------------------------------------------------
def completed_export(summary, **changes):
    return export("completed", "completed", results_summary=summary, **changes)


def warnings(page, summary, **changes):
    result = call(page, "summary_", "summarize", completed_export(summary, **changes))
    return [(w["lead"], w["text"]) for w in result["warnings"]]


def test_failed_and_missing_images_are_warned_about_in_the_subject_assistants_terms(modules):
    csv_url = "https://account.blob.core.windows.net/c/x-results.csv?sp=r"
    assert warnings(modules, CONTRACT_SUMMARY, rerun_images=4, results_csv_url=csv_url) == [
        (
            "2 images failed.",
            "The Subject Assistant shows a failed image as 100% likely to be empty, so its filter "
            "selects it with the empty ones. Do not retire or move a subject because of them.",
        ),
        ("2 images are missing from the results.", "The Subject Assistant does not show them at all."),
        (
            "",
            "“Re-run 4 images” sends only these images to the ML service again, as a new task. "
            "The results CSV shows which subjects they belong to.",
        ),
    ]
    one_failed = {**CONTRACT_SUMMARY, "images_failed": 1, "images_missing": 0}
    assert warnings(modules, one_failed, rerun_images=1) == [
        (
            "1 image failed.",
            "The Subject Assistant shows a failed image as 100% likely to be empty, so its filter "
            "selects it with the empty ones. Do not retire or move a subject because of it.",
        ),
        ("", "“Re-run 1 image” sends only that image to the ML service again, as a new task."),
    ]
    # Nothing to re-run offered when the service gives no count (or nothing can be re-run).
    assert [lead for lead, _ in warnings(modules, CONTRACT_SUMMARY, rerun_images=None)] == [
        "2 images failed.",
        "2 images are missing from the results.",
    ]
    every_image_scored = {**CONTRACT_SUMMARY, "images_failed": 0, "images_missing": 0, "failures": {}}
    assert warnings(modules, every_image_scored, rerun_images=0) == []


def test_an_earlier_export_with_failed_images_keeps_its_warning(modules):
    note = call(modules, "summary_", "failedImagesNote", completed_export(CONTRACT_SUMMARY))
    assert note == (
        "There the Subject Assistant shows its 2 failed images as 100% likely to be empty: "
        "do not retire or move a subject because of them."
    )
    one = completed_export({**CONTRACT_SUMMARY, "images_failed": 1})
    assert call(modules, "summary_", "failedImagesNote", one).startswith(
        "There the Subject Assistant shows its failed image as"
    )
    missing_only = completed_export({**CONTRACT_SUMMARY, "images_failed": 0})
    assert call(modules, "summary_", "failedImagesNote", missing_only) is None  # not shown there at all


PARENT = export(
    "completed",
    "completed",
    id="p",
    rerun_images=4,
    updated_at="2026-11-30T09:00:00Z",
    results_summary=CONTRACT_SUMMARY,
)
CHILD = export("completed", "completed", id="c1", rerun_of="p", rerun_images=1, ml_task_id="t2")
GRANDCHILD = export("running", "running", id="c2", rerun_of="c1", rerun_images=None, ml_task_id="t3")
PLAIN_FAILED = export("failed", "failed", id="x", error={"code": "ml_failed", "message": "out of GPUs"})


def test_rerun_offers_the_last_completed_exports_failed_and_missing_images(modules):
    def target(latest, completed):
        found = call(
            modules,
            "rerun_",
            "rerunTarget",
            {**SET, "latest_export": latest, "latest_completed_export": completed},
        )
        return found and found["id"]

    assert target(PARENT, PARENT) == "p"
    assert target(GRANDCHILD, CHILD) is None  # an export is active
    assert target(PLAIN_FAILED, CHILD) == "c1"  # the newest export failed: its predecessor's remain
    assert target(export("completed", "completed", rerun_images=0), None) is None
    assert target(None, None) is None


def test_the_rerun_question_and_note_name_what_is_sent_again(modules):
    question = call(modules, "rerun_", "rerunQuestion", SET, PARENT)
    assert question == {
        "title": "Re-run 4 images of “Camera A - March”?",
        "text": "The 4 images that failed or went missing in the export completed on Nov 30, 2026, 9:00 AM go to "
        "the ML service again, as a new task that may take an hour or more. The results of that export stay in "
        "the Subject Assistant; the re-run's results open in a task of their own.",
        "keep": "No, don't re-run",
        "confirm": "Yes, re-run 4 images",
    }
    one = call(modules, "rerun_", "rerunQuestion", SET, CHILD)
    assert one["title"] == "Re-run 1 image of “Camera A - March”?" and one["confirm"] == "Yes, re-run 1 image"
    assert one["text"].startswith("The image that failed or went missing in the re-run completed on ")
    shown = call(modules, "rerun_", "rerunNote", {**SET, "latest_export": PARENT}, PARENT)
    assert shown == "Sends only the failed and missing images again, as a new task."
    older = call(modules, "rerun_", "rerunNote", {**SET, "latest_export": PLAIN_FAILED}, PARENT)
    assert (
        older
        == "Sends the failed and missing images of the export completed on Nov 30, 2026, 9:00 AM again, as a new task."
    )


def test_a_rerun_says_what_it_reran(modules):
    assert call(modules, "rerun_", "rerunOfWords", CHILD, PARENT) == (
        "Re-run of the failed and missing images of the export completed on Nov 30, 2026, 9:00 AM."
    )
    assert call(modules, "rerun_", "rerunOfWords", GRANDCHILD, CHILD).startswith(
        "Re-run of the failed and missing images of the re-run completed on "
    )
    assert call(modules, "rerun_", "rerunOfWords", CHILD, None) == (
        "Re-run of the failed and missing images of an earlier export."
    )
    assert call(modules, "rerun_", "rerunOfWords", PARENT, None) is None
    # Its states in its own words: a re-run reads nothing from Zooniverse.
    building = export("building", None, rerun_of="p")
    assert call(modules, "status_", "statusLabel", building) == "Preparing the images to send again"
    assert "Zooniverse" not in call(modules, "status_", "statusDetail", export("queued", None, rerun_of="p"))
    assert call(modules, "status_", "cancelQuestion", SET, building) == (
        "The re-run of “Camera A - March” stops now. None of its images have gone to the ML service yet."
    )
    assert call(modules, "status_", "assistantLink", CHILD)["text"].startswith(
        "Results of the re-run completed on "
    )
    # Exporting again after a re-run sends the whole set, not the re-run's few images.
    question = call(modules, "status_", "exportAgainQuestion", {**SET, "latest_export": CHILD})
    assert question["text"].startswith("The results of the re-run completed on ")
    assert "sends all of the set's images" in question["text"]


EARLIER = (
    """([set, known]) => window.rerun_.earlierExports(set, (id) => (id in known ? known[id] : undefined))"""
)


def earlier(page, latest, completed, known):
    found = page.evaluate(
        EARLIER, [{**SET, "latest_export": latest, "latest_completed_export": completed}, known]
    )
    return [e["id"] for e in found["exports"]], found["wanted"]


def test_the_card_keeps_every_result_a_rerun_did_not_replace(modules):
    # A re-run of a re-run runs: its parent (the last completed export), then the first export.
    assert earlier(modules, GRANDCHILD, CHILD, {"p": PARENT}) == (["c1", "p"], None)
    assert earlier(modules, GRANDCHILD, CHILD, {}) == (["c1"], "p")  # read p next
    assert earlier(modules, GRANDCHILD, CHILD, {"p": None}) == (["c1"], None)  # p cannot be read
    # The re-run completed: the export it re-ran, read on its own.
    assert earlier(modules, CHILD, CHILD, {}) == ([], "p")
    assert earlier(modules, CHILD, CHILD, {"p": PARENT}) == (["p"], None)
    # A newer plain export failed: the last completed export and what it re-ran.
    assert earlier(modules, PLAIN_FAILED, CHILD, {"p": PARENT}) == (["c1", "p"], None)
    # A plain completed export has nothing earlier that still matters.
    assert earlier(modules, PARENT, PARENT, {}) == ([], None)
    # A chain that loops (never written by the service) ends, and a long chain is cut short.
    looped = {**PARENT, "rerun_of": "c1"}
    assert earlier(modules, GRANDCHILD, CHILD, {"p": looped}) == (["c1", "p"], None)
    chain = {f"e{i}": export("completed", "completed", id=f"e{i}", rerun_of=f"e{i + 1}") for i in range(30)}
    ids, wanted = earlier(modules, export("running", "running", id="now", rerun_of="e0"), None, chain)
    assert len(ids) == 10 and wanted is None


def test_a_csv_link_is_renewed_before_it_can_have_expired(modules):
    def usable(url, read_at):
        return call(modules, "download_", "usableFor", url, read_at)

    def at(iso):
        return modules.evaluate("(iso) => Date.parse(iso)", iso)

    base = "https://account.blob.core.windows.net/c/x.csv?sp=r&sr=b"
    link = f"{base}&st=2026-12-02T09:55:00Z&se=2026-12-02T11:00:00Z"
    minute = 60_000
    assert usable(link, at("2026-12-02T10:00:00Z")) == 30 * minute  # half of the hour it has left
    # A clock an hour behind: judged by the link's own start, at most half of its 65 minutes.
    assert usable(link, at("2026-12-02T09:00:00Z")) == 32.5 * minute
    assert usable(link, at("2026-12-02T11:30:00Z")) == 0  # expired
    assert usable(f"{base}&se=2026-12-02T11:00:00Z", at("2026-12-02T10:00:00Z")) == 30 * minute
    assert usable(base, at("2026-12-02T10:00:00Z")) == 0  # says nothing: renewed first
    assert usable("not a url", at("2026-12-02T10:00:00Z")) == 0


CSV_LINK = """(exp) => {
    const link = new window.download_.CsvLink("Download results (CSV)", "name", async () => exp);
    link.show(exp);
    return {shown: !link.el.hidden, linkShown: !link.link.hidden, href: link.link.getAttribute("href"),
            reason: link.reason.textContent};
}"""


def test_the_csv_link_or_why_there_is_none(modules):
    url = "https://account.blob.core.windows.net/c/x-results.csv?sp=r&se=2026-12-02T11:00:00Z"
    shown = modules.evaluate(CSV_LINK, completed_export(CONTRACT_SUMMARY, results_csv_url=url))
    assert shown == {"shown": True, "linkShown": True, "href": url, "reason": ""}
    reason = "The results CSV is not available: the storage account refused the write."
    summary = {**CONTRACT_SUMMARY, "csv_reason": reason}
    assert modules.evaluate(CSV_LINK, completed_export(summary, results_csv_url=None)) == {
        "shown": True,
        "linkShown": False,
        "href": None,
        "reason": reason,
    }
    for hidden in (
        completed_export(CONTRACT_SUMMARY, results_csv_url=None),  # no CSV and no reason: nothing to say
        completed_export(CONTRACT_SUMMARY, results_csv_url="javascript:alert(1)"),
        export("running", "running", results_csv_url=url),
    ):
        assert modules.evaluate(CSV_LINK, hidden)["shown"] is False
