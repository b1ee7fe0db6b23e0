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
import os
import sys
from typing import Any

import azure.functions as func

from devtools.localhost import LocalHost
from devtools.serving import STOP_SIGNALS, ignore_stop_signals, serve, stop_on_signals

__all__ = ["STOP_SIGNALS", "LocalHost", "ignore_stop_signals", "load_app", "main", "serve", "stop_on_signals"]


def load_app(module_name: str = "function_app") -> Any:
    """Import a module and return its FunctionApp, as the worker finds it in function_app.py."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise RuntimeError(f"{module_name} defines no FunctionApp")
    return apps[0]


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
