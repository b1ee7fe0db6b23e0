"""Small shared base for the stand-in HTTP servers.

Runs a stdlib ThreadingHTTPServer on 127.0.0.1 (free port) in a daemon
thread, applies global latency and the FaultPlan to every request, keeps
request counters, and turns a subclass's `handle(Request) -> Response` into
bytes on the wire. Subclasses only deal with data, never with sockets.

Streamed bodies: a `Response` whose body is an iterable of bytes (a generator,
say) is written chunk by chunk as the iterable yields, never joined in memory.
With `Response.content_length` set, the answer carries that Content-Length (as
Azure Blob Storage does) and the chunks are written raw; if the iterable then
yields fewer or more bytes than announced, the connection is closed after the
body (the framing is broken, so it cannot be reused). Without it, the answer
uses `Transfer-Encoding: chunked`, one HTTP chunk per yielded piece. Every
piece goes to the socket as soon as it is yielded (the handler's wfile is
unbuffered), so a generator that sleeps between pieces really drips. A HEAD goes to `handle`
as such and gets the headers a GET would get, without the body.
"""

from __future__ import annotations

import collections
import json
import random
import re
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .faults import Fault, FaultPlan

_ID_SEGMENT = re.compile(r"/[0-9a-fA-F-]*\d[0-9a-fA-F-]*(?=/|$)")


def route_kind(path: str) -> str:
    """Collapse id-like segments so counters stay small (500k distinct ids)."""
    return _ID_SEGMENT.sub("/:id", path)


class LoggedRequest(NamedTuple):
    method: str
    path: str
    query: dict


@dataclass
class Request:
    method: str
    path: str
    query: dict  # last value wins, like Rails/Flask do for repeated keys
    headers: Any  # email.message.Message: case-insensitive .get()
    body: bytes = b""
    fault: Fault | None = None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    # dict/list -> JSON; str/bytes sent as is; any other iterable of bytes is streamed
    body: Any = None
    headers: dict = field(default_factory=dict)
    content_type: str | None = None
    # Only for a streamed body: the Content-Length to announce; None -> chunked.
    content_length: int | None = None


def is_streamed(body: Any) -> bool:
    """A body the server writes piece by piece instead of encoding it first."""
    return (
        body is not None
        and not isinstance(body, (dict, list, str, bytes, bytearray))
        and isinstance(body, Iterable)
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms stalls

    def log_message(self, *args):  # silence stderr noise during tests/benchmarks
        pass

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def do_HEAD(self):
        """The stand-in answers a HEAD as it would (req.method "HEAD"); only the headers go out."""
        self._serve(head=True)

    def _serve(self, head=False):
        standin: StandInServer = self.server.standin
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        standin._record(self.command, parts.path, query)
        # `latency` is the time to the answer, the stand-in's own work included (as for a
        # remote server): the work below runs inside it, so handler threads that queue for the
        # GIL don't stretch every round trip past the latency the caller asked for.
        answer_at = time.monotonic() + standin.latency

        fault = standin.faults.match(self.command, self.path)
        if fault is not None:
            standin._sleep(answer_at - time.monotonic())
            if fault.kind == "drop":
                return self._drop()
            if fault.kind == "timeout":  # hold the request, then hang up unanswered
                standin._sleep(fault.delay)
                return self._drop()
            if fault.kind == "slow":
                standin._sleep(fault.delay)
            if fault.kind == "status":
                body_ = (
                    fault.body
                    if fault.body is not None
                    else standin.error_body(fault.status, f"Injected fault: HTTP {fault.status}")
                )
                headers = (
                    {"Retry-After": _fmt_seconds(fault.retry_after)} if fault.retry_after is not None else {}
                )
                resp = Response(fault.status, body_, headers)
                return self._send(resp, *self._encode(resp), head=head)

        req = Request(self.command, parts.path, query, self.headers, body, fault)
        try:
            resp = standin.handle(req)
            payload = self._encode(resp)
        except Exception as exc:  # a stand-in bug must show up as a 500, not a hung client
            resp = Response(500, standin.error_body(500, f"stand-in error: {exc!r}"))
            payload = self._encode(resp)
        standin._sleep(answer_at - time.monotonic())
        if fault is not None and fault.kind == "accept_then_hang":
            # The work is done (e.g. the ML task exists) but the caller never hears back.
            standin._sleep(fault.delay)
            return self._drop()
        self._send(resp, *payload, head=head)

    def _drop(self):
        self.close_connection = True  # closing without writing: client sees a reset/EOF

    def _encode(self, resp: Response) -> tuple[Any, str | None]:
        """The response's body bytes (or the iterable to stream) and content type."""
        body = resp.body
        ctype = resp.content_type
        if is_streamed(body):
            return body, ctype
        if isinstance(body, (dict, list)):
            return json.dumps(body).encode("utf-8"), ctype or self.server.standin.json_content_type  # type: ignore[attr-defined]
        if isinstance(body, str):
            return body.encode("utf-8"), ctype or "text/html; charset=utf-8"
        return (body or b""), ctype

    def _send(self, resp: Response, body: Any, ctype: str | None, head: bool = False):
        streamed = is_streamed(body)
        try:
            self.send_response(resp.status)
            if ctype:
                self.send_header("Content-Type", ctype)
            if not streamed:
                self.send_header("Content-Length", str(len(body)))
            elif resp.content_length is not None:
                self.send_header("Content-Length", str(resp.content_length))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:  # the headers a GET would get, and no body
                return
            if streamed:
                self._stream(body, resp.content_length)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception:  # the generator failed mid-body: the client must see a cut, not a hang
            self.close_connection = True
        finally:
            close = getattr(body, "close", None)
            if streamed and close is not None:
                close()  # run the generator's cleanup even when the client went away

    def _stream(self, pieces: Iterable[bytes], content_length: int | None) -> None:
        chunked = content_length is None
        sent = 0
        for piece in pieces:
            if not piece:
                continue  # an empty HTTP chunk would end a chunked body early
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        elif sent != content_length:
            self.close_connection = True  # short or long body: the connection cannot be reused


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def untraced(target: Any) -> Any:
    """`target` for a stand-in's thread, dropping any tracer the process set for new threads.
    A stand-in is not the code under test, and under `make test`'s coverage tracer every line
    of Python 3.11 runs about twice as slowly: the ML stand-in writes detections files of
    100 MB for the tests of scale, and each stand-in's accept loop wakes 100 times a second.
    Every thread a stand-in starts runs this way. (A debugger stepping into a stand-in needs
    this removed.) The local host's own loops do the same (devtools/localhost/lifecycle.py)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        sys.settrace(None)
        return target(*args, **kwargs)

    return run


class _UntracedServer(ThreadingHTTPServer):
    """A stand-in answers on untraced threads (`untraced`)."""

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        untraced(super().process_request_thread)(request, client_address)


class StandInServer:
    """Base class: subclasses implement `handle` and may override `error_body`."""

    json_content_type = "application/json"

    def __init__(self, latency: float = 0.0, seed: int = 0, log_size: int = 10_000):
        self.faults = FaultPlan(random.Random(seed), latency)
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._log: collections.deque = collections.deque(maxlen=log_size)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self):
        httpd = _UntracedServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.request_queue_size = 256  # benchmarks open many connections at once
        httpd.server_bind()
        httpd.server_activate()
        httpd.standin = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=untraced(httpd.serve_forever),
            kwargs={"poll_interval": 0.01},  # stop() waits for its next check
            name=f"{type(self).__name__}-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in latency/faults
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("stand-in not started")
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root_url

    @property
    def latency(self) -> float:
        return self.faults.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.faults.latency = value

    # -- counters --------------------------------------------------------
    def _record(self, method: str, path: str, query: dict) -> None:
        with self._lock:
            self._counts[route_kind(path)] += 1
            self._log.append(LoggedRequest(method, path, query))

    @property
    def requests(self) -> list:
        """The most recent requests (bounded log) as (method, path, query)."""
        with self._lock:
            return list(self._log)

    @property
    def counts(self) -> collections.Counter:
        """Request counts by route kind, ids collapsed to ':id'."""
        with self._lock:
            return collections.Counter(self._counts)

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def count(self, path_prefix: str = "/") -> int:
        """Requests whose path is `path_prefix` or below it (segment-aware)."""
        prefix = route_kind(path_prefix).rstrip("/")
        with self._lock:
            return sum(
                n
                for kind, n in self._counts.items()
                if not prefix or kind == prefix or kind.startswith(prefix + "/")
            )

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    # -- helpers for subclasses -----------------------------------------
    def _sleep(self, seconds: float) -> None:
        if seconds and seconds > 0:
            self._stopping.wait(seconds)

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def handle(self, req: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError
