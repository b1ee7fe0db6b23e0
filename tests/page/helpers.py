"""The project screen's vocabulary for the page tests: its addresses, sets and link names, and
locators for a set's parts; plus the backend moves the tests make through the harness."""

from __future__ import annotations

import re

PROJECT = "/subject-assistant/1234/"
SET_A, SET_B = "Camera A - March", "Camera B - April (empty)"
RUNNING_LINK = "Open the running task in the Subject Assistant"
COMPLETED_LINK = re.compile(r"^Results of the export completed on ")
PARTIAL_LINK = "Partial results of the cancelled export"
BEFORE_RUNNING = "The Subject Assistant link appears here once the ML service starts working on the task."


def badge(ui, name):
    return ui.set_card(name).locator(".badge")


def click_and_wait_for_start(ui, button) -> None:
    """Click a button that starts an export (Export, or a dialog's Yes) and wait for the API's
    answer to the page's POST: the click returns before the page sends it, and a test's
    `stack.settle()` right after could find the queue idle before the export exists."""
    with ui.page.expect_response(
        lambda answer: answer.request.method == "POST" and "/exports" in answer.url
    ) as posted:
        button.click()
    assert posted.value.status in (200, 201, 202), posted.value.status


def export_button(ui, name):
    return ui.set_card(name).get_by_role("button", name="Export", exact=True)


def cancel_button(ui, name):
    return ui.set_card(name).get_by_role("button", name="Cancel export")


def link(ui, name, text):
    return ui.set_card(name).get_by_role("link", name=text)


def api_export(stack, set_id="5678"):
    listing = stack.call("GET", "/api/projects/1234/exports").json()
    return next(s for s in listing["subject_sets"] if s["id"] == set_id)["latest_export"]


def complete_by_api(stack, set_id="5678"):
    body = stack.start_export(subject_set=set_id).json()
    stack.settle()
    assert stack.ml.wait_for_downloads(10)
    stack.tick(), stack.tick()
    done = stack.get(body["id"]).json()
    assert done["status"] == "completed", done
    return done
