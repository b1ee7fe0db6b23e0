"""Start and stop Azurite (the storage emulator) on free ports, for tests, `make run` and the demo."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
AZURITE_MAIN = ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"  # what its bin runs
# Keeps Azurite from loading the telemetry it is told not to send (--disableTelemetry): a
# start takes about 0.8 s of CPU instead of 2 s (the file says why that is safe).
WITHOUT_TELEMETRY = pathlib.Path(__file__).resolve().parent / "azurite_without_telemetry.cjs"
NODE = shutil.which("node") or "node"  # what Azurite's bin (#!/usr/bin/env node) would run
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


# Azurite runs in its own session (a Ctrl-C reaches only us, and we stop it in order); should we
# be killed outright (SIGKILL), the kernel sends it SIGTERM (util-linux's setpriv, where there is
# one). The parent is the thread that started it: start it from the main thread.
_DIES_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` different ports free now (all held at once while they are chosen)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


class PortTaken(RuntimeError):
    """Azurite could not listen: a port was taken between its choice and Azurite's start."""


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen | None = None
    workdir: pathlib.Path | None = None  # its working directory and log, removed by stop()

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir:  # one per start: a suite run left about fifteen in the temp directory
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_listening(
    ports: list[int], process: subprocess.Popen, log: pathlib.Path, timeout: float = 30
) -> None:
    """Until Azurite itself says it listens on its three ports. A connection to them is not
    proof: another Azurite (a second `make run` starting at the same moment, on the usual
    ports) may answer there while this one exits with EADDRINUSE."""
    deadline = time.monotonic() + timeout
    while True:
        said = log.read_text(errors="replace")
        if said.count("successfully listening at") >= 3:
            return
        if process.poll() is not None:
            error = PortTaken if "EADDRINUSE" in said else RuntimeError
            raise error(f"Azurite exited early with code {process.returncode}: {said[-500:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Azurite did not listen on {ports} within {timeout}s: {said[-500:]}")
        time.sleep(0.05)


def start_azurite(
    blob_port: int | None = None, queue_port: int | None = None, table_port: int | None = None
) -> Azurite:
    """Azurite on the ports given, or on free ones. Free ports are chosen a second or two
    before node binds them, and meanwhile any process may take one (the other test workers
    open connections all the time): then it starts again on others."""
    if not AZURITE_MAIN.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does it for you).")
    asked = [blob_port, queue_port, table_port]
    attempts_left = 1 if any(asked) else 3
    while True:
        attempts_left -= 1
        try:
            return _start([port or free for port, free in zip(asked, free_ports(3))])
        except PortTaken:
            if attempts_left == 0:
                raise


def _start(ports: list[int]) -> Azurite:
    workdir = tempfile.mkdtemp(prefix="azurite-")
    log = pathlib.Path(workdir) / "azurite.log"  # what it says (started, or why not)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                *_DIES_WITH_PARENT,
                NODE,
                "--require",
                str(WITHOUT_TELEMETRY),
                str(AZURITE_MAIN),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--silent",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(ports[0]),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(ports[1]),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(ports[2]),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
            env={**os.environ, "AZURITE_ACCEPT_EULA": "true"},
        )
    azurite = Azurite(ports[0], ports[1], ports[2], process=process, workdir=pathlib.Path(workdir))
    try:
        _wait_listening(ports, process, log)
    except Exception:
        azurite.stop()
        raise
    return azurite


@contextlib.contextmanager
def running_azurite() -> Iterator[Azurite]:
    azurite = start_azurite()
    try:
        yield azurite
    finally:
        azurite.stop()
