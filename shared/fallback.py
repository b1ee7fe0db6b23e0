"""What no route matched gets a clear answer, never the host's empty one. Under /api/ it is the
contract's JSON error (404 not_found, or 405 method_not_allowed with `Allow`); elsewhere the
site's catch-all (page/blueprint.py) answers with its own page. The security headers are added
to both by shared/routing.py, like every other answer."""

from __future__ import annotations

import azure.functions as func

from shared.errors import CommonError
from shared.responses import ApiError, error_response
from shared.routing import allowed_methods

API_PREFIX = "api/"


def api_answer(req: func.HttpRequest) -> func.HttpResponse | None:
    """The JSON answer for a path no route took: 405 when a route has its shape, 404 under /api/;
    None when the path is the site's to answer (not under /api/ and no route's shape)."""
    path = (req.route_params.get("path") or "").strip("/")
    allowed = allowed_methods(path)
    if allowed:
        return error_response(
            ApiError(
                405,
                CommonError.METHOD_NOT_ALLOWED,
                f"{req.method} is not allowed on this route; it takes {', '.join(allowed)}.",
                {"Allow": ", ".join(allowed)},
            )
        )
    if path.lower() == "api" or path.lower().startswith(API_PREFIX):
        return error_response(
            ApiError(
                404,
                CommonError.NOT_FOUND,
                "There is no such route. See /api/openapi.json for the export API's routes.",
            )
        )
    return None
