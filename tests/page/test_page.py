"""The page for people, in a real browser (Debian's Chromium through Playwright), against the
whole local stack: the Functions host serving the page and the API, Azurite, the Panoptes
stand-in (with its OAuth sign-in form) and the ML emulator. The backend is driven with
stack.settle() / stack.tick() while the page polls by itself; nothing reloads the page."""

from __future__ import annotations

import json
import os
import pathlib
import re

import pytest

from tests.page.conftest import (
    AXE,
    CHROMIUM,
    MISSING_CHROMIUM,
    REFRESH_SECONDS,
    ROOT,
    chromium_problem,
    origin,
    tokens_in,
)
from tests.page.helpers import (
    BEFORE_RUNNING,
    COMPLETED_LINK,
    PARTIAL_LINK,
    PROJECT,
    RUNNING_LINK,
    SET_A,
    SET_B,
    api_export,
    badge,
    cancel_button,
    click_and_wait_for_start,
    complete_by_api,
    export_button,
    link,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture fails every test with the install instructions
    expect = None

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The README's picture of the page (a task with failed images, tests/page/test_results.py):
# retaken only when asked (`make docs`), so a test run leaves the tree as it was.
SCREENSHOT = ROOT / "docs" / "screenshot-project-page.png"
TAKE_SCREENSHOT = os.environ.get("PAGE_SCREENSHOT") == "1"


def focused(locator) -> bool:
    return locator.evaluate("el => el === document.activeElement")


def tab_to(page, locator, limit=30):
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(locator):
            return
    raise AssertionError(f"Tab never reached {locator}")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth "
        "&& document.body.scrollWidth <= window.innerWidth"
    )


def run_axe(page) -> list:
    """axe-core in the page (evaluated through the DevTools protocol, so the page's CSP still
    applies to everything else); returns its violations."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return result


def assert_axe_clean(page, where: str, report: dict):
    violations = run_axe(page)
    report[where] = violations
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], f"axe: serious/critical violations on the {where} screen: {json.dumps(bad, indent=1)}"


# -- set-up --------------------------------------------------------------------------------------
def test_chromium_and_axe_are_installed():
    """Fails (never skips) when the browser or axe-core is missing, saying how to install it."""
    assert chromium_problem() is None, chromium_problem()
    assert pathlib.Path(CHROMIUM).exists(), MISSING_CHROMIUM
    assert AXE.exists(), "axe-core is missing: run `npm ci` (it is in package.json's devDependencies)"


# -- signing in, projects, signing out ------------------------------------------------------------
def test_sign_in_see_projects_open_a_project_and_sign_out(ui, stack):
    ui.goto("/")
    expect(ui.page.get_by_role("heading", level=1)).to_have_text("Sign in")
    ui.sign_in("demo-owner", "/")
    page = ui.page
    expect(page.locator("#account")).to_contain_text("Signed in as demo-owner")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your projects")
    link = page.get_by_role("link", name="Snapshot Demo")
    expect(link).to_have_attribute("href", PROJECT)
    expect(page.locator(".projects li")).to_have_count(1)  # not the outsider's private project
    page.evaluate("window.__sameDocument = true")
    link.click()
    expect(page).to_have_url(ui.base + PROJECT)
    expect(page.get_by_role("heading", level=1)).to_have_text("Snapshot Demo")
    expect(page).to_have_title("Snapshot Demo · Subject Assistant export")
    for name, meta in ((SET_A, "Subject set 5678 · 25 subjects"), (SET_B, "Subject set 5679 · 0 subjects")):
        expect(ui.set_card(name).locator(".set-meta")).to_have_text(meta)
        expect(badge(ui, name)).to_have_text("Not exported yet")
    expect(export_button(ui, SET_A)).to_be_enabled()
    # A card is as tall as what it shows: no room is kept for results while there are none.
    for name in (SET_A, SET_B):
        assert ui.set_card(name).locator(".set-state").evaluate("el => getComputedStyle(el).minHeight") in (
            "0px",
            "auto",
        )
    # A set with no subjects cannot be exported: the button says why (and what to do instead).
    expect(export_button(ui, SET_B)).to_be_disabled()
    expect(export_button(ui, SET_B)).to_have_accessible_description(
        re.compile(r"has no subjects\. Add images to it in the Zooniverse Project Builder")
    )
    assert page.evaluate("window.__sameDocument") is True  # moved between screens without a reload
    page.go_back()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your projects")
    page.go_forward()
    expect(page.get_by_role("heading", level=1)).to_have_text("Snapshot Demo")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert tokens_in(json.dumps(ui.storage())) == set()
    page.reload()  # nothing kept: still signed out, no data
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    expect(page.locator("li.set")).to_have_count(0)
    ui.assert_no_console_errors()


def test_the_deep_link_works_after_signing_in(ui, stack):
    ui.goto(PROJECT)
    page = ui.page
    expect(page.get_by_text("After signing in you come back to project 1234.")).to_be_visible()
    ui.sign_in("demo-collaborator", PROJECT)
    expect(page).to_have_url(ui.base + PROJECT)
    expect(page.get_by_role("heading", level=1)).to_have_text("Snapshot Demo")
    expect(badge(ui, SET_A)).to_have_text("Not exported yet")
    expect(page.locator("#account")).to_contain_text("demo-collaborator")
    ui.assert_no_console_errors()


@pytest.mark.parametrize("login", ["demo-tester", "demo-nobody"])
def test_a_tester_or_a_nobody_sees_no_project_and_no_project_data(ui, stack, login):
    ui.sign_in(login, "/")
    page = ui.page
    expect(page.get_by_text("You are not an owner or collaborator of any project")).to_be_visible()
    expect(page.get_by_role("link", name="Snapshot Demo")).to_have_count(0)
    # No introduction to a screen that has nothing to offer.
    expect(page.locator("main .lede")).to_have_count(1)
    expect(page.locator("main .lede")).to_be_hidden()
    answer = stack.call("GET", "/api/projects/1234/exports", f"{login}-token")
    assert answer.status_code in (403, 404), answer.text
    ui.goto(PROJECT)  # typing the address does not help: the page shows the API's message
    expect(page.get_by_role("alert")).to_contain_text(answer.json()["error"]["message"])
    expect(page.locator("li.set")).to_have_count(0)
    expect(page.get_by_text(SET_A)).to_have_count(0)
    expect(page.locator("main .lede")).to_be_hidden()
    assert "{" not in page.get_by_role("alert").text_content()  # the message, never raw JSON
    ui.assert_no_console_errors(allow_http=(answer.status_code,))


def test_a_sign_in_answer_whose_state_does_not_match_is_refused(ui, stack):
    page = ui.page
    # A reply nobody asked for (no sign-in started in this tab).
    ui.goto("/#access_token=demo-owner-token&token_type=Bearer&expires_in=7200&state=forged")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    expect(page.get_by_role("alert")).to_contain_text("state did not match")
    assert page.url == ui.base + "/"
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert tokens_in(json.dumps(ui.storage())) == set()
    # A sign-in was started, but the reply carries another state.
    ui.goto(PROJECT)
    page.get_by_role("button", name="Sign in with Zooniverse").click()
    page.wait_for_url(re.compile(r".*/oauth/authorize\?.*"))
    sent_state = re.search(r"state=([0-9a-f]{32})", page.url).group(1)
    ui.goto(f"/#access_token=demo-owner-token&token_type=Bearer&expires_in=7200&state={'0' * 32}")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    expect(page).to_have_url(ui.base + PROJECT)  # back where the user was, still signed out
    assert tokens_in(json.dumps(ui.storage())) == set()
    assert not any(r.url.startswith(ui.base + "/api/") for r in ui.recorded())
    # The real reply is not accepted later either: a started sign-in answers once.
    ui.goto(f"/#access_token=demo-owner-token&token_type=Bearer&expires_in=7200&state={sent_state}")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in refused")
    ui.assert_no_console_errors()


def test_cancelling_on_zooniverses_sign_in_page_is_reported(ui, stack):
    ui.goto(PROJECT)
    page = ui.page
    page.get_by_role("button", name="Sign in with Zooniverse").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in cancelled")
    expect(page).to_have_url(ui.base + PROJECT)
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert not any("/api/" in r.url for r in ui.recorded())
    ui.assert_no_console_errors()


@pytest.mark.slow
def test_an_expired_sign_in_asks_again_and_comes_back_to_the_same_page(ui, stack):
    stack.panoptes.oauth_expires_in = 4
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    expect(badge(ui, SET_A)).to_have_text("Not exported yet")
    # The page's timer: no API call needed to notice.
    expect(page.get_by_role("alert")).to_contain_text("Your Zooniverse sign-in has expired", timeout=10_000)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.url == ui.base + PROJECT
    assert tokens_in(json.dumps(ui.storage())) == set()
    stack.panoptes.oauth_expires_in = 7200
    ui.sign_in("demo-owner", path=None, expect_path=PROJECT)
    expect(page.get_by_role("heading", level=1)).to_have_text("Snapshot Demo")
    expect(badge(ui, SET_A)).to_have_text("Not exported yet")
    ui.assert_no_console_errors()


def test_a_token_panoptes_rejects_leads_back_to_sign_in_and_then_to_the_same_page(ui, stack):
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    stack.panoptes.expire_token("demo-owner-token")  # revoked or expired early
    # The next refresh (the page refreshes by itself while the export is active) gets 401: ask
    # to sign in again.
    expect(page.get_by_role("alert")).to_contain_text("Zooniverse did not accept your access token")
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert page.url == ui.base + PROJECT
    ui.sign_in("demo-owner", path=None, expect_path=PROJECT)  # Panoptes hands out a new token
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    expect(ui.set_card(SET_A).locator(".link-note")).to_have_text(BEFORE_RUNNING)
    ui.assert_no_console_errors(allow_http=(401,))


# -- exporting -------------------------------------------------------------------------------------
def likely_empty_words(summary: dict) -> str:
    """The page's words for the summary's threshold, in the Subject Assistant's terms (its filter
    is "% likely to be empty", i.e. 1 - max_detection_conf): the contract counts
    max_detection_conf <= threshold, the first release < threshold."""
    percent = round((1 - summary["likely_empty_threshold"]) * 100)
    if "images_scored" in summary or "images_sent" in summary:
        return f"{percent}% or more likely to be empty"
    return f"more than {percent}% likely to be empty"


@pytest.mark.slow
def test_export_shows_progress_then_the_subject_assistant_link_then_the_summary(ui, stack):
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    page.evaluate("window.__sameDocument = true")
    card, other = ui.set_card(SET_A), ui.set_card(SET_B)
    expect(badge(ui, SET_A)).to_have_text("Not exported yet")
    # Hold the worker's subject read so "Reading subjects" and its progress bar can be seen.
    stack.panoptes.faults.add(r"^/api/subjects\?", "slow", delay=4, times=1)
    export_button(ui, SET_A).click()
    expect(badge(ui, SET_A)).to_have_text(
        re.compile(r"^(Queued|Reading subjects from Zooniverse \(0 of 25\))$")
    )
    # From the person's own click on, the card keeps the room its results will need: the set
    # below must not move while the export goes on by itself.
    tops = {"started": other.bounding_box()["y"]}
    expect(export_button(ui, SET_A)).to_be_disabled()
    # The note under Export says why Export is unavailable (not under Cancel, which is usable).
    expect(card.locator(".action").first.locator(".reason")).to_have_text(
        "You can export this set again when this export ends."
    )
    expect(export_button(ui, SET_A)).to_have_accessible_description(re.compile("export this set again when"))
    expect(cancel_button(ui, SET_A)).to_be_visible()
    expect(cancel_button(ui, SET_A)).to_have_accessible_description(SET_A)
    expect(badge(ui, SET_A)).to_have_text("Reading subjects from Zooniverse (0 of 25)")
    expect(page).to_have_title(
        "Reading subjects · Camera A - March · Snapshot Demo · Subject Assistant export"
    )
    progress = card.locator("progress")
    expect(progress).to_be_visible()
    assert progress.evaluate("p => [p.max, p.value]") == [25, 0]
    expect(card.locator(".link-note")).to_have_text(BEFORE_RUNNING)
    expect(card.get_by_role("link")).to_have_count(0)
    tops["building"] = other.bounding_box()["y"]

    stack.settle()
    export = api_export(stack)
    assert export["status"] == "submitted" and export["ml_task_id"] and export["ml_status"] == "created"
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    # The Subject Assistant cannot open a task the ML service is still preparing: no link yet,
    # words instead, and the task id for support.
    expect(card.get_by_role("link")).to_have_count(0)
    expect(card.locator(".link-note")).to_have_text(BEFORE_RUNNING)
    expect(card.locator(".results .task-id")).to_have_text(export["ml_task_id"])
    sample = stack.sample
    expect(card.locator(".sent")).to_have_text(
        f"Sent {sample.image_count} images from {sample.subject_count} subjects "
        f"({sample.skipped_frames} frame that is not an image, such as a video, left out)."
    )
    expect(card).to_contain_text("Results may take an hour or more")
    expect(progress).to_be_hidden()
    tops["submitted"] = other.bounding_box()["y"]

    stack.tick()
    assert api_export(stack)["ml_status"] == "running"
    expect(badge(ui, SET_A)).to_have_text("ML processing")
    running_link = link(ui, SET_A, RUNNING_LINK)
    expect(running_link).to_have_attribute("href", export["subject_assistant_url"])
    expect(running_link).to_have_attribute("target", "_blank")
    expect(running_link).to_have_attribute("rel", "noopener noreferrer")
    expect(running_link).to_have_accessible_description(SET_A)
    expect(card.locator(".link-note")).to_have_text(
        "Until the results are ready, the Subject Assistant says the task is still running."
    )
    expect(page).to_have_title("Running · Camera A - March · Snapshot Demo · Subject Assistant export")
    tops["running"] = other.bounding_box()["y"]

    stack.tick()
    expect(badge(ui, SET_A)).to_have_text("Completed")
    done = api_export(stack)
    summary = done["results_summary"]
    assert summary["available"] is True
    results_link = link(ui, SET_A, COMPLETED_LINK)
    expect(results_link).to_have_attribute("href", done["subject_assistant_url"])
    expect(card.get_by_role("link")).to_have_count(2)  # the Subject Assistant and the results CSV
    expect(card.get_by_role("link", name="Download results (CSV)")).to_be_visible()
    expect(card.locator(".link-note")).to_be_hidden()
    images, subjects = (
        card.locator(".summary-group").filter(has=page.get_by_role("heading", name=n))
        for n in ("Images", "Subjects")
    )
    expect(images.locator("dt")).to_have_text(["Sent", "Scored", "Likely empty", "Failed", "Missing"])
    sent = images.locator(".summary-item").first
    expect(sent.locator("dd")).to_have_text(str(summary.get("images_sent", summary.get("images_submitted"))))
    expect(subjects.locator(".summary-item").first.locator("dd")).to_have_text(str(sample.subject_count))
    # Every image scored: nothing to warn about, nothing to re-run.
    expect(card.locator(".results-warning")).to_have_count(0)
    expect(card.get_by_role("button", name=re.compile("^Re-run"))).to_have_count(0)
    # The threshold in the Subject Assistant's words, not as a confidence figure.
    expect(card.locator(".summary-note")).to_contain_text(likely_empty_words(summary))
    expect(card.locator(".summary-area")).not_to_contain_text("confidence")
    help_text = card.locator(".summary-help")
    expect(help_text.locator("ul")).to_be_hidden()
    help_text.locator("summary").click()
    expect(help_text).to_contain_text("a subject is what volunteers classify, and it can hold several images")
    expect(help_text).to_contain_text("Failed: images the ML service tried but could not process")
    expect(help_text).to_contain_text("Missing: images that were sent but are not in the results at all")
    expect(help_text).to_contain_text("1 frame that is not an image (such as a video) was left out")
    help_text.locator("summary").click()
    expect(export_button(ui, SET_A)).to_be_enabled()
    expect(cancel_button(ui, SET_A)).to_be_hidden()
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#announcer")).to_have_text("Export of Camera A - March: completed")
    expect(page).to_have_title("Completed · Camera A - March · Snapshot Demo · Subject Assistant export")
    tops["completed"] = other.bounding_box()["y"]
    assert len(set(tops.values())) == 1, f"the next set moved while the status changed: {tops}"
    assert page.evaluate("window.__sameDocument") is True  # no reload at any point

    # Nothing active any more: the page says so and stops refreshing.
    def listing_calls():
        return sum(1 for r in ui.recorded() if r.url.endswith("/api/projects/1234/exports"))

    expect(page.locator(".refresh-note")).not_to_contain_text("updates itself")
    before = listing_calls()
    page.wait_for_timeout(REFRESH_SECONDS * 1000 * 10)  # ten refresh intervals without a call
    assert listing_calls() == before
    ui.assert_no_console_errors()


def test_a_failed_export_shows_its_message_and_keeps_the_last_completed_results(ui, stack):
    first = complete_by_api(stack)
    # The empty set fails in the worker (subject_set_empty): started by a script, since the page
    # no longer offers Export on a set with no subjects.
    stack.start_export(subject_set="5679")
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    expect(badge(ui, SET_A)).to_have_text("Completed")
    export_button(ui, SET_A).click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, export again").click()
    expect(cancel_button(ui, SET_A)).to_be_visible()
    stack.settle()
    second = api_export(stack)
    assert second["id"] != first["id"] and second["ml_task_id"]
    stack.ml.set_status(second["ml_task_id"], "failed", "The Batch job failed: out of GPUs")
    stack.tick()
    failed = stack.get(second["id"]).json()
    assert failed["status"] == "failed", failed
    empty = api_export(stack, "5679")
    assert empty["status"] == "failed" and empty["error"]["code"] == "subject_set_empty"

    card = ui.set_card(SET_A)
    expect(badge(ui, SET_A)).to_have_text("Failed")
    expect(card.locator(".state-detail")).to_contain_text(failed["error"]["message"])
    expect(card.locator(".state-detail")).to_contain_text("To try again, press Export.")
    expect(card.locator(".results .task-id")).to_have_text(second["ml_task_id"])  # for support
    # The Subject Assistant shows a failed task's message: its link, and the last completed
    # export's, each named by what it opens.
    expect(card.get_by_role("link")).to_have_count(3)  # and the last completed export's results CSV
    expect(link(ui, SET_A, "The failed export's task in the Subject Assistant")).to_have_attribute(
        "href", second["subject_assistant_url"]
    )
    earlier = card.locator(".earlier")
    expect(earlier.get_by_role("link", name=COMPLETED_LINK)).to_have_attribute(
        "href", first["subject_assistant_url"]
    )
    expect(earlier.locator(".task-id")).to_have_text(first["ml_task_id"])
    expect(export_button(ui, SET_A)).to_be_enabled()

    # The empty set's failure says what to do instead of pressing Export again, which is off.
    card_b = ui.set_card(SET_B)
    expect(badge(ui, SET_B)).to_have_text("Failed")
    expect(card_b.locator(".state-detail")).to_have_text(empty["error"]["message"])
    expect(card_b.locator(".state-detail")).to_contain_text(
        "Add images to the set in the Zooniverse Project Builder"
    )
    expect(card_b.locator(".state-detail")).not_to_contain_text("press Export")
    expect(export_button(ui, SET_B)).to_be_disabled()
    expect(card_b.get_by_role("link")).to_have_count(0)
    expect(page.locator("#announcer")).to_contain_text("Export of Camera A - March: failed")
    ui.assert_no_console_errors()


def test_cancel_asks_for_confirmation_first(ui, stack):
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    task = api_export(stack)["ml_task_id"]
    stack.tick()
    expect(badge(ui, SET_A)).to_have_text("ML processing")

    cancel_button(ui, SET_A).click()
    dialog = page.get_by_role("dialog", name="Cancel this export?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"cancel task {task}")
    expect(dialog).to_contain_text("It may still finish the part it had done")
    expect(dialog).to_contain_text("the Subject Assistant link stays")
    dialog.get_by_role("button", name="No, keep it").click()
    expect(dialog).to_be_hidden()
    assert stack.ml.cancel_calls == 0
    expect(badge(ui, SET_A)).to_have_text("ML processing")

    cancel_button(ui, SET_A).click()
    dialog.get_by_role("button", name="Yes, cancel the export").click()
    expect(badge(ui, SET_A)).to_have_text("Cancelled")
    assert stack.ml.cancel_calls == 1
    assert api_export(stack)["status"] == "cancelled"
    expect(page.locator("#announcer")).to_have_text("Export of Camera A - March: cancelled")
    # The service completes a cancelled task with the part it had done: its link stays.
    expect(link(ui, SET_A, PARTIAL_LINK)).to_have_attribute(
        "href", f"https://subject-assistant.zooniverse.org/#/tasks/{task}"
    )
    expect(ui.set_card(SET_A)).to_contain_text("The ML service may still finish the part it had done")
    expect(export_button(ui, SET_A)).to_be_enabled()
    expect(cancel_button(ui, SET_A)).to_be_hidden()
    ui.assert_no_console_errors()


def test_a_refused_cancel_shows_the_apis_message(ui, stack):
    ui.sign_in("demo-owner", PROJECT)
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    assert stack.ml.wait_for_downloads(10)
    stack.ml.set_plan(api_export(stack)["ml_task_id"], ["created", "created"])
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    cancel_button(ui, SET_A).click()
    dialog = ui.page.get_by_role("dialog", name="Cancel this export?")
    # Said before asking: the service may refuse while it prepares the task.
    expect(dialog).to_contain_text("It cancels a task only once it is running, so it may refuse now")
    dialog.get_by_role("button", name="Yes, cancel the export").click()
    error = ui.set_card(SET_A).locator(".cancel-error")
    expect(error).to_contain_text("still listing its images")
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    expect(cancel_button(ui, SET_A)).to_be_enabled()
    assert "{" not in error.text_content()
    ui.assert_no_console_errors(allow_http=(409,))


def test_keyboard_only_sign_in_export_and_cancel(ui, stack):
    page = ui.page
    ui.goto(PROJECT)
    tab_to(page, page.get_by_role("button", name="Sign in with Zooniverse"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/oauth/authorize\?.*"))
    tab_to(page, page.get_by_role("button", name="Sign in as demo-owner"))
    page.keyboard.press("Enter")
    page.wait_for_url(ui.base + PROJECT)
    expect(badge(ui, SET_A)).to_have_text("Not exported yet")

    stack.panoptes.faults.add(r"^/api/subjects\?", "slow", delay=5, times=1)  # keep it cancellable here
    export = export_button(ui, SET_A)
    tab_to(page, export)
    assert export.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"  # focus is visible
    page.keyboard.press("Enter")
    expect(badge(ui, SET_A)).to_have_text(re.compile(r"Queued|Reading subjects"))
    cancel = cancel_button(ui, SET_A)
    expect(cancel).to_be_focused()  # the disabled Export button handed focus on
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Cancel this export?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("none of its images have gone to the ML service")
    expect(dialog.get_by_role("button", name="No, keep it")).to_be_focused()  # the safe choice first
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(cancel).to_be_focused()
    page.keyboard.press("Space")
    expect(dialog).to_be_visible()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Yes, cancel the export")).to_be_focused()
    page.keyboard.press("Space")
    expect(badge(ui, SET_A)).to_have_text("Cancelled")
    expect(export).to_be_focused()
    stack.settle()
    assert api_export(stack)["status"] == "cancelled" and stack.ml.accepted_count == 0
    ui.assert_no_console_errors()


# -- the page's own guarantees ------------------------------------------------------------------------
def test_csp_is_sent_and_the_page_works_under_it_without_console_errors(ui, stack):
    for path in ("/", PROJECT, "/static/app.js", "/static/styles.css"):
        response = ui.page.request.get(ui.base + path)
        assert response.status == 200 and response.headers["content-security-policy"] == CSP, path
    page = ui.page
    ui.sign_in("demo-owner", "/")
    page.get_by_role("link", name="Snapshot Demo").click()
    export_button(ui, SET_A).click()
    expect(cancel_button(ui, SET_A)).to_be_visible()
    cancel_button(ui, SET_A).click()
    page.get_by_role("button", name="No, keep it").click()
    stack.settle()
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    # Nothing inline for the CSP to block: no style attributes, no inline scripts or styles.
    assert page.evaluate("() => document.querySelectorAll('[style], style, script:not([src])').length") == 0
    assert [m for m in ui.console_messages if "Content Security Policy" in m] == []
    ui.assert_no_console_errors()


def test_the_token_goes_only_to_this_app_in_the_authorization_header(ui, stack):
    ui.sign_in("demo-owner", PROJECT)
    page = ui.page
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    page.get_by_role("link", name="Your projects").click()
    expect(page.get_by_role("link", name="Snapshot Demo")).to_be_visible()

    assert tokens_in(page.url) == set() and "#" not in page.url
    stored = ui.storage()
    assert tokens_in(stored["local"]) == set() and tokens_in(stored["cookie"]) == set()
    assert "demo-owner-token" in stored["session"]  # this tab's sessionStorage only
    assert all(tokens_in(c["value"]) == set() for c in ui.context.cookies())
    assert tokens_in(json.dumps(page.evaluate("() => history.state"))) == set()

    authorized = 0
    for request in ui.recorded():
        assert tokens_in(request.url) == set(), request.url
        assert tokens_in(request.post_data) == set(), request.url
        for name, value in request.headers.items():
            if not tokens_in(value):
                continue
            assert name.lower() == "authorization" and value == "Bearer demo-owner-token", (request.url, name)
            assert origin(request.url) == ui.base and request.url.startswith(ui.base + "/api/"), request.url
            authorized += 1
    assert authorized >= 3  # projects, listings, the export
    # Nothing about the token reached the stand-in's logs either (it saw the sign-in only).
    assert all(
        tokens_in(json.dumps(r.query)) == set()
        for r in stack.panoptes.requests
        if r.path.startswith("/oauth")
    )

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert tokens_in(json.dumps(ui.storage())) == set()


def test_accessibility_with_axe_core(ui, stack, record_property):
    complete_by_api(stack)
    stack.start_export(subject_set="5679")  # fails in the worker: subject_set_empty
    stack.settle()
    report = {}
    page = ui.page
    ui.goto(PROJECT)
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert_axe_clean(page, "sign-in", report)
    ui.sign_in("demo-owner", "/")
    expect(page.get_by_role("link", name="Snapshot Demo")).to_be_visible()
    assert_axe_clean(page, "projects", report)
    page.get_by_role("link", name="Snapshot Demo").click()
    expect(badge(ui, SET_A)).to_have_text("Completed")
    expect(badge(ui, SET_B)).to_have_text("Failed")
    ui.set_card(SET_A).locator(".summary-help summary").click()
    assert_axe_clean(page, "project", report)
    export_button(ui, SET_A).click()
    expect(page.get_by_role("dialog", name=re.compile("again"))).to_be_visible()
    assert_axe_clean(page, "export-again dialog", report)
    page.get_by_role("button", name="Yes, export again").click()
    cancel_button(ui, SET_A).click()
    expect(page.get_by_role("dialog", name="Cancel this export?")).to_be_visible()
    assert_axe_clean(page, "cancel dialog", report)
    page.keyboard.press("Escape")
    record_property("axe", json.dumps(report))
    print("axe violations by screen:", json.dumps(report))
    ui.assert_no_console_errors()


def test_usable_375_px_wide_without_horizontal_scrolling(make_page, stack):
    complete_by_api(stack)
    stack.start_export(subject_set="5679")  # fails in the worker: subject_set_empty
    stack.settle()
    ui = make_page(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = ui.page
    ui.goto(PROJECT)
    expect(page.get_by_role("button", name="Sign in with Zooniverse")).to_be_visible()
    assert no_horizontal_scroll(page)
    ui.sign_in("demo-owner", "/")
    expect(page.get_by_role("link", name="Snapshot Demo")).to_be_visible()
    assert no_horizontal_scroll(page)
    page.get_by_role("link", name="Snapshot Demo").click()
    expect(badge(ui, SET_A)).to_have_text("Completed")
    expect(badge(ui, SET_B)).to_have_text("Failed")
    assert no_horizontal_scroll(page)
    for locator in (export_button(ui, SET_A), link(ui, SET_A, COMPLETED_LINK)):
        box = locator.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    export_button(ui, SET_A).click()
    dialog = page.get_by_role("dialog")
    dialog_box = dialog.bounding_box()
    assert dialog_box["x"] >= 0 and dialog_box["x"] + dialog_box["width"] <= 375
    dialog.get_by_role("button", name="Yes, export again").click()
    cancel_button(ui, SET_A).click()
    dialog_box = page.get_by_role("dialog").bounding_box()
    assert dialog_box["x"] >= 0 and dialog_box["x"] + dialog_box["width"] <= 375
    assert no_horizontal_scroll(page)
    ui.assert_no_console_errors()
