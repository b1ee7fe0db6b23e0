"""How a local run stops: `serve(host)` runs a started host until SIGINT, SIGTERM or SIGHUP.

Its own module, free of the Functions and Azure SDK imports, so that a process that only
serves (the signal tests start twenty) starts in a tenth of the time; `devtools.host` re-exports
it.
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import threading
from typing import Any, Protocol


class Servable(Protocol):
    """What serve() needs of a host (devtools.localhost.LocalHost is one)."""

    @property
    def url(self) -> str: ...

    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...
    def describe_routes(self) -> list[str]: ...
    def describe_triggers(self) -> list[str]: ...


# Each stops a local run (Ctrl-C, `kill`, make passing on its own signal, a closed terminal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


def serve(host: Servable, until: threading.Event | None = None) -> None:
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
