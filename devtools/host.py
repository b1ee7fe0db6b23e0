"""A small local stand-in for the Azure Functions host, for Python v2-model apps.

`func` (Core Tools) cannot be installed everywhere, so this host runs a `FunctionApp` straight
from its binding metadata (`app.get_functions()`) against Azurite or real storage:

- httpTrigger: a threaded HTTP server under `/<routePrefix>/`, ASP.NET-style route templates
  and precedence, JSON 404/405/500 errors, and platform-style CORS for listed origins.
- queueTrigger: a poller per queue following host.json `extensions.queues` (base64 or none
  message encoding, batchSize + newBatchThreshold concurrency, visibilityTimeout on failure,
  `<queue>-poison` after maxDequeueCount), with the real host's poison rules.
- timerTrigger: 6-field NCRONTAB (or hh:mm:ss) schedules in UTC, one invocation at a time.

The app reads its settings from `os.environ`, as it does on the platform: pass `env=` (applied
on start, restored on stop) or set the environment before starting. Only the trigger binding
(plus `context`) is passed to functions; other input/output bindings are not emulated.

    python -m devtools.host --port 7071 [--app function_app] [--cors http://localhost:3000]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import datetime as dt
import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage  # the worker's concrete classes, not the ABCs
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from devtools import ncrontab

log = logging.getLogger("devtools.host")

# How long a received message stays invisible while its function runs; renewed at half-life.
_LEASE_SECONDS = 60.0
# A timer invocation that starts later than this after its occurrence is reported past due.
_PAST_DUE_GRACE = dt.timedelta(seconds=1)
_PREFLIGHT_HEADERS = ("Authorization", "Content-Type")
_PREFLIGHT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


# --- host.json -------------------------------------------------------------------------------

def _timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan string: "hh:mm:ss[.fff]" or "d.hh:mm:ss"."""
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(text).strip())
    if not m:
        raise ValueError(f"not a TimeSpan (hh:mm:ss): {text!r}")
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class _QueueOptions:
    """host.json `extensions.queues`, with the host's defaults for anything left out."""

    def __init__(self, raw: Mapping[str, Any]):
        self.encoding = str(raw.get("messageEncoding", "base64")).lower()
        if self.encoding not in ("base64", "none"):
            raise ValueError(f"queues.messageEncoding must be base64 or none, not {self.encoding!r}")
        self.batch_size = int(raw.get("batchSize", 16))
        self.new_batch_threshold = int(raw.get("newBatchThreshold", self.batch_size // 2))
        self.max_polling_interval = _timespan(raw.get("maxPollingInterval", "00:01:00"))
        self.visibility_timeout = _timespan(raw.get("visibilityTimeout", "00:00:00"))
        self.max_dequeue_count = int(raw.get("maxDequeueCount", 5))


def _load_host_json(path: str | os.PathLike | None) -> tuple[str, _QueueOptions]:
    raw: dict = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    extensions = raw.get("extensions", {})
    prefix = str(extensions.get("http", {}).get("routePrefix", "api")).strip("/")
    return prefix, _QueueOptions(extensions.get("queues", {}))


def _resolve(text: str) -> str:
    """Resolve %APP_SETTING% binding expressions from os.environ, failing as the host does."""
    def setting(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise KeyError(f"{m.group(0)} does not resolve to an app setting")
        return os.environ[m.group(1)]
    return re.sub(r"%([^%]+)%", setting, text)


# --- routing ---------------------------------------------------------------------------------

def _int_in(lo: int, hi: int) -> Callable[[str], bool]:
    return lambda v: bool(re.fullmatch(r"-?\d+", v)) and lo <= int(v) <= hi


def _parses(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
            return True
        except ValueError:
            return False
    return check


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _int_in(-2**31, 2**31 - 1), "long": _int_in(-2**63, 2**63 - 1),
    "bool": lambda v: v.lower() in ("true", "false"), "alpha": lambda v: v.isascii() and v.isalpha(),
    "guid": _parses(uuid.UUID), "datetime": _parses(dt.datetime.fromisoformat),
    "decimal": _parses(float), "double": _parses(float), "float": _parses(float),
}


def _constraint(spec: str) -> Callable[[str], bool]:
    name, _, arg = spec.partition("(")
    name, arg = name.strip().lower(), arg[:-1] if arg.endswith(")") else arg
    nums = [int(a) for a in arg.split(",")] if arg and name != "regex" else []
    if name in _SIMPLE_CONSTRAINTS:
        return _SIMPLE_CONSTRAINTS[name]
    if name == "regex":  # ASP.NET: unanchored, case-insensitive
        pattern = re.compile(arg, re.IGNORECASE)
        return lambda v: bool(pattern.search(v))
    bounds = {"min": lambda n: (n, 2**63), "max": lambda n: (-2**63, n), "range": lambda a, b: (a, b)}
    if name in bounds:
        return _int_in(*bounds[name](*nums))
    lengths = {"length": lambda a, b=None: (a, a if b is None else b),
               "minlength": lambda n: (n, 2**31), "maxlength": lambda n: (0, n)}
    if name in lengths:
        lo, hi = lengths[name](*nums)
        return lambda v: lo <= len(v) <= hi
    raise ValueError(f"unsupported route constraint {spec!r}")


def _split_constraints(text: str) -> tuple[list[str], str | None]:
    """Split ":c1:c2(x:y)=default" at top-level ':' and '=' (regex args may hold either)."""
    parts, default, depth, current = [], None, 0, ""
    for i, ch in enumerate(text):
        if ch == "=" and depth == 0:
            default = text[i + 1:]
            break
        if ch == ":" and depth == 0:
            if current:
                parts.append(current)
            current = ""
            continue
        depth += (ch == "(") - (ch == ")")
        current += ch
    if current:
        parts.append(current)
    return parts, default


class _Segment:
    def __init__(self, text: str):
        self.literal: str | None = None
        self.name, self.optional, self.catch_all, self.default = "", False, False, None
        self.constraints: list[Callable[[str], bool]] = []
        if not (text.startswith("{") and text.endswith("}")):
            if "{" in text or "}" in text:
                raise ValueError(f"unsupported route segment {text!r} (mixed literal and parameter)")
            self.literal = text
            return
        body = text[1:-1]
        self.catch_all = body.startswith("*")
        body = body.lstrip("*")
        if body.endswith("?"):
            self.optional, body = True, body[:-1]
        m = re.match(r"\w+", body)
        if not m:
            raise ValueError(f"bad route parameter {text!r}")
        self.name = m.group(0)
        specs, self.default = _split_constraints(body[m.end():])
        self.constraints = [_constraint(s) for s in specs]

    @property
    def precedence(self) -> int:
        # ASP.NET inbound precedence digits: literal 1, constrained 3, parameter 4, catch-all 5.
        if self.literal is not None:
            return 1
        return 5 if self.catch_all else 3 if self.constraints else 4

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


class _Route:
    def __init__(self, function: "_Function", template: str, methods: Iterable[str] | None):
        self.function, self.template = function, template.strip("/")
        self.methods = frozenset(m.upper() for m in methods) if methods else None
        self.segments = [_Segment(s) for s in self.template.split("/")] if self.template else []
        self.precedence = tuple(s.precedence for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                rest = "/".join(parts[i:])
                if rest or seg.default is not None:
                    values[seg.name] = rest or seg.default
                return values if not rest or seg.accepts(rest) else None
            if i >= len(parts):  # path ran out: the rest must be optional or defaulted
                if seg.literal is not None or not (seg.optional or seg.default is not None):
                    return None
                if seg.default is not None:
                    values[seg.name] = seg.default
                continue
            part = parts[i]
            if seg.literal is not None:
                if part.lower() != seg.literal.lower():
                    return None
            elif not part or not seg.accepts(part):
                return None
            else:
                values[seg.name] = part
        return values if len(parts) <= len(self.segments) else None


# --- functions -------------------------------------------------------------------------------

class _Context(func.Context):
    """The `context` argument, as the worker passes it to functions that declare one."""

    def __init__(self, function_name: str):
        self._invocation_id, self._function_name = str(uuid.uuid4()), function_name
        self._local = threading.local()

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: os.getcwd())
    thread_local_storage = property(lambda self: self._local)
    trace_context = property(lambda self: None)
    retry_context = property(lambda self: None)


class _Function:
    def __init__(self, fn: Any):
        self.name = fn.get_function_name()
        self.user_function = fn.get_user_function()
        bindings = json.loads(fn.get_function_json())["bindings"]
        self.trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        self.arg = self.trigger["name"]
        others = [b for b in bindings if b is not self.trigger and b.get("name") != "$return"]
        if others:
            log.warning("%s: bindings %s are not emulated by the local host", self.name,
                        [b["type"] for b in others])
        params = inspect.signature(self.user_function).parameters
        self.wants_context = "context" in params and self.arg != "context"
        self.is_async = inspect.iscoroutinefunction(self.user_function)


def _index(app: Any) -> list:
    """app.get_functions(), callable more than once (by each host, and by the app's own tests)."""
    # get_functions() records the names it builds and rejects any it has seen before, so a second
    # call fails on every name; forgetting them first keeps its check for genuine duplicates.
    if hasattr(app, "functions_bindings"):
        app.functions_bindings = None
    return app.get_functions()


# --- the host --------------------------------------------------------------------------------

class LocalHost:
    """Runs a v2-model `FunctionApp` locally. Use as a context manager or call start()/stop().

    `env` is applied to os.environ on start (the app reads settings from there) and restored on
    stop. `port=0` picks a free port; `.url` is then `http://127.0.0.1:<port>`. `timers=False`
    disables timer scheduling (use `run_timer`). `.invocations` counts finished invocations per
    function; `.errors` lists (function name, exception repr) for failed ones.
    """

    def __init__(self, app: Any, *, env: Mapping[str, str] | None = None,
                 host_json: str | os.PathLike | None = "host.json", port: int = 0,
                 cors_origins: Iterable[str] = (), timers: bool = True, queues: bool = True,
                 queue_poll_interval: float = 0.1):
        self.functions = {f.name: f for f in map(_Function, _index(app))}
        self.route_prefix, self.queue_options = _load_host_json(host_json)
        self.env = dict(env or {})
        self.port, self.timers, self.queue_poll_interval = port, timers, queue_poll_interval
        self.cors_origins = frozenset(o.rstrip("/") for o in cors_origins)
        self.invocations: collections.Counter[str] = collections.Counter()
        self.errors: list[tuple[str, str]] = []
        by_type = collections.defaultdict(list)
        for f in self.functions.values():
            by_type[f.trigger["type"]].append(f)
        routes = [_Route(f, f.trigger.get("route") or f.name, f.trigger.get("methods"))
                  for f in by_type["httpTrigger"]]
        # The Functions host tries routes in the alphabetical order of function names, not by
        # ASP.NET precedence (Azure/azure-functions-host#9876, azure-webjobs-sdk-extensions#842).
        # Do the same, so an overlap that misroutes in Azure misroutes here too.
        self.routes = sorted(routes, key=lambda r: r.function.name.lower())
        # queues=False serves HTTP (and timers) without consuming queues, e.g. to measure HTTP alone.
        self._queue_functions = by_type["queueTrigger"] if queues else []
        self._timer_functions = by_type["timerTrigger"]
        self._lock = threading.Lock()
        self._running = 0
        self._stopping = threading.Event()
        self._timer_locks = {f.name: threading.Lock() for f in self._timer_functions}
        self._threads: list[threading.Thread] = []
        self._pollers: list[_QueuePoller] = []
        self._server: ThreadingHTTPServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._saved_env: dict[str, str | None] = {}

    # lifecycle

    @property
    def url(self) -> str:
        if not self._server:
            raise RuntimeError("the host is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "LocalHost":
        self._saved_env = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        self._stopping.clear()
        try:
            # One event loop for async functions, as the worker has.
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever, name="functions-loop",
                                                 daemon=True)
            self._loop_thread.start()
            self._server = _Server(("127.0.0.1", self.port), _handler_for(self))
            self._spawn("http", self._server.serve_forever)
            for f in self._queue_functions:
                poller = _QueuePoller(self, f)
                self._pollers.append(poller)
                self._spawn(f"queue-{f.name}", poller.run)
                self._spawn(f"queue-{f.name}-renew", poller.renew_leases)
            if self.timers:
                for f in self._timer_functions:
                    schedule = _resolve(f.trigger["schedule"])
                    _next_fire(schedule, dt.datetime.now(dt.timezone.utc))  # fail fast if malformed
                    self._spawn(f"timer-{f.name}", self._timer_loop, f, schedule)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        for poller in self._pollers:  # after their threads: lets in-flight messages finish
            poller.close()
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=10)
            self._loop.close()
        self._threads, self._pollers, self._server, self._loop = [], [], None, None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def __enter__(self) -> "LocalHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _spawn(self, name: str, target: Callable, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every trigger queue is empty (incl. invisible messages) and nothing runs."""
        deadline = time.monotonic() + timeout
        while True:
            if self._running == 0 and all(p.is_idle() for p in self._pollers):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # invocation

    def _invoke(self, function: _Function, trigger_value: Any) -> Any:
        kwargs = {function.arg: trigger_value}
        if function.wants_context:
            kwargs["context"] = _Context(function.name)
        with self._lock:
            self._running += 1
        try:
            result = function.user_function(**kwargs)
            if function.is_async:
                if not self._loop:
                    raise RuntimeError("the host is not started")
                result = asyncio.run_coroutine_threadsafe(result, self._loop).result()
            return result
        except Exception as exc:
            log.error("Executed '%s' (Failed)\n%s", function.name, traceback.format_exc())
            self.errors.append((function.name, repr(exc)))
            raise
        finally:
            with self._lock:
                self._running -= 1
                self.invocations[function.name] += 1

    # timers

    def run_timer(self, function_name: str) -> Any:
        """Invoke a timer function once, now, waiting for any scheduled run of it (singleton).
        Returns its result; its exception propagates (and is recorded in `.errors`)."""
        function = self.functions[function_name]
        if function.trigger["type"] != "timerTrigger":
            raise ValueError(f"{function_name} is not a timer function")
        try:
            schedule = _resolve(function.trigger["schedule"])
        except KeyError:
            schedule = None  # only needed for ScheduleStatus.Next
        return self._fire_timer(function, dt.datetime.now(dt.timezone.utc), False, schedule)

    def _fire_timer(self, function: _Function, due: dt.datetime, past_due: bool,
                    schedule: str | None) -> Any:
        # The JSON the host sends: Last is this occurrence, Next the one after it.
        status = {"Last": due.isoformat(), "LastUpdated": dt.datetime.now(dt.timezone.utc).isoformat()}
        if schedule:
            status["Next"] = _next_fire(schedule, due).isoformat()
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        with self._timer_locks[function.name]:
            return self._invoke(function, request)

    def _timer_loop(self, function: _Function, schedule: str) -> None:
        if function.trigger.get("runOnStartup"):
            self._fire_quietly(function, dt.datetime.now(dt.timezone.utc), False, schedule)
        due, catching_up = _next_fire(schedule, dt.datetime.now(dt.timezone.utc)), False
        while not self._stopping.wait(max(0.0, (due - dt.datetime.now(dt.timezone.utc)).total_seconds())):
            late = dt.datetime.now(dt.timezone.utc) - due > _PAST_DUE_GRACE
            self._fire_quietly(function, due, catching_up or late, schedule)
            # An invocation that overran later occurrences gets one past-due catch-up run, not one
            # per missed occurrence; runs never overlap.
            now, missed = dt.datetime.now(dt.timezone.utc), _next_fire(schedule, due)
            catching_up = missed <= now and not catching_up
            due = missed if catching_up else _next_fire(schedule, now)

    def _fire_quietly(self, function: _Function, due: dt.datetime, past_due: bool, schedule: str) -> None:
        try:
            self._fire_timer(function, due, past_due, schedule)
        except Exception:
            pass  # logged and recorded by _invoke

    # HTTP

    def _find_route(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], set[str]]:
        """(route, route values, allowed methods when the path matches but the method doesn't)."""
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if prefix and not (path.lower() == prefix.lower() or path.lower().startswith(prefix.lower() + "/")):
            return None, {}, set()
        rest = path[len(prefix):].strip("/")
        parts = [unquote(p) for p in rest.split("/")] if rest else []
        allowed: set[str] = set()
        for route in self.routes:
            values = route.match(parts)
            if values is None:
                continue
            if route.methods is None or method in route.methods:
                return route, values, set()
            allowed |= route.methods
        return None, {}, allowed

    def describe_routes(self) -> list[str]:
        """One line per HTTP function: methods, URL template and function name."""
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        return [f"{','.join(sorted(r.methods)) if r.methods else 'ANY':<12} "
                f"{prefix}/{r.template}  ({r.function.name})" for r in self.routes]


def _next_fire(schedule: str, after: dt.datetime) -> dt.datetime:
    """Next occurrence of a timer schedule: NCRONTAB, or a TimeSpan interval ("00:05:00")."""
    if ":" in schedule and len(schedule.split()) == 1:
        return after + dt.timedelta(seconds=_timespan(schedule))
    return ncrontab.next_occurrence(schedule, after)


# --- HTTP server -----------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def _json_error(status: int, code: str, message: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, body, [("Content-Type", "application/json; charset=utf-8")]


def _handler_for(host: LocalHost) -> type[BaseHTTPRequestHandler]:
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

        def _dispatch(self) -> None:
            body = self._read_body()
            origin = (self.headers.get("Origin") or "").rstrip("/")
            cors = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")] \
                if origin and origin in host.cors_origins else []
            requested = self.headers.get("Access-Control-Request-Method")
            if cors and self.command == "OPTIONS" and requested:
                # Answered by the platform's CORS layer before any function runs.
                asked = [h.strip() for h in self.headers.get("Access-Control-Request-Headers", "").split(",")]
                headers = list(dict.fromkeys([*_PREFLIGHT_HEADERS, *filter(None, asked)]))
                methods = list(dict.fromkeys([*_PREFLIGHT_METHODS, requested.upper()]))
                self._send(204, b"", cors + [("Access-Control-Allow-Methods", ", ".join(methods)),
                                             ("Access-Control-Allow-Headers", ", ".join(headers)),
                                             ("Access-Control-Max-Age", "3600")])
                return
            status, payload, headers = self._respond(body)
            self._send(status, payload, headers + cors)

        def _respond(self, body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
            split = urlsplit(self.path)
            route, values, allowed = host._find_route(self.command, split.path)
            if route is None and allowed:
                status, payload, headers = _json_error(
                    405, "method_not_allowed", f"{self.command} is not allowed on {split.path}")
                return status, payload, headers + [("Allow", ", ".join(sorted(allowed)))]
            if route is None:
                return _json_error(404, "not_found", f"No function matches {self.command} {split.path}")
            headers: dict[str, str] = {}
            for key, value in self.headers.items():  # repeated headers are joined, as in ASP.NET
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            params: dict[str, str] = {}
            for key, value in parse_qsl(split.query, keep_blank_values=True):
                params.setdefault(key, value)
            url = f"http://{self.headers.get('Host') or self.server.server_address[0]}{self.path}"
            request = func.HttpRequest(self.command, url, headers=headers, params=params,
                                       route_params=values, body=body)
            try:
                response = host._invoke(route.function, request)
            except Exception:  # logged with its traceback by _invoke; never echoed to the client
                return _json_error(500, "internal_error", "The function failed; see the host log.")
            if isinstance(response, (str, bytes)):
                response = func.HttpResponse(response)
            if not isinstance(response, func.HttpResponse):
                log.error("%s returned %s, not an HttpResponse", route.function.name, type(response).__name__)
                return _json_error(500, "internal_error", "The function returned an invalid response.")
            out = list(response.headers.items())
            if not any(k.lower() == "content-type" for k, _ in out):  # as the worker's converter does
                mime = response.mimetype
                charset = f"; charset={response.charset}" if mime.startswith("text/") else ""
                out.append(("Content-Type", mime + charset))
            return response.status_code, response.get_body(), out

        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

    return Handler


# --- queue triggers --------------------------------------------------------------------------

class _QueuePoller:
    """Polls one queue for one function, following the WebJobs QueueListener/QueueProcessor."""

    def __init__(self, host: LocalHost, function: _Function):
        self.host, self.function, self.options = host, function, host.queue_options
        connection = function.trigger.get("connection") or "AzureWebJobsStorage"
        conn = os.environ.get(connection) or os.environ.get(f"AzureWebJobs{connection}")
        if not conn:
            raise RuntimeError(f"{function.name}: app setting {connection!r} (a storage connection "
                               "string) is not set")
        self.queue_name = _resolve(function.trigger["queueName"])
        # No SDK-side encode/decode policy: message text is decoded here, per host.json.
        self.client = QueueClient.from_connection_string(conn, self.queue_name)
        self.poison = QueueClient.from_connection_string(conn, f"{self.queue_name}-poison")
        _create_queue(self.client)
        self.executor = ThreadPoolExecutor(self.options.batch_size + self.options.new_batch_threshold,
                                           thread_name_prefix=f"queue-{function.name}")
        self.in_flight: dict[str, Any] = {}  # message id -> the SDK message (its pop receipt renews)
        self.lock = threading.Condition()

    def run(self) -> None:
        delay = self.host.queue_poll_interval
        stopping = self.host._stopping
        while not stopping.is_set():
            with self.lock:  # fetch a new batch only once in-flight work drops to the threshold
                while len(self.in_flight) > self.options.new_batch_threshold and not stopping.is_set():
                    self.lock.wait(0.2)
            try:
                messages = list(self.client.receive_messages(
                    messages_per_page=self.options.batch_size, max_messages=self.options.batch_size,
                    visibility_timeout=int(_LEASE_SECONDS)))
            except Exception as exc:
                log.warning("%s: receiving from %s failed: %r", self.function.name, self.queue_name, exc)
                messages = []
            if not messages:  # exponential backoff while the queue stays empty
                stopping.wait(delay)
                delay = min(delay * 2, max(self.options.max_polling_interval, self.host.queue_poll_interval))
                continue
            delay = self.host.queue_poll_interval
            with self.lock:
                for message in messages:
                    self.in_flight[message.id] = message
            for message in messages:
                self.executor.submit(self._process, message)

    def _process(self, message: Any) -> None:
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                # Dequeued too often without completing (e.g. a crash): poison without running.
                return self._to_poison(message)
            try:
                body = self._decode(message.content)
            except ValueError:
                log.warning("%s: message %s is not valid %s; moving it to %s-poison", self.function.name,
                            message.id, self.options.encoding, self.queue_name)
                return self._to_poison(message)
            trigger = QueueMessage(
                id=message.id, body=body, dequeue_count=message.dequeue_count,
                expiration_time=message.expires_on, insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
            try:
                self.host._invoke(self.function, trigger)
            except Exception:
                if message.dequeue_count >= self.options.max_dequeue_count:
                    return self._to_poison(message)
                retry_in = int(self.options.visibility_timeout)
                return self._settle(message, lambda: self.client.update_message(
                    message.id, self._receipt(message), visibility_timeout=retry_in))
            self._settle(message, lambda: self.client.delete_message(message.id, self._receipt(message)))
        except Exception:
            log.exception("%s: settling message %s failed", self.function.name, message.id)
        finally:
            with self.lock:
                self.in_flight.pop(message.id, None)
                self.lock.notify_all()

    def _decode(self, content: str | None) -> bytes:
        if self.options.encoding == "none":
            return (content or "").encode("utf-8")
        try:
            return base64.b64decode(content or "", validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None

    def _to_poison(self, message: Any) -> None:
        # The raw text, so the poison copy keeps the original encoding byte for byte.
        _create_queue(self.poison)
        self.poison.send_message(message.content)
        log.warning("%s: message %s moved to %s-poison after %s dequeues", self.function.name,
                    message.id, self.queue_name, message.dequeue_count)
        self._settle(message, lambda: self.client.delete_message(message.id, self._receipt(message)))

    def _receipt(self, message: Any) -> str:
        with self.lock:
            return message.pop_receipt

    def _settle(self, message: Any, action: Callable[[], Any]) -> None:
        # Stop renewing first, so the pop receipt can't change under the final call.
        with self.lock:
            self.in_flight.pop(message.id, None)
            self.lock.notify_all()
        action()

    def renew_leases(self) -> None:
        """Keep in-flight messages invisible while long invocations run."""
        while not self.host._stopping.wait(_LEASE_SECONDS / 4):
            with self.lock:
                for message in list(self.in_flight.values()):
                    left = (message.next_visible_on - dt.datetime.now(dt.timezone.utc)).total_seconds()
                    if left > _LEASE_SECONDS / 2:
                        continue
                    try:
                        updated = self.client.update_message(message.id, message.pop_receipt,
                                                             visibility_timeout=int(_LEASE_SECONDS))
                        message.pop_receipt = updated.pop_receipt
                        message.next_visible_on = updated.next_visible_on
                    except Exception as exc:
                        log.warning("%s: renewing message %s failed: %r", self.function.name, message.id, exc)

    def is_idle(self) -> bool:
        with self.lock:
            if self.in_flight:
                return False
        return self.client.get_queue_properties().approximate_message_count == 0

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.client.close()
        self.poison.close()


def _create_queue(client: QueueClient) -> None:
    try:
        client.create_queue()
    except ResourceExistsError:
        pass


# --- command line ----------------------------------------------------------------------------

def load_app(module_name: str = "function_app") -> Any:
    """Import a module and return its FunctionApp, as the worker finds it in function_app.py."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise RuntimeError(f"{module_name} defines no FunctionApp")
    return apps[0]


def serve(host: LocalHost, until: threading.Event | None = None) -> None:
    """Start `host`, print its URL and routes, and run until Ctrl-C / SIGTERM (or `until`)."""
    until = until or threading.Event()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP call at INFO
    signal.signal(signal.SIGTERM, lambda *_: until.set())
    with host:
        print(f"Local Functions host listening on {host.url}", flush=True)
        for line in host.describe_routes():
            print(f"  {line}", flush=True)
        for f in host._queue_functions + host._timer_functions:
            trigger = f.trigger.get("queueName") or f.trigger.get("schedule")
            print(f"  {f.trigger['type']:<12} {trigger}  ({f.name})", flush=True)
        try:
            while not until.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("Stopping the local Functions host", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.host", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app", help="module that defines the FunctionApp")
    parser.add_argument("--host-json", default="host.json")
    parser.add_argument("--cors", default=os.environ.get("ALLOWED_ORIGINS", ""),
                        help="comma-separated allowed origins (default: $ALLOWED_ORIGINS)")
    parser.add_argument("--no-timers", action="store_true", help="do not schedule timer triggers")
    args = parser.parse_args(argv)
    origins = [o.strip() for o in args.cors.split(",") if o.strip()]
    serve(LocalHost(load_app(args.app), host_json=args.host_json, port=args.port,
                    cors_origins=origins, timers=not args.no_timers))


if __name__ == "__main__":
    main()
