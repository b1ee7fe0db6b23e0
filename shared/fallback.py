"""What no route matched gets a clear answer, never the host's empty one: under /api/ the
contract's JSON error (404 not_found, or 405 method_not_allowed with `Allow`); anywhere else a
small HTML 404 page pointing home. The site's catch-all route (page/blueprint.py) calls it."""

from __future__ import annotations

import html

import azure.functions as func

from shared.responses import ApiError, error_response
from shared.routing import allowed_methods

API_PREFIX = "api/"
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page not found</title></head>
<body><main><h1>Page not found</h1><p>There is no page at {path}.</p>
<p><a href="/">Go to the Subject Assistant export page</a></p></main></body></html>
"""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def not_found(req: func.HttpRequest) -> func.HttpResponse:
    path = (req.route_params.get("path") or "").strip("/")
    allowed = allowed_methods(path)
    if allowed:
        return error_response(
            ApiError(
                405,
                "method_not_allowed",
                f"{req.method} is not allowed on this route; it takes {', '.join(allowed)}.",
                {"Allow": ", ".join(allowed)},
            )
        )
    if path.lower() == "api" or path.lower().startswith(API_PREFIX):
        return error_response(
            ApiError(
                404, "not_found", "There is no such route. See /api/openapi.json for the export API's routes."
            )
        )
    page = NOT_FOUND_PAGE.format(path=html.escape("/" + path))
    return func.HttpResponse(
        page, status_code=404, mimetype="text/html", charset="utf-8", headers=SECURITY_HEADERS
    )
