"""`LocalHost`: one app's functions, triggers and settings, started and stopped together.

It indexes the app, reads host.json, builds the route table (refusing templates it cannot route
as Azure does) and, on `start()`, applies the app settings to os.environ (the app reads them from
there, as on the platform), then starts the function event loop, the HTTP server, one poller per
queue trigger and one scheduler per timer trigger. `stop()` undoes all of it, settings included,
so tests can run several hosts one after another in one process.
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from devtools.localhost.config import load_host_json
from devtools.localhost.functions import Function, Invoker, index
from devtools.localhost.http_server import Cors, make_server
from devtools.localhost.queues import QueuePoller
from devtools.localhost.routing import Route, RouteTable, RouteTemplateError
from devtools.localhost.timers import TimerTrigger


def _route_for(function: Function) -> Route:
    # As the host does, a function without a route is served under its own name.
    template = function.trigger.get("route") or function.name
    try:
        return Route(function.name, template, function.trigger.get("methods"), target=function)
    except RouteTemplateError as exc:
        raise RouteTemplateError(f"{function.name}: {exc}") from None


class LocalHost:
    """Runs a v2-model `FunctionApp` locally. Use as a context manager or call start()/stop().

    `env` is applied to os.environ on start (the app reads settings from there) and restored on
    stop. `port=0` picks a free port; `.url` is then `http://127.0.0.1:<port>`. `timers=False`
    disables timer scheduling (use `run_timer`); `queues=False` serves HTTP (and timers) without
    consuming queues, e.g. to measure HTTP alone. `.invocations` counts finished invocations per
    function; `.errors` lists (function name, exception repr) for failed ones. A route template
    the host cannot route as Azure does raises `ValueError` here, before anything starts.
    """

    def __init__(
        self,
        app: Any,
        *,
        env: Mapping[str, str] | None = None,
        host_json: str | os.PathLike | None = "host.json",
        port: int = 0,
        cors_origins: Iterable[str] = (),
        timers: bool = True,
        queues: bool = True,
        queue_poll_interval: float = 0.1,
    ):
        self.functions = {f.name: f for f in index(app)}
        config = load_host_json(host_json)
        self.route_prefix, self.queue_options = config.route_prefix, config.queues
        self.env = dict(env or {})
        self.port, self.timers, self.queue_poll_interval = port, timers, queue_poll_interval
        self.cors = Cors(cors_origins)
        self.cors_origins = self.cors.origins
        self._invoker = Invoker()
        self.invocations: collections.Counter[str] = self._invoker.invocations
        self.errors: list[tuple[str, str]] = self._invoker.errors
        by_type: dict[str, list[Function]] = collections.defaultdict(list)
        for f in self.functions.values():
            by_type[f.trigger_type].append(f)
        self.router = RouteTable(self.route_prefix, map(_route_for, by_type["httpTrigger"]))
        self.routes = self.router.routes  # in the order they are tried: by function name
        self._queue_functions = by_type["queueTrigger"] if queues else []
        self._timers = {f.name: TimerTrigger(f, self._invoker) for f in by_type["timerTrigger"]}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pollers: list[QueuePoller] = []
        self._server: ThreadingHTTPServer | None = None
        self._saved_env: dict[str, str | None] = {}

    # lifecycle

    @property
    def url(self) -> str:
        if not self._server:
            raise RuntimeError("the host is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalHost:
        self._saved_env = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        self._stopping.clear()
        try:
            self._invoker.start()
            self._server = make_server(self.port, self.router, self._invoker, self.cors)
            # serve_forever checks for shutdown every poll_interval, and stop() waits for that
            # check: the default 0.5 s was half a second on every test stack's teardown. An idle
            # loop at 0.01 s costs about 0.5 % of a core.
            self._spawn("http", _untraced(self._server.serve_forever), 0.01)
            for f in self._queue_functions:
                if not disabled(f.name):
                    self._start_poller(f)
            if self.timers:
                for timer in self._timers.values():
                    if disabled(timer.function.name):
                        continue
                    # Resolved and parsed before its thread starts: a bad schedule fails start().
                    self._spawn(
                        f"timer-{timer.function.name}", timer.run_schedule, timer.schedule(), self._stopping
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake_pollers()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        for poller in self._pollers:  # after their threads: lets in-flight messages finish
            poller.close()
        self._invoker.stop()
        self._threads, self._pollers, self._server = [], [], None
        self._restore_env()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wake_pollers(self) -> None:
        for poller in self._pollers:
            poller.wake()

    def _start_poller(self, function: Function) -> None:
        poller = QueuePoller(
            function, self.queue_options, self._invoker, self._stopping, self.queue_poll_interval
        )
        self._pollers.append(poller)
        self._spawn(f"queue-{function.name}", _untraced(poller.run))
        self._spawn(f"queue-{function.name}-renew", _untraced(poller.renew_leases))

    def _spawn(self, name: str, target: Callable, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    # state

    @property
    def running(self) -> int:
        """Invocations in progress (tests wait for a worker to finish with it)."""
        return self._invoker.running

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every trigger queue is empty (incl. invisible messages) and nothing runs."""
        deadline = time.monotonic() + timeout
        while True:
            # What this process knows first; the queues (a storage call each) only then.
            if self._invoker.running == 0 and not any(p.busy() for p in self._pollers):
                if all(p.is_idle() for p in self._pollers):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # timers

    def run_timer(self, function_name: str) -> Any:
        """Invoke a timer function once, now, waiting for any scheduled run of it (singleton).
        Returns its result; its exception propagates (and is recorded in `.errors`)."""
        function = self.functions[function_name]
        if function.trigger_type != "timerTrigger":
            raise ValueError(f"{function_name} is not a timer function")
        return self._timers[function_name].run_now()

    # description

    def describe_routes(self) -> list[str]:
        """One line per HTTP function, in matching order: methods, URL template, function name."""
        return self.router.describe()

    def describe_triggers(self) -> list[str]:
        """One line per queue and timer function that this host runs: type, queue or schedule."""
        functions = [*self._queue_functions, *(t.function for t in self._timers.values())]
        return [
            f"{f.trigger_type:<12} {f.trigger.get('queueName') or f.trigger.get('schedule')}  ({f.name})"
            for f in functions
        ]


def disabled(function_name: str) -> bool:
    """The host's `AzureWebJobs.<function name>.Disabled` app setting: a disabled queue or timer
    function is not triggered (its messages wait in the queue). HTTP functions ignore it here."""
    value = os.environ.get(f"AzureWebJobs.{function_name}.Disabled", "")
    return value.strip().lower() in ("true", "1")


def _untraced(loop: Callable[..., None]) -> Callable[..., None]:
    """`loop` on a thread that drops any tracer the process set for new threads (coverage's,
    under `make test`). The host's own loops (accepting connections, polling queues, renewing
    leases) run none of the app: the app runs on the threads they hand work to, which start
    traced. On Python 3.11 a tracer doubles the time of every line, measured or not, and the
    pollers' storage calls were a seventh of the Python time of the tests that run a stack.
    (A debugger stepping into these loops needs this removed.) Its twin for the stand-ins'
    threads is `standins.server.untraced`: the stand-ins may not import devtools
    (pyproject.toml), and the local host, which `make run` uses too, does not depend on them."""

    @functools.wraps(loop)
    def run(*args: Any) -> None:
        sys.settrace(None)
        loop(*args)

    return run
