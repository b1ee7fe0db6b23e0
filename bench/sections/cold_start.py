"""Section 6: a cold start's import of function_app, in fresh processes, against a bare
`import azure.functions` measured in the same run (what any Python function app pays).

Each process times its own import (interpreter start-up is the same for both and left out);
the two imports alternate so a change in the machine's load hits both alike. Run as `make
bench` runs it (PYTHONDONTWRITEBYTECODE=1), the app's own modules are compiled from source at
every start, as they are from a read-only deployment package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.common import median
from bench.report import Table, log, secs
from bench.rig import ROOT

TARGET = 1.5  # function_app's import at most this many times the bare azure.functions import
BASELINE = "azure.functions"
APP = "function_app"
# Times the import and names what it loaded; the indexing the worker does next is included for
# the app, since a cold start pays for it too.
PROBE = """
import json, sys, time
started = time.perf_counter()
import {module} as imported
if hasattr(imported, "app"):
    imported.app.get_functions()
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules)}}))
"""


def import_time(module: str) -> tuple[float, int]:
    """(seconds to import `module` in a fresh interpreter, modules loaded by then)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["modules"])


OWN_PACKAGES = ("exports", "page", "shared")


def heaviest_own_imports(module: str, count: int = 5) -> list[tuple[str, float]]:
    """The app's own modules that `module` imports, slowest first by cumulative time (one run
    of python -X importtime): where to look when the ratio grows."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )
    found = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if cumulative.isdigit() and name.split(".")[0] in OWN_PACKAGES:
            found.append((name, int(cumulative) / 1e6))
    return sorted(found, key=lambda item: item[1], reverse=True)[:count]


def run(runs: int, t: Table) -> None:
    t.section(f"6. Cold start: import {APP} (with indexing) vs a bare import {BASELINE}, fresh processes")
    log(f"cold start: {runs} fresh processes each")
    base, ours = [], []
    base_modules = ours_modules = 0
    for _ in range(runs):
        seconds, base_modules = import_time(BASELINE)
        base.append(seconds)
        seconds, ours_modules = import_time(APP)
        ours.append(seconds)
    base_median, ours_median = median(base), median(ours)
    ratio = ours_median / base_median
    t.row(f"import {BASELINE}: median of {runs}", secs(base_median), f"({base_modules} modules loaded)")
    t.row(f"import {APP} + indexing: median of {runs}", secs(ours_median), f"({ours_modules} modules loaded)")
    t.row(f"{APP} / {BASELINE}", f"{ratio:.2f}x")
    for name, seconds in heaviest_own_imports(APP):
        t.row(f"  own module {name}", secs(seconds), "(cumulative import time, one run)")
    t.note(
        "the handlers, the SDK clients and the Panoptes and ML code load on first use "
        "(exports/blueprint.py); tests/unit/test_cold_start.py pins what the import leaves out"
    )
    t.target(
        f"cold start: import {APP} <= {TARGET}x import {BASELINE}",
        ratio <= TARGET,
        f"{ratio:.2f}x ({secs(ours_median)} vs {secs(base_median)})",
    )
