"""Browser fixtures for the page tests: Debian's Chromium driven by Playwright (sync API).

Playwright's own browser download is not used: the tests launch /usr/bin/chromium (Debian's
`chromium` package). Without it every page test fails and says how to install it."""

from __future__ import annotations

import json
import os
import pathlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"  # CI may point it at another Chromium
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = pathlib.Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
MISSING_CHROMIUM = (
    f"Chromium is needed for the page tests and {CHROMIUM} does not exist: install it with "
    "`apt-get install chromium` (Debian's package; Playwright's own browser download is not used)."
)
TIMEOUT_MS = 15_000
# The page refreshes this often while an export is active (3 s when deployed): a test sees a change
# as soon as the backend made it, instead of waiting out the deployed interval.
REFRESH_SECONDS = 0.25
_HTTP_LOG = re.compile(
    r"console\.error: Failed to load resource: the server responded with a status of "
    r"(?P<status>\d{3}) \([^)]*\) @ (?P<url>\S+)"
)
# Every sample user's token (and what the stand-in's sign-in can mint): none may leak.
TOKEN_PATTERN = re.compile(r"demo-[a-z]+-token(?:-renewed-\d+)?")


def chromium_problem() -> str | None:
    if not os.path.exists(CHROMIUM):
        return MISSING_CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "Playwright for Python is missing: `.venv/bin/pip install -r requirements-dev.txt` "
            "(and `apt-get install chromium` for the browser)."
        )
    return None


@pytest.fixture
def settings_overrides():
    return {"PAGE_REFRESH_SECONDS": str(REFRESH_SECONDS)}


@pytest.fixture(scope="session")
def browser():
    problem = chromium_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict
    post_data: str | None


@dataclass
class UI:
    """One browser context and page on the stack's local host, recording what matters."""

    page: object
    context: object
    stack: object
    console_errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    _raw_requests: list = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.stack.host.url

    def goto(self, path: str = "/"):
        return self.page.goto(self.base + path)

    def sign_in(self, login: str = "demo-owner", path: str = "/", *, expect_path: str | None = None):
        """Open `path`, press "Sign in with Zooniverse", choose `login` on the Panoptes stand-in's
        form, and wait until the page is back (fragment gone) on `expect_path` (default: path)."""
        page = self.page
        if path is not None:
            self.goto(path)
        page.get_by_role("button", name="Sign in with Zooniverse").click()
        page.wait_for_url(re.compile(re.escape(self.stack.panoptes.url) + r"/oauth/authorize\?"))
        page.get_by_role("button", name=f"Sign in as {login}").click()
        target = self.base + (expect_path if expect_path is not None else (path or "/"))
        page.wait_for_url(target)
        page.get_by_role("button", name="Sign out").wait_for()

    def recorded(self) -> list:
        """Every request the page made so far, with all its headers."""
        out = []
        for request in self._raw_requests:
            try:
                headers = request.all_headers()
            except Exception:  # the request's page is gone: the headers it was sent with
                headers = request.headers
            out.append(Recorded(request.method, request.url, headers, request.post_data))
        return out

    def assert_no_console_errors(self, allow_http: tuple = ()):
        """No console error and no uncaught exception. Chromium itself logs every non-2xx
        answer to fetch() as "Failed to load resource" (the page cannot stop that): a test that
        expects the API to refuse something lists those statuses in `allow_http`, and only
        answers of this app's /api/ with those statuses are let through."""
        unexpected = []
        for entry in self.console_errors:
            match = _HTTP_LOG.fullmatch(entry)
            if (
                match
                and int(match.group("status")) in allow_http
                and match.group("url").startswith(self.base + "/api/")
            ):
                continue
            unexpected.append(entry)
        assert unexpected == [], "console errors or page errors:\n" + "\n".join(unexpected)

    def storage(self) -> dict:
        return self.page.evaluate(
            "() => ({local: JSON.stringify(Object.entries(localStorage)), "
            "session: JSON.stringify(Object.entries(sessionStorage)), cookie: document.cookie})"
        )

    def announcements(self) -> str:
        return self.page.locator("#announcer").text_content() or ""

    def set_card(self, name: str):
        return self.page.locator("li.set").filter(has=self.page.get_by_role("heading", name=name, exact=True))


def make_ui(browser, stack, **context_options) -> UI:
    context = browser.new_context(**context_options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    ui = UI(page, context, stack)

    def on_console(message):
        if message.type == "error":
            ui.console_errors.append(f"console.error: {message.text} @ {message.location.get('url', '')}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: ui.console_errors.append(f"pageerror: {error}"))
    context.on("request", lambda request: ui._raw_requests.append(request))
    return ui


@pytest.fixture
def ui(browser, stack):
    ui = make_ui(browser, stack, viewport={"width": 1280, "height": 900})
    yield ui
    ui.context.close()


@pytest.fixture
def make_page(browser, stack):
    """Extra pages (other users, other viewport sizes) on the same stack."""
    made = []

    def make(**options):
        made.append(make_ui(browser, stack, **options))
        return made[-1]

    yield make
    for ui in made:
        ui.context.close()


def tokens_in(text: str | None) -> set:
    return set(TOKEN_PATTERN.findall(text or ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["AXE", "UI", "json", "origin", "tokens_in"]
