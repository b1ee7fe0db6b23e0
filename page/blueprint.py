"""The page for people, served by the function app itself: `/`, Hamlet's deep link
`/subject-assistant/{project_id}/`, and its static files under `/static/`.

`/` is served by the site's catch-all route (`{*path}`, whose function name sorts last): the
host maps an empty route template to the function's name (azure-functions-host
WebScriptHostHttpRoutesManager), so no route can name the root itself. The catch-all hands every
other path to shared/fallback.py (JSON 404/405 under /api/) or answers this site's 404 page.

The HTML is page/index.html with the Panoptes URL, the OAuth application id and the refresh
interval filled in (the page then needs no configuration call); the JavaScript talks only to this app's `/api/...`.
Every answer carries a strict Content-Security-Policy: no inline script, `connect-src 'self'`,
`frame-ancestors 'none'`."""

from __future__ import annotations

import html
import logging
import pathlib
import re
from urllib.parse import urlsplit

import azure.functions as func

from page.settings import get_page_settings
from shared import fallback
from shared.responses import COMMON_SECURITY_HEADERS
from shared.routing import ANONYMOUS, guarded, http_route
from shared.settings import SettingsError

bp = func.Blueprint()
log = logging.getLogger(__name__)

HERE = pathlib.Path(__file__).resolve().parent
STATIC = HERE / "static"
INDEX = HERE / "index.html"
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain",
    ".woff2": "font/woff2",
}
_SAFE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    **COMMON_SECURITY_HEADERS,
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_ASSET_PATH = 200  # longer names are not ours (and a component over 255 bytes is an OS error)
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page not found · Subject Assistant export</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/static/styles.css">
</head><body>
<header class="site-header"><div class="bar"><p class="site-name"><a href="/">Subject Assistant export</a></p></div></header>
<main id="main" class="content"><h1>Page not found</h1><p>There is no page at <code>{path}</code>.</p>
<p><a href="/">Go to the Subject Assistant export page</a></p></main>
</body></html>
"""
# Static files are not content-hashed (no build step): a short max-age keeps a deployment's
# new files at most five minutes away; the HTML itself is revalidated every time.
ASSET_CACHE = "public, max-age=300"
HTML_CACHE = "no-cache"


def page(req: func.HttpRequest) -> func.HttpResponse:
    """index.html with this deployment's Panoptes URL and OAuth application id."""
    try:
        settings = get_page_settings()
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        return _html(
            "<!doctype html><title>Not configured</title><h1>The export page is not "
            "configured</h1><p>The operators have been told.</p>",
            500,
        )
    text = INDEX.read_text(encoding="utf-8")
    text = text.replace("{{PANOPTES_URL}}", html.escape(settings.panoptes_url, quote=True))
    text = text.replace("{{OAUTH_CLIENT_ID}}", html.escape(settings.panoptes_oauth_client_id, quote=True))
    text = text.replace("{{REFRESH_SECONDS}}", f"{settings.page_refresh_seconds:g}")
    return _html(text, 200)


def asset(req: func.HttpRequest) -> func.HttpResponse:
    name = (req.route_params.get("file") or "").strip("/")
    if len(name) > MAX_ASSET_PATH or not _SAFE_PATH.fullmatch(name):
        return not_found_page(req)
    path = STATIC / name
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    try:
        found = content_type is not None and path.is_file() and STATIC in path.resolve().parents
    except OSError:  # e.g. a name the file system refuses: not one of ours either
        found = False
    if not found or content_type is None:
        return not_found_page(req)
    charset = "utf-8" if content_type.startswith("text/") or content_type.endswith(("json", "xml")) else None
    headers = {**SECURITY_HEADERS, "Cache-Control": ASSET_CACHE}
    if charset:
        headers["Content-Type"] = f"{content_type}; charset={charset}"
    return func.HttpResponse(path.read_bytes(), status_code=200, mimetype=content_type, headers=headers)


def not_found_page(req: func.HttpRequest) -> func.HttpResponse:
    """The site's 404 page, styled like the page, naming the path that was asked for."""
    path = urlsplit(req.url).path if req.url else "/"
    return _html(NOT_FOUND_PAGE.format(path=html.escape(path[:200] + ("…" if len(path) > 200 else ""))), 404)


def _html(text: str, status: int) -> func.HttpResponse:
    return func.HttpResponse(
        text,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": HTML_CACHE, "Content-Type": "text/html; charset=utf-8"},
    )


# Hamlet's Camera Traps page had this address; the Subject Assistant and bookmarks may link it.
@bp.function_name("page_project")
@http_route(bp, "subject-assistant/{project_id}", ["GET"])
def page_project(req: func.HttpRequest) -> func.HttpResponse:
    return page(req)


@bp.function_name("page_static")
@http_route(bp, "static/{*file}", ["GET"])
def page_static(req: func.HttpRequest) -> func.HttpResponse:
    return asset(req)


# The host tries routes by function name, alphabetically: this name must sort after every other.
@bp.function_name("zz_unmatched_route")
@bp.route(
    route="{*path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    auth_level=ANONYMOUS,
)
@guarded
def unmatched_route(req: func.HttpRequest) -> func.HttpResponse:
    if not (req.route_params.get("path") or "").strip("/") and req.method in ("GET", "HEAD"):
        return page(req)
    return fallback.api_answer(req) or not_found_page(req)
