"""What a project owner met on first use (issue 18), in a real browser against the whole stack:
the Subject Assistant link only once the Subject Assistant can open it, the cancel question in
words for the state the export is in, links named by what they are, export again only after a
question, numbers that never wrap, and knowing when an export is done without watching."""

from __future__ import annotations

import json
import re
import time

from tests.page.conftest import REFRESH_SECONDS, VIEWPORT
from tests.page.helpers import (
    COMPLETED_LINK,
    PARTIAL_LINK,
    PROJECT,
    RUNNING_LINK,
    SET_A,
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

LISTING = "/api/projects/1234/exports"
PROBLEM_WORDS = "The Subject Assistant cannot open the task while the ML service reports a problem"


def test_the_link_shows_only_while_the_subject_assistant_can_open_the_task(ui, stack):
    """The Subject Assistant handles the ML statuses running, completed and failed only."""
    ui.sign_in("demo-owner", PROJECT)
    card = ui.set_card(SET_A)
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    task = api_export(stack)["ml_task_id"]
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")  # ML status `created`
    expect(card.get_by_role("link")).to_have_count(0)
    expect(card.locator(".link-note")).to_contain_text("once the ML service starts working on the task")

    stack.tick()
    expect(link(ui, SET_A, RUNNING_LINK)).to_be_visible()
    expect(card.locator(".link-note")).to_contain_text("says the task is still running")

    stack.ml.set_status(task, "problem", "The Batch job is being retried")
    stack.tick()
    assert api_export(stack)["ml_status"] == "problem"
    expect(card.locator(".link-note")).to_contain_text(PROBLEM_WORDS)
    expect(card.get_by_role("link")).to_have_count(0)
    expect(badge(ui, SET_A)).to_have_text("ML processing")

    stack.ml.set_status(task, "running", "Batch job running")
    stack.tick()
    expect(link(ui, SET_A, RUNNING_LINK)).to_have_attribute(
        "href", api_export(stack)["subject_assistant_url"]
    )
    ui.assert_no_console_errors()


def test_the_cancel_question_speaks_of_the_state_the_export_is_in_when_asked(ui, stack):
    """The card may be a refresh behind (it said Queued while the images had already gone to the
    ML service): Cancel reads the export first, and the open question follows its state."""
    page = ui.page
    ui.sign_in("demo-owner", PROJECT)
    stack.panoptes.faults.add(r"^/api/subjects\?", "slow", delay=2, times=1)
    export_button(ui, SET_A).click()
    expect(badge(ui, SET_A)).to_have_text(re.compile("^(Queued|Reading subjects)"))
    # From now on the page's refreshes see the listing as it was: the card stays behind.
    stale = stack.call("GET", LISTING).json()
    assert api_export(stack)["status"] in ("queued", "building")
    page.route(f"**{LISTING}", lambda route: route.fulfill(status=200, json=stale))
    stack.settle()
    export = api_export(stack)
    assert export["status"] == "submitted", export
    expect(badge(ui, SET_A)).to_have_text(re.compile("^(Queued|Reading subjects)"))

    served = []  # the stale listing, once per refresh from now on
    page.unroute(f"**{LISTING}")
    page.route(f"**{LISTING}", lambda route: served.append(1) or route.fulfill(status=200, json=stale))
    cancel_button(ui, SET_A).click()
    dialog = page.get_by_role("dialog", name="Cancel this export?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"The ML service has task {export['ml_task_id']}")
    expect(dialog).not_to_contain_text("none of its images")
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")  # the card caught up too
    # ...and stays caught up: listings read before that answer never take it back.
    after, deadline = len(served), time.monotonic() + 30
    while len(served) < after + 3:
        assert time.monotonic() < deadline, "the page stopped refreshing"
        page.wait_for_timeout(250)  # lets the page refresh (and the route answer)
    expect(badge(ui, SET_A)).to_have_text("Sent to the ML service")
    expect(dialog).to_contain_text(f"The ML service has task {export['ml_task_id']}")

    # The task starts running while the question is open: the words follow.
    page.unroute(f"**{LISTING}")
    stack.tick()
    expect(dialog).to_contain_text(f"asked to cancel task {export['ml_task_id']}")
    expect(dialog).to_contain_text("the Subject Assistant link stays")
    dialog.get_by_role("button", name="Yes, cancel the export").click()
    expect(badge(ui, SET_A)).to_have_text("Cancelled")
    expect(link(ui, SET_A, PARTIAL_LINK)).to_be_visible()
    assert stack.ml.cancel_calls == 1
    ui.assert_no_console_errors()


def test_export_again_asks_first_and_every_link_says_what_it_is(ui, stack):
    first = complete_by_api(stack)
    page = ui.page
    ui.sign_in("demo-owner", PROJECT)
    card = ui.set_card(SET_A)
    results = link(ui, SET_A, COMPLETED_LINK)
    expect(results).to_be_visible()
    link_words = results.locator("span").first.inner_text()  # without "(opens in a new tab)"
    when = re.sub(r"^Results of the export completed on ", "", link_words).strip()
    assert re.search(r"\d", when), when

    exports_before = len(stack.exports())
    export_button(ui, SET_A).click()
    dialog = page.get_by_role("dialog", name=f"Export “{SET_A}” again?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"The results of the export completed on {when}")
    expect(dialog).to_contain_text(
        f"sends all {first['manifest']['images']} images to the ML service once more"
    )
    expect(dialog.get_by_role("button", name="No, don't export")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(export_button(ui, SET_A)).to_be_focused()
    assert len(stack.exports()) == exports_before  # nothing started

    export_button(ui, SET_A).click()
    dialog.get_by_role("button", name="Yes, export again").click()
    expect(cancel_button(ui, SET_A)).to_be_visible()
    stack.settle()
    stack.tick()
    expect(link(ui, SET_A, RUNNING_LINK)).to_be_visible()
    cancel_button(ui, SET_A).click()
    page.get_by_role("button", name="Yes, cancel the export").click()
    expect(badge(ui, SET_A)).to_have_text("Cancelled")

    # Two Subject Assistant links on one card, named by what they are (and the completed export's CSV).
    partial, completed = link(ui, SET_A, PARTIAL_LINK), link(ui, SET_A, COMPLETED_LINK)
    expect(card.get_by_role("link")).to_have_count(3)
    expect(card.get_by_role("link", name="Download these results (CSV)")).to_be_visible()
    expect(partial).to_have_attribute("href", api_export(stack)["subject_assistant_url"])
    expect(completed).to_have_attribute("href", first["subject_assistant_url"])
    expect(completed).to_have_accessible_name(
        f"Results of the export completed on {when} (opens in a new tab)"
    )

    # Partial results exist too: Export asks again, naming them.
    export_button(ui, SET_A).click()
    expect(page.get_by_role("dialog")).to_contain_text("The partial results of the export cancelled on")
    page.get_by_role("button", name="No, don't export").click()
    ui.assert_no_console_errors()


NUMBERS_THAT_WRAP = """() => {
    // Every number in the screen's text (dates, counts, times; not the task ids in <code>):
    // its characters must sit on one line.
    const broken = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest("code, .visually-hidden") || !parent.checkVisibility()) continue;
        for (const m of node.data.matchAll(/\\d[\\d,.:]*\\d|\\d/g)) {
            const range = document.createRange();
            range.setStart(node, m.index);
            range.setEnd(node, m.index + m[0].length);
            const lines = new Set(Array.from(range.getClientRects(), (r) => Math.round(r.top)));
            if (lines.size > 1) broken.push(`${m[0]} in "${node.data.trim()}"`);
        }
    }
    return broken;
}"""


def test_no_number_wraps_at_any_width_from_320_px(make_page, stack):
    complete_by_api(stack)
    ui = make_page(viewport={"width": 320, "height": 700})
    page = ui.page

    # The summary as a large set would have it: seven-digit counts.
    def large_numbers(route):
        body = route.fetch().json()
        for entry in body["subject_sets"]:
            for key in ("latest_export", "latest_completed_export"):
                summary = (entry[key] or {}).get("results_summary")
                if summary:
                    summary.update({k: 1234567 for k, v in summary.items() if type(v) is int})
                    entry[key]["rerun_images"] = 1234567  # the Re-run button's count too
        route.fulfill(status=200, json=body)

    page.route(f"**{LISTING}", large_numbers)
    ui.sign_in("demo-owner", PROJECT)
    expect(badge(ui, SET_A)).to_have_text("Completed")
    expect(ui.set_card(SET_A).locator(".summary-area")).to_contain_text("1,234,567")
    expect(ui.set_card(SET_A).get_by_role("button", name="Re-run 1,234,567 images")).to_be_visible()
    ui.set_card(SET_A).locator(".summary-help summary").click()
    checked = []
    for width in (320, 360, 375, 414, 600, 768, 834, 1024, 1280, 1440):
        page.set_viewport_size({"width": width, "height": 700})
        broken = page.evaluate(NUMBERS_THAT_WRAP)
        assert broken == [], f"at {width} px: {broken}"
        checked.append(width)
    assert len(checked) == 10
    ui.assert_no_console_errors()


NOTIFICATIONS = """() => {
    // Records what the page does with the Notification API (the real one underneath).
    const Real = window.Notification;
    window.__permissionRequests = 0;
    window.__notifications = [];
    class Recorded extends Real {
        constructor(title, options) {
            super(title, options);
            window.__notifications.push({title, body: options && options.body});
        }
        static get permission() { return Real.permission; }
        static requestPermission() {
            window.__permissionRequests += 1;
            return Real.requestPermission();
        }
    }
    window.Notification = Recorded;
}"""


def test_the_tab_title_and_an_opt_in_notification_tell_when_it_is_done(make_page, stack):
    # A new context (its init script would outlive the test), in the desktop Chromium: the
    # headless shell denies notifications whatever is granted.
    ui = make_page(full_browser=True, viewport=VIEWPORT)
    ui.context.grant_permissions(["notifications"], origin=ui.base)
    ui.context.add_init_script(f"({NOTIFICATIONS})()")
    page = ui.page
    ui.sign_in("demo-owner", PROJECT)
    expect(page).to_have_title("Snapshot Demo · Subject Assistant export")
    control = page.get_by_role("button", name="Notify me when my exports finish")
    expect(control).to_be_visible()
    assert page.evaluate("window.__permissionRequests") == 0  # never asked unprompted
    control.click()
    expect(page.locator(".notify")).to_contain_text("Notifications are on")
    expect(page.get_by_role("button", name="Turn notifications off")).to_be_focused()

    export_button(ui, SET_A).click()
    expect(page).to_have_title(
        re.compile(r"^(Queued|Reading subjects|Sent to the ML service) · Camera A - March · ")
    )
    stack.settle()
    stack.tick()
    expect(page).to_have_title("Running · Camera A - March · Snapshot Demo · Subject Assistant export")
    assert page.evaluate("window.__notifications") == []
    stack.tick()
    expect(page).to_have_title("Completed · Camera A - March · Snapshot Demo · Subject Assistant export")
    page.wait_for_function("window.__notifications.length > 0")
    notes = page.evaluate("window.__notifications")
    assert notes == [
        {
            "title": "Export completed: Camera A - March",
            "body": "Snapshot Demo: the results are ready in the Subject Assistant.",
        }
    ], json.dumps(notes)
    ui.assert_no_console_errors()


def test_notifications_stay_off_unless_turned_on(make_page, stack):
    # A new context (its init script would outlive the test), in the desktop Chromium: the
    # headless shell denies notifications whatever is granted.
    ui = make_page(full_browser=True, viewport=VIEWPORT)
    ui.context.grant_permissions(["notifications"], origin=ui.base)
    ui.context.add_init_script(f"({NOTIFICATIONS})()")
    page = ui.page
    ui.sign_in("demo-owner", PROJECT)
    click_and_wait_for_start(ui, export_button(ui, SET_A))
    stack.settle()
    stack.tick(), stack.tick()
    expect(badge(ui, SET_A)).to_have_text("Completed")
    expect(page).to_have_title(re.compile("^Completed · Camera A - March"))
    assert page.evaluate("[window.__notifications, window.__permissionRequests]") == [[], 0]
    ui.assert_no_console_errors()


def test_the_page_refreshes_at_the_interval_the_server_sets(ui, stack):
    """PAGE_REFRESH_SECONDS reaches the page (the tests set it low instead of waiting 3 s)."""
    ui.goto("/")
    page = ui.page
    assert float(page.locator('meta[name="refresh-seconds"]').get_attribute("content")) == REFRESH_SECONDS
    interval = page.evaluate("async () => (await import('/static/project.js')).refreshInterval()")
    assert interval == REFRESH_SECONDS * 1000
