"""Run a Python v2-model Functions app on the local Functions host, without Core Tools.

    python -m devtools.host --port 7071 [--app function_app] [--cors http://localhost:3000]

This module is the command line and the import point other code uses (`from devtools.host
import LocalHost, load_app, serve`); the host itself is the `devtools.localhost` package (HTTP
routes under host.json's routePrefix, queue triggers with the host's retry and poison rules,
NCRONTAB timers in UTC, platform-style CORS). The app reads its settings from os.environ, as on
the platform: set them before starting, or pass `env=` to `LocalHost`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import signal
import socket
import sys
import threading
from typing import Any

import azure.functions as func

from devtools.localhost import LocalHost

__all__ = ["LocalHost", "ignore_stop_signals", "load_app", "main", "serve", "stop_on_signals"]

# Each stops a local run (Ctrl-C, `kill`, make passing on its own signal, a closed terminal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def load_app(module_name: str = "function_app") -> Any:
    """Import a module and return its FunctionApp, as the worker finds it in function_app.py."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise RuntimeError(f"{module_name} defines no FunctionApp")
    return apps[0]


# A byte per stop signal received (signal.set_wakeup_fd writes them): (reader, writer).
_wakeup: tuple[socket.socket, socket.socket] | None = None


def _noted(signum: int, frame: Any) -> None:
    """Does nothing: the interpreter has already written the signal to the wake-up socket, which
    serve() reads. A handler runs in the main thread between two bytecodes, maybe while that
    thread holds a lock (inside a threading.Event it waits on, or taken by the handler of the
    signal before), so it must take none: calling Event.set() here hung about one `make run` stop
    in four (make passes a second SIGTERM on). Raising would cut whatever the main thread was
    doing (printing the banner, starting Azurite) in the middle."""


def stop_on_signals() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP are noted, not acted on where they land: serve()
    stops at the first (received before it started, or while it runs). Main thread only."""
    global _wakeup
    if _wakeup is None:
        _wakeup = socket.socketpair()
        for end in _wakeup:
            end.setblocking(False)
        signal.set_wakeup_fd(_wakeup[1].fileno(), warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _noted)


def ignore_stop_signals() -> None:
    """While shutting down: further signals change nothing (not even at the interpreter's exit)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _stop_signal_received(timeout: float) -> bool:
    assert _wakeup is not None
    ready, _, _ = select.select([_wakeup[0]], [], [], timeout)
    return bool(ready)


def serve(host: LocalHost, until: threading.Event | None = None) -> None:
    """Start `host`, print its URL, routes and triggers, and run until SIGINT (Ctrl-C), SIGTERM
    or SIGHUP, received before or after it started (or until `until` is set). Main thread only."""
    until = until or threading.Event()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP call at INFO
    stop_on_signals()
    with host:
        print(f"Local Functions host listening on {host.url}", flush=True)
        for line in host.describe_routes() + host.describe_triggers():
            print(f"  {line}", flush=True)
        try:
            while not until.is_set() and not _stop_signal_received(0.2):
                pass
        finally:
            ignore_stop_signals()
        print("Stopping the local Functions host", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.host", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app", help="module that defines the FunctionApp")
    parser.add_argument("--host-json", default="host.json")
    parser.add_argument(
        "--cors",
        default=os.environ.get("ALLOWED_ORIGINS", ""),
        help="comma-separated allowed origins (default: $ALLOWED_ORIGINS)",
    )
    parser.add_argument("--no-timers", action="store_true", help="do not schedule timer triggers")
    args = parser.parse_args(argv)
    origins = [o.strip() for o in args.cors.split(",") if o.strip()]
    host = LocalHost(
        load_app(args.app),
        host_json=args.host_json,
        port=args.port,
        cors_origins=origins,
        timers=not args.no_timers,
    )
    serve(host)


if __name__ == "__main__":
    main()
