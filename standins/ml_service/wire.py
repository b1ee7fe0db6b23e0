"""How the deployed service's answers look on the wire: Flask 2.0's jsonify and the service's
make_error() (server_utils.py), Werkzeug 2.0's HTML error pages, and Azure Blob Storage's XML
errors for the results blob."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..server import Response
from .real import utc_now

_WERKZEUG_PAGES = {
    404: (
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL "
        "manually please check your spelling and try again.",
    ),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    500: (
        "Internal Server Error",
        "The server encountered an internal error and was unable to "
        "complete your request. Either the server is overloaded or "
        "there is an error in the application.",
    ),
}


def flask_json(status: int, obj: Any) -> Response:
    """Flask 2.0 jsonify (and a view's returned dict): sorted keys, compact, trailing newline."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"
    return Response(status, text.encode("utf-8"), content_type="application/json")


def error(status: int, message: str) -> Response:
    """server_utils.make_error()."""
    return flask_json(status, {"error": message})


def flask_page(status: int, allow: str | None = None) -> Response:
    """Werkzeug's HTML page for 404, 405 (with Allow) and 500 (a view that raised)."""
    name, description = _WERKZEUG_PAGES[status]
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
        f"<title>{status} {name}</title>\n<h1>{name}</h1>\n<p>{description}</p>\n"
    )
    return Response(status, page, {"Allow": allow} if allow else {}, "text/html; charset=utf-8")


def blob_error(status: int, code: str, message: str) -> Response:
    """Azure Blob Storage's XML error body."""
    body = (
        f'\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}\n'
        f"RequestId:{uuid.uuid4()}\nTime:{utc_now()[:-1]}0Z</Message></Error>"
    )
    return Response(status, body.encode("utf-8"), {"x-ms-error-code": code}, "application/xml")
