"""What the measuring sections share: Azurite, the Panoptes and ML stand-ins, the service's own
clients against them, and a worker in a fresh process (bench/child.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.child import READY_FOR_STEP
from bench.common import OWNER_ID, OWNER_TOKEN, PROJECT_ID, TOKEN_KEY, create_export, median
from bench.options import Options
from bench.report import log
from devtools.azurite import start_azurite
from devtools.local_env import offline_settings
from exports import model
from exports.blob_writer import BlockBlobWriter
from exports.contract import Status
from exports.services import Services
from exports.settings import ExportSettings
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_child(
    job: str,
    args: dict[str, Any],
    env: dict[str, str],
    timeout: float = 900,
    between: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Run one job of bench/child.py in a fresh process; its JSON result. With `between`, the
    child waits before each of its steps until `between()` has run here (bench/child.py)."""
    if between is not None:
        return _run_child_in_steps(job, args, env, timeout, between)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", job],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {job} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _run_child_in_steps(
    job: str, args: dict[str, Any], env: dict[str, str], timeout: float, between: Callable[[], object]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: the child never blocks on it
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", job],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({**args, "in_steps": True}) + "\n")
        proc.stdin.flush()
        lines = []
        for line in proc.stdout:
            if line.strip() == READY_FOR_STEP:
                between()
                proc.stdin.write("go\n")
                proc.stdin.flush()
            else:
                lines.append(line)
        returncode = proc.wait(max(1.0, deadline - time.monotonic()))
        errors.seek(0)
        if returncode != 0:
            raise RuntimeError(f"bench child {job} failed ({returncode}):\n{errors.read()[-4000:]}")
    result: dict[str, Any] = json.loads("".join(lines).strip().splitlines()[-1])
    return result


@dataclasses.dataclass(frozen=True)
class ExportFigures:
    """Section 1's measurement of one size, which section 1b compares the baseline with."""

    wall: float
    requests: int
    floor: float
    export_id: str
    blob: str
    set_id: str


class Rig:
    def __init__(self, opts: Options):
        self.opts = opts
        self.azurite = start_azurite()
        self.panoptes = PanoptesStandIn(latency=opts.panoptes_latency, page_cache_bytes=512 << 20).start()
        self.ml = MlServiceStandIn(callers=("zooniverse",), latency=opts.ml_latency).start()
        self.panoptes.add_user(OWNER_TOKEN, OWNER_ID, "bench-owner")
        self.panoptes.add_project(PROJECT_ID, "Bench project", roles={OWNER_ID: ["owner"]})
        self.env = offline_settings(self.azurite, self.panoptes, self.ml, TOKEN_KEY)
        self.settings = ExportSettings.from_env(self.env)
        self.services = Services.from_settings(self.settings)
        self.services.ensure_resources()
        self.concurrency = self.settings.panoptes_page_concurrency
        self.exports_measured: dict[int, ExportFigures] = {}  # section 1, by size
        self._next_set = 7000

    def close(self) -> None:
        for stop in (self.panoptes.stop, self.ml.stop, self.azurite.stop):
            try:
                stop()
            except Exception:
                pass

    def new_set(self, count: int, frames: int = 2) -> str:
        self._next_set += 1
        set_id = str(self._next_set)
        self.panoptes.add_synthetic_subject_set(set_id, PROJECT_ID, f"Bench set {set_id}", count, frames)
        return set_id

    # -- measured alone: the floors' fixed parts -------------------------------------------
    def upload_alone(self, size: int) -> float:
        blob = self.services.container.get_blob_client(f"bench-floor-{uuid.uuid4().hex}.json")
        chunk = b"x" * (1 << 20)
        started = time.perf_counter()
        writer = BlockBlobWriter(blob)
        left = size
        while left > 0:
            writer.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        writer.commit()
        elapsed = time.perf_counter() - started
        blob.delete_blob()
        return elapsed

    def ml_call_alone(self) -> float:
        blob = self.services.container.get_blob_client("bench-floor-tiny.json")
        blob.upload_blob(b'[["https://x/a.jpg", "{}"]]', overwrite=True)
        sas = self.services.storage.read_sas_url(
            self.settings.container_name, blob.blob_name, dt.timedelta(hours=1)
        )
        times = []
        for i in range(3):
            started = time.perf_counter()
            self.services.ml.submit(sas, f"bench-floor-{i}")
            times.append(time.perf_counter() - started)
        self.ml.wait_for_downloads(10)
        return median(times)

    # -- one export in a fresh worker process ------------------------------------------------
    def export_child(self, set_id: str) -> tuple[dict[str, Any], int, str]:
        """Run one export in a fresh worker process (after a small warm-up export); (child
        result, Panoptes requests, export id)."""
        warm_set = self.new_set(50)
        _, warm_body = create_export(self.services, PROJECT_ID, warm_set)
        export, body = create_export(self.services, PROJECT_ID, set_id)
        self.panoptes.reset_counts()
        result = run_child("export", {"warmup": [warm_body], "bodies": [body]}, self.env)
        warm_requests = sum(1 for r in self.panoptes.requests if r.query.get("subject_set_id") == warm_set)
        requests = self.panoptes.total_requests - warm_requests
        if not self.ml.wait_for_downloads(300):
            log("warning: the ML stand-in did not finish downloading a manifest")
        stored = self.services.store.get(export.id)
        if stored is None or stored.export.status != Status.SUBMITTED:
            found = stored.export if stored else None
            raise RuntimeError(
                f"export of set {set_id} ended {found and found.status}: "
                f"{found and found.error_code} {found and found.error_message}"
            )
        return result, requests, export.id

    def finish_active_exports(self) -> None:
        """End the exports of earlier sections (a poll tick polls every active export)."""
        for export_id in self.services.store.active_export_ids():
            current = self.services.store.get(export_id)
            if current is not None and not current.export.is_final:
                self.services.store.update(model.cancel(current.export, self.services.clock()), current)
