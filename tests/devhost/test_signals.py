"""Any stop signal stops a local run, however many come and whenever they come: `make run`
stopped with SIGTERM used to hang about one time in four (its handler called
threading.Event.set() while the main thread held that Event's lock, and make passes a second
signal on)."""

from __future__ import annotations

import concurrent.futures
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from devtools.azurite import ROOT
from tests.tracing import untraced_env

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

# `serve` around a host that starts and stops at once: what is tested is the signal handling.
CHILD = textwrap.dedent(
    """
    import threading
    from devtools.serving import serve

    class Host:
        url = "http://127.0.0.1:0"
        def __enter__(self): return self
        def __exit__(self, *exc): print("host stopped", flush=True)
        def describe_routes(self): return []
        def describe_triggers(self): return []

    serve(Host())
    print("serve returned", flush=True)
    """
)
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RUNS = 20
BURST = 40  # signals per run: some arrive while a handler for an earlier one is running


def wait_for_line(process, text: str, deadline: float) -> str:
    seen = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} in the output: {seen!r}")


def stopped_by_a_burst(run: int) -> tuple[str, int, str]:
    """Start a child, let it wait a random part of its 0.5 s loop, send it a burst of one stop
    signal; (signal, exit code, output). A hang fails at communicate()."""
    rng = random.Random(run)
    sig = SIGNALS[run % len(SIGNALS)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env={**untraced_env(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = wait_for_line(child, "Local Functions host listening", time.monotonic() + 60)
        time.sleep(rng.uniform(0, 0.6))
        for _ in range(BURST):
            child.send_signal(sig)
            time.sleep(rng.uniform(0, 0.0005))
        output, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return sig.name, child.returncode, started + output


@pytest.mark.slow
def test_a_burst_of_stop_signals_stops_serve_every_time():
    # Five at a time: the runs are independent processes, and each mostly waits.
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(stopped_by_a_burst, range(RUNS)))
    assert len(outcomes) == RUNS and {name for name, _, _ in outcomes} == {s.name for s in SIGNALS}
    for name, code, output in outcomes:
        assert code == 0, (name, output)
        assert "Stopping the local Functions host" in output and "host stopped" in output, output
        assert "serve returned" in output and "Traceback" not in output, output
