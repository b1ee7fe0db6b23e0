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
import contextlib
import importlib
import logging
import os
import signal
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


def _stop_now(signum: int, frame: Any) -> None:
    """The first stop signal interrupts the main thread, as Ctrl-C does, and the next ones are
    ignored. It takes no lock: a handler runs in the main thread between two bytecodes, maybe
    while that thread holds a lock, such as the one inside a threading.Event it waits on, or the
    one a handler running for an earlier signal took. Calling Event.set() here hung about one
    `make run` stop in four (make passes a second SIGTERM on)."""
    ignore_stop_signals()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """From now on SIGINT, SIGTERM or SIGHUP raises KeyboardInterrupt in the main thread, once."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_now)


def ignore_stop_signals() -> None:
    """While shutting down: a further signal must not interrupt the clean-up halfway."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def serve(host: LocalHost, until: threading.Event | None = None) -> None:
    """Start `host`, print its URL, routes and triggers, and run until SIGINT (Ctrl-C), SIGTERM
    or SIGHUP (or `until`). Call it from the main thread; the caller catches KeyboardInterrupt
    when a signal comes before the host has started."""
    until = until or threading.Event()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every HTTP call at INFO
    stop_on_signals()
    with host:
        print(f"Local Functions host listening on {host.url}", flush=True)
        for line in host.describe_routes() + host.describe_triggers():
            print(f"  {line}", flush=True)
        try:
            while not until.wait(0.5):
                pass
        except KeyboardInterrupt:
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
    with contextlib.suppress(KeyboardInterrupt):  # a signal while the host was starting
        serve(host)


if __name__ == "__main__":
    main()
