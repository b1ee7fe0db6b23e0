"""Azurite started without the telemetry it is told not to send (devtools/azurite_without_telemetry.cjs)."""

import pathlib
import subprocess

import pytest

from devtools.azurite import AZURITE_MAIN, NODE, ROOT, WITHOUT_TELEMETRY

# What Azurite's common/Telemetry.js does when it loads, then a use of the module.
PROBE = """
const insights = require("applicationinsights");
try {
  console.log(typeof insights.setup);
} catch (error) {
  console.log("refused: " + error.message);
}
"""


def _probe(*argv: str) -> str:
    done = subprocess.run(
        [NODE, "--require", str(WITHOUT_TELEMETRY), "-e", PROBE, "--", *argv],
        cwd=ROOT / "node_modules" / "azurite",  # where Azurite's require finds the package
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.no_cover
def test_with_telemetry_disabled_the_module_is_not_loaded_and_any_use_fails_loudly():
    assert _probe("--disableTelemetry") == "refused: applicationinsights.setup used with --disableTelemetry"


@pytest.mark.no_cover
def test_without_the_flag_azurite_gets_the_real_module():
    assert _probe() == "function"


def test_our_azurite_runs_with_the_preload_and_the_flag(azurite):
    """The suite's own Azurite, started by devtools/azurite.py as `make run` and the demo start theirs."""
    assert azurite.process is not None
    args = pathlib.Path(f"/proc/{azurite.process.pid}/cmdline").read_bytes().decode().split("\0")
    assert args[args.index("--require") + 1] == str(WITHOUT_TELEMETRY)
    assert str(AZURITE_MAIN) in args and "--disableTelemetry" in args
