"""HTTP routes of every feature, registered one way, so the site-wide catch-all
(shared/fallback.py) can tell a wrong method (405 with `Allow`) from an unknown path (404)
from the routes themselves, never from a second list.

The Functions host tries routes in the alphabetical order of function names, not by ASP.NET
route precedence (Azure/azure-functions-host#9876): routes must not overlap, and the catch-all's
function name sorts last (tests/unit/test_bindings.py pins both).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.responses import INTERNAL_ERROR, error_response, secure
from shared.telemetry import started

ANONYMOUS = func.AuthLevel.ANONYMOUS  # the Panoptes bearer token is the credential
HttpFunction = Callable[[func.HttpRequest], func.HttpResponse]
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Route:
    template: str  # as registered: "api/exports/{export_id}", "" for the site's root
    methods: tuple[str, ...]

    def matches(self, path: str) -> bool:
        """Whether a path (without leading/trailing '/') has this route's shape; `{name}` is one
        segment, `{*name}` the rest of the path."""
        return _pattern(self.template).fullmatch(path) is not None


ROUTES: list[Route] = []


def http_route(bp: func.Blueprint, template: str, methods: list[str]) -> Callable[..., Any]:
    """Register an anonymous HTTP route on `bp` and remember its shape. A GET route also takes
    HEAD (health checks use it): the host sends a HEAD answer's headers without its body.
    Telemetry starts with the first invocation of any route (shared/telemetry.py)."""
    methods = [*methods, "HEAD"] if "GET" in methods and "HEAD" not in methods else list(methods)
    ROUTES.append(Route(template, tuple(methods)))
    register = bp.route(route=template, methods=methods, auth_level=ANONYMOUS)
    return lambda function: register(guarded(function))


def guarded(function: HttpFunction) -> HttpFunction:
    """Every HTTP function's answers pass here: whatever it returns gets the security headers, and
    whatever it raises becomes the contract's JSON 500 (never the host's bare error, never a
    traceback). The wrapper keeps the function's name and its `req` parameter, which the host's
    indexing reads."""
    if list(inspect.signature(function).parameters) != ["req"]:
        raise TypeError(f"{function.__name__}: an HTTP function takes exactly one parameter, `req`")

    run = started(function)  # telemetry starts with the first invocation (shared/telemetry.py)

    @functools.wraps(function)
    def answer(req: func.HttpRequest) -> func.HttpResponse:
        try:
            response = run(req)
        except Exception:
            log.exception("%s failed", function.__name__)
            response = error_response(INTERNAL_ERROR)
        return secure(response)

    return answer


def allowed_methods(path: str) -> list[str]:
    """The methods the registered routes take on `path` (empty: no route has its shape)."""
    return sorted({m for route in ROUTES if route.matches(path) for m in route.methods})


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for part in template.strip("/").split("/") if template.strip("/") else []:
        if part.startswith("{*"):
            parts.append(".*")
        elif part.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(part))
    return re.compile("/".join(parts), re.IGNORECASE)
