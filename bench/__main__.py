"""`make bench`: the export service against Azurite and the stand-ins, vs its floors and Hamlet.

Every figure is measured in this run, and every ratio compares figures of this run. Sections
(one module each in bench/sections/, the report table in bench/report.py):
1. export of N subjects (worker in its own process) vs the Hamlet-style baseline (panoptes-client);
2. peak RSS of the worker process for 100,000 and 1,000,000 frames;
3. one poll tick over 1,000 active exports, concurrent vs one by one;
4. HTTP start latency through the local host vs its own storage round trips;
5. summary of a 1,000,000-image detections file, streamed, vs json.load of the same file;
6. a cold start's import of function_app vs a bare `import azure.functions`, fresh processes.
Options: `python -m bench --help` (`--only` picks sections). Environment: BENCH_PANOPTES_LATENCY,
BENCH_ML_LATENCY (seconds).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable

from bench.options import Options, parse_args
from bench.report import Table
from bench.rig import Rig
from bench.sections import baseline, cold_start, export, http, memory, results, tick

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "latest.txt"

# Sections in the order a full run takes them; each needs the rig (Azurite and the stand-ins).
RIG_SECTIONS: dict[str, Callable[[Rig, Table], None]] = {
    "export": export.run,
    "baseline": baseline.run,
    "memory": memory.run,
    "tick": tick.run,
    "http": http.run,
    "results": results.run,
}


def run_sections(opts: Options, table: Table) -> None:
    wanted = [name for name in RIG_SECTIONS if name in opts.only]
    if "baseline" in wanted and "export" not in wanted:
        wanted.insert(0, "export")  # the baseline is compared with section 1's figures
    if wanted:
        rig = Rig(opts)
        try:
            for name in wanted:
                RIG_SECTIONS[name](rig, table)
        finally:
            rig.close()
    if "cold_start" in opts.only:  # fresh processes of its own: no rig
        cold_start.run(opts.cold_start_runs, table)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)
    opts = parse_args(argv, __doc__ or "")
    started = time.perf_counter()
    table = Table()
    failed: Exception | None = None
    try:
        run_sections(opts, table)
    except Exception as exc:  # print the sections measured so far, then fail
        failed = exc
        table.note(f"the run stopped: {type(exc).__name__}: {exc}")
    total = time.perf_counter() - started
    header = [
        f"Subject Assistant export service: benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})",
        f"Stand-ins: Panoptes latency {opts.panoptes_latency * 1000:.0f} ms, ML latency "
        f"{opts.ml_latency * 1000:.0f} ms; Azurite in memory. Whole run: {total:.0f} s.",
        f"Sections: {', '.join(opts.only)}.",
    ]
    text = table.render(header)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    if failed is not None:
        raise failed
    return 0


if __name__ == "__main__":
    sys.exit(main())
