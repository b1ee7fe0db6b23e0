"""Child process of the benchmark: the function app's worker, alone in its own process.

Usage: python -m bench.child JOB < json-args; prints one JSON line with the results.
Settings come from the environment (as in the Functions host). Jobs:
- export: run `process_export_message` for each body in `bodies` (after `warmup` bodies), report
  wall time per body, idle RSS before the first timed body and the peak RSS (VmHWM) after each.
- tick: run `exports.poller.run_tick` with each concurrency in `concurrencies`; wall time of each.
- results: account for the images of a completed export (ours: exports/completion.py, streamed;
  or `whole`: the detections file read whole and json.loads'd).
"""

from __future__ import annotations

import cProfile
import dataclasses
import datetime as dt
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import reset_peak_rss, rss_kb
from exports import completion, model
from exports.ml_service import TaskStatus
from exports.poller import run_tick
from exports.services import Services, get_services
from exports.worker import process_export_message
from shared.outbound import OutboundHttp


def _services() -> Services:
    services = get_services()
    services.store.active_export_ids()  # open the storage connection pools
    return services


def job_export(args: dict[str, Any]) -> dict[str, Any]:
    services = _services()
    for body in args.get("warmup", []):
        process_export_message(body, services)
    gc.collect()
    time.sleep(0.2)
    idle = rss_kb("VmRSS")
    hwm_reset = reset_peak_rss()
    hwm_before = rss_kb("VmHWM")
    runs = []
    for body in args["bodies"]:
        started = time.perf_counter()
        process_export_message(body, services)
        wall = time.perf_counter() - started
        runs.append({"wall": wall, "peak_kb": rss_kb("VmHWM"), "rss_after_kb": rss_kb("VmRSS")})
    return {"idle_kb": idle, "hwm_reset": hwm_reset, "hwm_before_kb": hwm_before, "runs": runs}


def job_tick(args: dict[str, Any]) -> dict[str, Any]:
    services = _services()
    base = services.settings
    out: list[dict[str, Any]] = []
    for concurrency in args["concurrencies"]:
        if args.get("in_steps"):
            _wait_for_parent()
        services.settings = dataclasses.replace(base, ml_poll_concurrency=int(concurrency))
        started, cpu = time.perf_counter(), time.process_time()
        report = run_tick(services)
        wall = time.perf_counter() - started
        out.append(
            {
                "concurrency": concurrency,
                "wall": wall,
                "cpu": time.process_time() - cpu,
                "active": report.active,
                "outcomes": dict(report.outcomes),
            }
        )
    return {"ticks": out}


READY_FOR_STEP = "ready for the next step"


def _wait_for_parent() -> None:
    """With "in_steps": say so before each step (a tick) and wait for the parent's go (it moves
    the ML emulator's monitor on meanwhile: bench/rig.py run_child's `between`)."""
    sys.stdout.write(READY_FOR_STEP + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


def job_results(args: dict[str, Any]) -> dict[str, Any]:
    """Account for a completed export's images as the poller does (exports/completion.py: the
    detections file from `url` and the manifest blob `manifest_blob`, both streamed; the CSV and
    the re-run rows written to blobs), or the baseline (`whole`: download the detections file
    whole, then json.loads). Wall time, idle and peak RSS, and the counts."""
    services = _services()
    gc.collect()
    idle = rss_kb("VmRSS")
    reset_peak_rss()
    started = time.perf_counter()
    if args.get("whole"):
        http = OutboundHttp(pool_size=1, timeout=300)
        data = json.loads(http.request("GET", args["url"], max_bytes=1 << 34).data)
        images = data["images"]
        failed = sum("failure" in i for i in images)
        counts = [len(images) - failed, failed, int(args["images"]) - len(images)]
        extra: dict[str, Any] = {}
    else:
        now = services.clock()
        export = model.new_export(
            model.new_export_id("1", "1", now), "1", "1", "1", now, dt.timedelta(hours=1)
        )
        export = dataclasses.replace(export, manifest_blob=args["manifest_blob"], results_url=args["url"])
        done = completion.account(services, model.complete(export, now), TaskStatus("completed", {}))
        summary = done.summary or {}
        counts = [int(summary.get(k) or 0) for k in ("images_scored", "images_failed", "images_missing")]
        extra = {"summary": summary, "rerun_images": done.rerun_images, "csv": done.results_csv_blob}
    wall = time.perf_counter() - started
    return {"wall": wall, "idle_kb": idle, "peak_kb": rss_kb("VmHWM"), "counts": counts, **extra}


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "export": job_export,
    "tick": job_tick,
    "results": job_results,
}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    job = sys.argv[1]
    args = json.loads(sys.stdin.readline() or "{}")  # one line: stdin stays open for in_steps
    profile_path = os.environ.get("BENCH_PROFILE")
    if profile_path:  # diagnosis: `BENCH_PROFILE=/tmp/x.prof python -m bench --only ...`
        profiler = cProfile.Profile()
        result = profiler.runcall(JOBS[job], args)
        profiler.dump_stats(f"{profile_path}.{job}.{os.getpid()}")
    else:
        result = JOBS[job](args)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
