"""Browser fixtures for the page tests: Debian's Chromium driven by Playwright (sync API).

Playwright's own browser download is not used: the tests launch Debian's Chromium. Without
/usr/bin/chromium every page test fails and says how to install it.

Most tests run in Chromium's headless shell (Debian's `chromium-headless-shell`, the same
Blink and V8 built from the same source, without the desktop browser around them), as
Playwright itself does by default for headless runs: the page folder took about 30 % less CPU in
it (38 and 41 s against 55 and 57 s on one process, under coverage; docs/DECISIONS.md). The shell refuses notifications whatever is
granted, so the tests of the page's notifications ask for the full browser
(`make_page(full_browser=True)`). Without the shell, every test runs in the full browser."""

from __future__ import annotations

import json
import os
import pathlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"  # CI may point it at another Chromium
HEADLESS_SHELL = os.environ.get("CHROMIUM_HEADLESS_SHELL") or "/usr/bin/chromium-headless-shell"
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
def playwright():
    problem = chromium_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def full_browser(playwright):
    """Debian's desktop Chromium, headless: for what the headless shell cannot do."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser(playwright, request):
    """Chromium's headless shell when it is installed, else the full browser."""
    if not os.path.exists(HEADLESS_SHELL):
        yield request.getfixturevalue("full_browser")
        return
    browser = playwright.chromium.launch(executable_path=HEADLESS_SHELL, args=CHROMIUM_ARGS, headless=True)
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
    console_messages: list = field(default_factory=list)  # every console message's text
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


VIEWPORT = {"width": 1280, "height": 900}


class Tab:
    """A browser context and its page, recording what the page logs and requests into the UI of
    the test that uses it (`ui`)."""

    def __init__(self, browser, **context_options):
        self.context = browser.new_context(**context_options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.ui: UI | None = None
        self.origins: set[str] = set()  # where the page has been or sent requests: what to clear
        self.page.on("console", self._console)
        self.page.on("pageerror", self._page_error)
        self.context.on("request", self._request)

    def serve(self, stack) -> UI:
        """The UI of the test that uses this tab from now on, on that test's stack."""
        self.ui = UI(self.page, self.context, stack)
        return self.ui

    def _console(self, message) -> None:
        if self.ui is None:
            return
        self.ui.console_messages.append(message.text)
        if message.type == "error":
            self.ui.console_errors.append(
                f"console.error: {message.text} @ {message.location.get('url', '')}"
            )

    def _page_error(self, error) -> None:
        if self.ui is not None:
            self.ui.console_errors.append(f"pageerror: {error}")

    def _request(self, request) -> None:
        if request.url.startswith(("http://", "https://")):
            self.origins.add(origin(request.url))
        if self.ui is not None:
            self.ui._raw_requests.append(request)

    def reset(self) -> None:
        """Leave the tab as a new context's would be, for the next test: no route, no script
        running, nothing stored for any origin it visited (session and local storage, cookies,
        IndexedDB, caches), no permission, an empty HTTP cache, the usual viewport.

        Why not a new context per test: every new page costs Chromium about 1.4 s of CPU (a
        renderer, and Playwright's scripts compiled into it), about 40 s of the suite's CPU.
        tests/page/test_browser_fixtures.py checks that nothing survives a reset."""
        self.ui = None
        self.page.unroute_all(behavior="ignoreErrors")
        self.context.unroute_all(behavior="ignoreErrors")
        self.page.goto("about:blank")
        cdp = self.context.new_cdp_session(self.page)
        try:
            for visited in sorted(self.origins):
                cdp.send("Storage.clearDataForOrigin", {"origin": visited, "storageTypes": "all"})
            cdp.send("Network.clearBrowserCache")
        finally:
            cdp.detach()
        self.origins.clear()
        self.context.clear_cookies()
        self.context.clear_permissions()
        self.page.set_viewport_size(VIEWPORT)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="session")
def tabs(browser):
    """Tabs that tests hand back after use, reset (Tab.reset)."""
    idle: list[Tab] = []
    yield idle
    for tab in idle:
        tab.close()


@pytest.fixture
def ui(browser, tabs, stack):
    """The test's page, at 1280 x 900, in a tab an earlier test may have used and reset. A test
    that needs what a reset cannot undo (an init script) uses `make_page` instead."""
    tab = tabs.pop() if tabs else Tab(browser, viewport=VIEWPORT)
    yield tab.serve(stack)
    try:
        tab.reset()
    except Exception:
        tab.close()  # not reused when it could not be reset
        raise
    tabs.append(tab)


@pytest.fixture
def make_page(browser, stack, request):
    """Pages in new contexts (other users, other viewport sizes, init scripts) on the same stack;
    `full_browser=True` for one in the desktop Chromium (notifications: see the module's docstring)."""
    made = []

    def make(full_browser: bool = False, **options):
        made.append(Tab(request.getfixturevalue("full_browser") if full_browser else browser, **options))
        return made[-1].serve(stack)

    yield make
    for tab in made:
        tab.close()


def tokens_in(text: str | None) -> set:
    return set(TOKEN_PATTERN.findall(text or ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["AXE", "UI", "json", "origin", "tokens_in"]
