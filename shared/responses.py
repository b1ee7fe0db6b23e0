"""Answers to HTTP callers: JSON bodies and the contract's error shape (calls *out* to other
services are shared/outbound.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import azure.functions as func

from shared.errors import CommonError

JSON = "application/json"

# On every answer, whatever its route, status or type (CONTRACT.md "Answers, whatever they are");
# `secure` adds them to each response as it leaves a function (shared/routing.py).
COMMON_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
}
# JSON is never a document: it may load nothing and be framed by nobody. HTML sets its own policy.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


class ApiError(Exception):
    """An error answered to the caller as {"error": {"code", "message"}} with an HTTP status. The
    code is a declared one (a StrEnum: shared/errors.py, or the feature's own)."""

    def __init__(self, status: int, code: StrEnum, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        mimetype=JSON,
        charset="utf-8",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_response(error: ApiError) -> func.HttpResponse:
    return json_response(
        {"error": {"code": error.code, "message": error.message}}, error.status, error.headers
    )


def secure(response: func.HttpResponse) -> func.HttpResponse:
    """The response with every security header it did not set itself (a page sets its own
    Content-Security-Policy; anything else gets the JSON one)."""
    for name, value in COMMON_SECURITY_HEADERS.items():
        if name not in response.headers:
            response.headers[name] = value
    if "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = JSON_CSP
    return response


INTERNAL_ERROR = ApiError(
    500,
    CommonError.INTERNAL_ERROR,
    "Something went wrong on our side. Please try again; nothing was changed if it fails again.",
)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent or malformed."""
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096 or any(c.isspace() for c in token):
        return None
    if not token.isascii() or not token.isprintable():
        return None
    return token
