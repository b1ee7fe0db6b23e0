"""The HTTP front end: a threaded server that turns each request into a `func.HttpRequest`,
runs the function the router picks and writes back its `HttpResponse`.

Around the function it behaves as the platform does, so the app's own HTTP code is all the app
needs: JSON 404/405 when no route takes a request and JSON 500 when a function fails (never a
traceback), CORS for the listed origins (preflights answered before any function runs, as App
Service's CORS layer does), and HEAD answered with the headers of the function's response,
Content-Length included, and no body. HEAD is routed like any other method: a function must list
it, because the host does not send HEAD to GET-only functions (Azure/azure-functions-host#11625).

Request bodies: a Content-Length above FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (the host's own setting,
100 MB by default) is refused with 413 before anything reads it, as the host's Kestrel does. Below
it, the body is read only when the function asks for it (`get_body`), so a test can see a function
answer without reading a body it refused; the connection is then closed, its body unread. (The
real host reads the body before calling the worker: in Azure the limit is what bounds it.)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devtools.localhost.routing import RouteTable

log = logging.getLogger("devtools.host")

Headers = list[tuple[str, str]]
Reply = tuple[int, bytes, Headers]
# Runs a route's target with the request and returns what the function returned.
Invoke = Callable[[Any, func.HttpRequest], Any]

_PREFLIGHT_HEADERS = ("Authorization", "Content-Type")
LINGER_SECONDS, LINGER_BYTES = 2.0, 8 * 1024 * 1024
DEFAULT_BODY_LIMIT = 104_857_600  # the host's FUNCTIONS_REQUEST_BODY_SIZE_LIMIT default (100 MB)


def body_limit() -> int:
    raw = os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_BODY_LIMIT


class LazyBodyRequest(func.HttpRequest):
    """An HttpRequest whose body is read from the connection the first time it is asked for."""

    def __init__(self, *args: Any, read_body: Callable[[], bytes], **kwargs: Any):
        super().__init__(*args, body=b"", **kwargs)
        self._read_body = read_body
        self._body: bytes | None = None

    @property
    def body_was_read(self) -> bool:
        return self._body is not None

    def get_body(self) -> bytes:
        if self._body is None:
            self._body = self._read_body()
        return self._body

    def get_json(self) -> Any:
        return json.loads(self.get_body())


_PREFLIGHT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Cors:
    """Platform CORS for a list of allowed origins: other origins get no CORS headers at all."""

    def __init__(self, origins: Iterable[str]):
        self.origins = frozenset(o.rstrip("/") for o in origins)

    def headers_for(self, origin: str | None) -> Headers:
        """Headers for any response to `origin` (errors included, so the browser can read them)."""
        origin = (origin or "").rstrip("/")
        if origin and origin in self.origins:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return []

    @staticmethod
    def preflight(requested_method: str, requested_headers: str) -> Headers:
        """What the platform allows a preflight: its usual methods and headers plus those asked."""
        asked = filter(None, (h.strip() for h in requested_headers.split(",")))
        headers = dict.fromkeys([*_PREFLIGHT_HEADERS, *asked])
        methods = dict.fromkeys([*_PREFLIGHT_METHODS, requested_method.upper()])
        return [
            ("Access-Control-Allow-Methods", ", ".join(methods)),
            ("Access-Control-Allow-Headers", ", ".join(headers)),
            ("Access-Control-Max-Age", "3600"),
        ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer was written (a refused upload that stops
        sending, Ctrl-C in curl) is the client's business, as on the platform: one log line, not
        a traceback on stderr. Anything else is still printed in full."""
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            log.info("client %s:%s went away before its answer was written", *client_address[:2])
            return
        super().handle_error(request, client_address)


def make_server(port: int, routes: RouteTable, invoke: Invoke, cors: Cors) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:`port` (0 picks a free port); run it with `serve_forever()`."""
    return _Server(("127.0.0.1", port), _handler_for(routes, invoke, cors))


def json_error(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, body, [("Content-Type", "application/json; charset=utf-8")]


def _to_reply(function_name: str, response: Any) -> Reply:
    """Status, body and headers of what a function returned, as the worker converts them."""
    if isinstance(response, (str, bytes)):
        response = func.HttpResponse(response)
    if not isinstance(response, func.HttpResponse):
        log.error("%s returned %s, not an HttpResponse", function_name, type(response).__name__)
        return json_error(500, "internal_error", "The function returned an invalid response.")
    headers = list(response.headers.items())
    if not any(k.lower() == "content-type" for k, _ in headers):
        mime = response.mimetype
        charset = f"; charset={response.charset}" if mime.startswith("text/") else ""
        headers.append(("Content-Type", mime + charset))
    return response.status_code, response.get_body(), headers


def _handler_for(routes: RouteTable, invoke: Invoke, cors: Cors) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
        # Headers and body go out in separate writes: without TCP_NODELAY the client's delayed
        # ACK stalls every response by ~40 ms.
        disable_nagle_algorithm = True

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # any method, including custom ones, goes to dispatch
                return self._dispatch
            raise AttributeError(name)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s - " + fmt, self.address_string(), *args)

        def _dispatch(self) -> None:
            allow_origin = cors.headers_for(self.headers.get("Origin"))
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit() or int(length) > body_limit():
                self.close_connection = True  # the body is never read
                status, payload, headers = json_error(
                    413, "body_too_large", "The request body is larger than the host accepts."
                )
                self._send(status, payload, headers + [("Connection", "close")] + allow_origin)
                self._linger()
                return
            requested = self.headers.get("Access-Control-Request-Method")
            if allow_origin and self.command == "OPTIONS" and requested:
                # Answered by the platform's CORS layer before any function runs.
                self._read_body()
                asked = self.headers.get("Access-Control-Request-Headers", "")
                self._send(204, b"", allow_origin + Cors.preflight(requested, asked))
                return
            status, payload, headers = self._respond()
            self._send(status, payload, headers + allow_origin)
            if self.close_connection:
                self._linger()

        def _linger(self) -> None:
            """After answering without reading a body: stop sending, then discard (never buffer)
            what the client still sends for a moment, so a client that writes its whole body
            before reading can still read the answer instead of a reset connection."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(LINGER_SECONDS)
                discarded = 0
                while discarded < LINGER_BYTES and (chunk := self.connection.recv(65536)):
                    discarded += len(chunk)
            except OSError:
                pass

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _respond(self) -> Reply:
            split = urlsplit(self.path)
            route, values, allowed = routes.find(self.command, split.path)
            if route is None:
                self._read_body()  # answered by the host: the body is the host's to consume
            if route is None and allowed:
                status, payload, headers = json_error(
                    405, "method_not_allowed", f"{self.command} is not allowed on {split.path}"
                )
                return status, payload, headers + [("Allow", ", ".join(sorted(allowed)))]
            if route is None:
                return json_error(404, "not_found", f"No function matches {self.command} {split.path}")
            request = self._request(split, values)
            try:
                response = invoke(route.target, request)
            except Exception:  # logged with its traceback by the invoker; never echoed to the client
                response = None
            if not request.body_was_read and self._has_body():
                self.close_connection = True  # refused unread: this connection cannot carry on
            if response is None:
                return json_error(500, "internal_error", "The function failed; see the host log.")
            status, payload, headers = _to_reply(route.name, response)
            if self.close_connection:
                headers = headers + [("Connection", "close")]
            return status, payload, headers

        def _has_body(self) -> bool:
            return "chunked" in self.headers.get("Transfer-Encoding", "").lower() or (
                self.headers.get("Content-Length") or "0"
            ) not in ("", "0")

        def _request(self, split: Any, values: dict[str, str]) -> LazyBodyRequest:
            headers: dict[str, str] = {}
            for key, value in self.headers.items():  # repeated headers are joined, as in ASP.NET
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            params: dict[str, str] = {}
            for key, value in parse_qsl(split.query, keep_blank_values=True):
                params.setdefault(key, value)  # a repeated parameter keeps its first value
            url = f"http://{self.headers.get('Host') or '127.0.0.1'}{self.path}"
            return LazyBodyRequest(
                self.command,
                url,
                headers=headers,
                params=params,
                route_params=values,
                read_body=self._read_body,
            )

        def _send(self, status: int, body: bytes, headers: Headers) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(key, value)
            # HEAD gets the Content-Length of the body it would have had, and no body.
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

    return Handler
