"""A v2-model app for host.json `routePrefix: ""`, shaped like the function app: API routes
written as `api/...`, static files under a catch-all, and the site's own catch-all (whose function
name sorts last) serving the page at `/` and answering every other path."""

import json

import azure.functions as func

bp = func.Blueprint()


def _json(payload, status=200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


@bp.route(route="api/items/{id}", methods=["GET"])
def api_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"fn": "api_item", "route": dict(req.route_params)})


@bp.route(route="static/{*file}", methods=["GET", "HEAD"])
def static_file(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"/* {req.route_params.get('file')} */", mimetype="text/css")


@bp.function_name("zz_site")
@bp.route(route="{*path}", methods=["GET", "HEAD", "POST"])
def site(req: func.HttpRequest) -> func.HttpResponse:
    if "path" not in req.route_params:  # the root: the page itself
        return func.HttpResponse(
            "<!doctype html><title>Home</title>",
            mimetype="text/html",
            headers={"Cache-Control": "no-cache", "X-Method": req.method},
        )
    return _json({"fn": "zz_site", "route": dict(req.route_params)}, status=404)


app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)
