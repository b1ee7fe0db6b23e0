"""Route templates and the host's matching order (devtools/localhost/routing.py), without a server."""

import azure.functions as func
import pytest

from devtools.host import LocalHost
from devtools.localhost.routing import Route, RouteTable, RouteTemplateError

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover


@pytest.mark.parametrize(
    "template, path, expected",
    [
        ("a/{x}", "a/b", {"x": "b"}),
        ("a/{x}", "a", None),
        ("a/{x}", "a/b/c", None),
        ("A/b", "a/B", {}),  # literals match case-insensitively
        ("a/{x?}/{y?}", "a", {}),
        ("a/{x?}/{y?}", "a/1", {"x": "1"}),
        ("a/{x?}", "a/b/c", None),
        ("a/{*rest}", "a/b/c.txt", {"rest": "b/c.txt"}),
        ("a/{*rest}", "a", {}),  # an empty catch-all matches, and has no value
        ("{*path}", "", {}),  # the site root, with routePrefix ""
        ("{*path}", "api/x", {"path": "api/x"}),
        ("", "", {}),
        ("", "a", None),
    ],
)
def test_route_templates(template, path, expected):
    parts = path.split("/") if path else []
    assert Route("f", template).match(parts) == expected


@pytest.mark.parametrize(
    "template, message",
    [
        ("items/{id:int}", "constraint"),
        ("items/{id:regex(^\\d+$)}", "constraint"),
        ("items/{page=1}", "default value"),
        ("items/{id:int=5}", "constraint"),
        ("items/x{id}", "mixes literal text and parameters"),
        ("items/{id", "mixes literal text and parameters"),
        ("{*rest}/tail", "catch-all parameter must be the last segment"),
        ("files/{*rest?}", "catch-all parameter cannot be optional"),
        ("a//b", "empty segment"),
        ("a/{}", "bad route parameter"),
    ],
)
def test_unsupported_templates_are_refused(template, message):
    with pytest.raises(RouteTemplateError, match=message):
        Route("f", template)


def _table(prefix, *routes):
    return RouteTable(prefix, [Route(name, template, methods) for name, template, methods in routes])


def test_routes_are_tried_by_function_name_not_by_specificity():
    # Azure/azure-functions-host#9876: a catch-all whose name sorts first shadows everything.
    table = _table("api", ("b_item", "items/{id}", ["GET"]), ("a_everything", "{*path}", None))
    assert [r.name for r in table.routes] == ["a_everything", "b_item"]
    assert table.find("GET", "/api/items/1").route.name == "a_everything"
    fixed = _table("api", ("b_item", "items/{id}", ["GET"]), ("zz_everything", "{*path}", None))
    assert fixed.find("GET", "/api/items/1").route.name == "b_item"


def test_method_mismatch_falls_through_and_reports_allowed_methods():
    table = _table("api", ("a_get", "x/{id}", ["GET"]), ("b_delete", "x/{name}", ["DELETE"]))
    route, values, allowed = table.find("DELETE", "/api/x/1")
    assert route.name == "b_delete" and values == {"name": "1"} and allowed == set()
    route, values, allowed = table.find("POST", "/api/x/1")
    assert route is None and allowed == {"GET", "DELETE"}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/api/items/7", ("item", {"id": "7"})),
        ("/API/items/7", ("item", {"id": "7"})),  # the prefix is case-insensitive too
        ("/api/items/a%2Fb", ("item", {"id": "a/b"})),  # decoded after splitting
        ("/api", None),
        ("/apix/items/7", None),
        ("/items/7", None),
        ("/", None),
    ],
)
def test_api_prefix(path, expected):
    table = _table("api", ("item", "items/{id}", None))
    route, values, _ = table.find("GET", path)
    assert ((route.name, values) if route else None) == expected


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/", ("zz_site", {})),
        ("", ("zz_site", {})),
        ("/api/items/7", ("api_item", {"id": "7"})),
        ("/api/items/7/", ("api_item", {"id": "7"})),
        ("/api/items", ("zz_site", {"path": "api/items"})),
        ("/static/css/site.css", ("static_file", {"file": "css/site.css"})),
        ("/static", ("static_file", {})),
        ("/subject-assistant/12", ("zz_site", {"path": "subject-assistant/12"})),
    ],
)
def test_empty_prefix_serves_the_root_and_api_routes(path, expected):
    table = _table(
        "",
        ("api_item", "api/items/{id}", ["GET"]),
        ("static_file", "static/{*file}", ["GET"]),
        ("zz_site", "{*path}", ["GET", "HEAD"]),
    )
    route, values, _ = table.find("GET", path)
    assert (route.name, values) == expected


def test_describe_lists_routes_in_matching_order_under_the_prefix():
    routes = (("zz_site", "{*path}", ["GET"]), ("api_item", "api/items/{id}", None))
    assert _table("", *routes).describe() == [
        "ANY          /api/items/{id}  (api_item)",
        "GET          /{*path}  (zz_site)",
    ]
    assert _table("api", *routes).describe()[0] == "ANY          /api/api/items/{id}  (api_item)"


def test_local_host_refuses_a_constrained_route_before_starting():
    bp = func.Blueprint()

    @bp.route(route="orders/{id:int}", methods=["GET"])
    def order(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never")

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    with pytest.raises(
        ValueError,
        match=r"order: route 'orders/\{id:int\}': parameter \{id:int\} "
        "has a constraint",
    ):
        LocalHost(app, host_json=None)
