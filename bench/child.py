"""Child process of the benchmark: the function app's worker, alone in its own process.

Usage: python -m bench.child JOB < json-args; prints one JSON line with the results.
Settings come from the environment (as in the Functions host). Jobs:
- export: run `process_export_message` for each body in `bodies` (after `warmup` bodies), report
  wall time per body, idle RSS before the first timed body and the peak RSS (VmHWM) after each.
- tick: run `exports.poller.run_tick` with each concurrency in `concurrencies`; wall time of each.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
import time

from bench.common import reset_peak_rss, rss_kb


def _services():
    from exports.services import get_services
    services = get_services()
    services.store.active_export_ids()  # open the storage connection pools
    return services


def job_export(args: dict) -> dict:
    from exports.worker import process_export_message
    services = _services()
    for body in args.get("warmup", []):
        process_export_message(body, services)
    gc.collect()
    time.sleep(0.2)
    idle = rss_kb("VmRSS")
    hwm_reset = reset_peak_rss()
    hwm_before = rss_kb("VmHWM")
    results = []
    for body in args["bodies"]:
        started = time.perf_counter()
        process_export_message(body, services)
        wall = time.perf_counter() - started
        results.append({"wall": wall, "peak_kb": rss_kb("VmHWM"), "rss_after_kb": rss_kb("VmRSS")})
    return {"idle_kb": idle, "hwm_reset": hwm_reset, "hwm_before_kb": hwm_before, "runs": results}


def job_tick(args: dict) -> dict:
    from exports.poller import run_tick
    services = _services()
    base = services.settings
    out = []
    for concurrency in args["concurrencies"]:
        services.settings = dataclasses.replace(base, ml_poll_concurrency=int(concurrency))
        started = time.perf_counter()
        report = run_tick(services)
        wall = time.perf_counter() - started
        out.append({"concurrency": concurrency, "wall": wall, "active": report.active,
                    "outcomes": dict(report.outcomes)})
    return {"ticks": out}


JOBS = {"export": job_export, "tick": job_tick}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    job = sys.argv[1]
    args = json.loads(sys.stdin.read() or "{}")
    profile_path = os.environ.get("BENCH_PROFILE")
    if profile_path:  # diagnosis: `BENCH_PROFILE=/tmp/x.prof python -m bench --only ...`
        import cProfile
        profiler = cProfile.Profile()
        result = profiler.runcall(JOBS[job], args)
        profiler.dump_stats(f"{profile_path}.{job}.{os.getpid()}")
    else:
        result = JOBS[job](args)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
