"""HTTP routing as the Functions host does it: route templates under `routePrefix`, tried in the
alphabetical order of function names.

The host does not order routes by ASP.NET's template precedence: it registers them by function
name and takes the first whose template and methods match (Azure/azure-functions-host#9876,
azure-webjobs-sdk-extensions#842). Doing the same means an overlap that misroutes in Azure
misroutes here too, which is why a catch-all's function name must sort last. A path that matches
a route but not its methods falls through to the next route; when none takes it, the methods of
the routes that matched the path are reported for a 405.

Only the template syntax the app uses is supported: literal segments (matched case-insensitively),
`{name}`, optional `{name?}` and catch-all `{*name}` (last segment; it also matches an empty
rest, so a `{*path}` with `routePrefix: ""` serves `/`). Constraints (`{id:int}`) and defaults (`{page=1}`)
are refused when the host is built rather than ignored: ignoring one would match requests the
platform sends elsewhere, and a full ASP.NET constraint engine is more than this app needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

# A whole-segment parameter: `{name}`, `{name?}` or `{*name}`.
_PARAMETER = re.compile(r"\{(?P<star>\*?)(?P<name>\w+)(?P<optional>\??)\}")


class RouteTemplateError(ValueError):
    """A route template uses syntax the local host does not route (and won't guess at)."""


@dataclass(frozen=True)
class Segment:
    """One `/`-separated piece of a template: a literal, or a named parameter."""

    literal: str | None = None
    name: str = ""
    optional: bool = False
    catch_all: bool = False

    @classmethod
    def parse(cls, text: str, template: str) -> Segment:
        if "{" not in text and "}" not in text:
            if not text:
                raise RouteTemplateError(f"route {template!r} has an empty segment ('//')")
            return cls(literal=text)
        m = _PARAMETER.fullmatch(text)
        if m is None:
            raise RouteTemplateError(f"route {template!r}: {_why_unsupported(text)}")
        if m["star"] and m["optional"]:
            raise RouteTemplateError(f"route {template!r}: a catch-all parameter cannot be optional")
        return cls(name=m["name"], optional=bool(m["optional"]), catch_all=bool(m["star"]))


def _why_unsupported(text: str) -> str:
    """The error for a segment `_PARAMETER` refused, naming what the local host leaves out."""
    if not (text.startswith("{") and text.endswith("}") and text.count("{") == 1):
        return f"segment {text!r} mixes literal text and parameters (not supported)"
    body = text[1:-1]
    unsupported = "a constraint" if ":" in body else "a default value" if "=" in body else None
    if unsupported is None:
        return f"bad route parameter {text}"
    return (
        f"parameter {text} has {unsupported}; the local host routes only plain {{name}}, "
        "{name?} and {*name} parameters and would not match requests as Azure does"
    )


class Route:
    """An HTTP function's template and methods. `target` is what the server invokes."""

    def __init__(self, name: str, template: str, methods: Iterable[str] | None = None, target: Any = None):
        self.name = name  # the function name: it decides the order routes are tried in
        self.template = template.strip("/")
        self.methods = frozenset(m.upper() for m in methods) if methods else None  # None: any
        self.target = target
        self.segments = (
            tuple(Segment.parse(s, self.template) for s in self.template.split("/")) if self.template else ()
        )
        if any(s.catch_all for s in self.segments[:-1]):
            raise RouteTemplateError(
                f"route {self.template!r}: a catch-all parameter must be the last segment"
            )

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Route values when the (decoded) path segments match this template, else None."""
        values: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                rest = "/".join(parts[i:])
                if rest:  # an empty catch-all has no value, so it is left out of the route values
                    values[seg.name] = rest
                return values
            if i >= len(parts):  # the path ran out: only optional parameters may be left
                if not seg.optional:
                    return None
                continue
            part = parts[i]
            if seg.literal is not None:
                if part.lower() != seg.literal.lower():
                    return None
            elif not part:
                return None
            else:
                values[seg.name] = part
        return values if len(parts) <= len(self.segments) else None


class RouteMatch(NamedTuple):
    route: Route | None
    values: dict[str, str]
    allowed: set[str]  # when route is None: the methods of routes that matched the path (405)


class RouteTable:
    """The routes of an app under one prefix, in the order the host tries them."""

    def __init__(self, prefix: str, routes: Iterable[Route]):
        self.prefix = prefix.strip("/")
        self.routes = sorted(routes, key=lambda r: r.name.lower())

    def find(self, method: str, path: str) -> RouteMatch:
        """The first route (by function name) that takes `method` on `path` (no query string)."""
        parts = self._parts(path)
        if parts is None:
            return RouteMatch(None, {}, set())
        allowed: set[str] = set()
        for route in self.routes:
            values = route.match(parts)
            if values is None:
                continue
            if route.methods is None or method.upper() in route.methods:
                return RouteMatch(route, values, set())
            allowed |= route.methods
        return RouteMatch(None, {}, allowed)

    def _parts(self, path: str) -> list[str] | None:
        """The decoded segments of `path` after the prefix; None when outside the prefix."""
        if self.prefix:
            prefix = f"/{self.prefix}".lower()
            if not (path.lower() == prefix or path.lower().startswith(prefix + "/")):
                return None
            path = path[len(prefix) :]
        rest = path.strip("/")
        return [unquote(p) for p in rest.split("/")] if rest else []

    def url_template(self, route: Route) -> str:
        return "/" + "/".join(filter(None, (self.prefix, route.template)))

    def describe(self) -> list[str]:
        """One line per route, in matching order: methods, URL template and function name."""
        return [
            f"{','.join(sorted(r.methods)) if r.methods else 'ANY':<12} {self.url_template(r)}  ({r.name})"
            for r in self.routes
        ]
