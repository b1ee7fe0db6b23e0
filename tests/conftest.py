"""Fixtures for every test: Azurite (the real storage emulator) once per session, and the whole
service through the local host (`stack`, see tests/harness.py)."""

import dataclasses
import fcntl
import json
import os
import warnings

import coverage
import pytest
from coverage.exceptions import CoverageWarning

import function_app
from devtools.azurite import start_azurite
from devtools.host import LocalHost
from devtools.local_env import offline_settings
from exports.services import Services, reset_services
from exports.settings import ExportSettings
from page.settings import get_page_settings
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample
from tests.appinsights import Capture, run_scenario
from tests.harness import FAST, TOKEN_KEY, Stack, clear_storage, host_json
from tests.tracing import untrace_library_calls

# Everything the suite calls (Azurite, the stand-ins, the local host) is on this machine, so no
# call may go through a proxy the machine sets in HTTP_PROXY. requests (ours and the Azure
# SDK's) also looks the proxies up in the environment on every call unless NO_PROXY names the
# host; that lookup took a tenth of the suite's Python time in the stack tests (0.49 ms a call
# traced, 0.02 ms with the host in NO_PROXY). requests reads no_proxy before NO_PROXY: both are
# set. Subprocesses inherit it.
LOOPBACK = ("127.0.0.1", "localhost")
_no_proxy = [h for h in (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").split(",") if h]
os.environ["no_proxy"] = os.environ["NO_PROXY"] = ",".join(
    [*_no_proxy, *(h for h in LOOPBACK if h not in _no_proxy)]
)

# Under `make test`'s coverage, the Azure SDK's, requests' and urllib3's calls run untraced
# (tests/tracing.py says which and why).
if coverage.Coverage.current() is not None:
    untrace_library_calls()


@pytest.fixture(scope="session")
def azurite():
    emulator = start_azurite()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def telemetry(azurite, tmp_path_factory, worker_id) -> Capture:
    """What the app's telemetry exporter sent during a scenario with every event the runbook
    and the alerts read (tests/appinsights.py); run once, shared by the tests that read it.
    Under xdist the first worker to ask runs it (about 13 s) and the others read its capture,
    through the run's temporary directory that all workers share."""
    if worker_id == "master":
        return run_scenario(azurite, tmp_path_factory.mktemp("telemetry"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's, one per `pytest` invocation
    with open(shared / "telemetry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        captured = shared / "telemetry.json"
        if captured.exists():
            return Capture(**json.loads(captured.read_text()))
        capture = run_scenario(azurite, tmp_path_factory.mktemp("telemetry"))
        captured.write_text(json.dumps(dataclasses.asdict(capture)))
        return capture


@pytest.fixture
def settings_overrides():
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
def stack(azurite, tmp_path, settings_overrides):
    with PanoptesStandIn() as panoptes, MlServiceStandIn(callers=("zooniverse",)) as ml:
        sample = load_sample(panoptes)
        env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **{**FAST, **settings_overrides})
        # Clear what earlier tests left before the host starts consuming the queue. The table,
        # queues and container are made once per Azurite (their names are fixed; no test
        # deletes them), through clients kept with it: a dozen storage calls and a set of
        # clients less per test.
        services = getattr(azurite, "services", None)
        if services is None:
            services = Services.from_settings(ExportSettings.from_env(env))
            services.ensure_resources()
            azurite.services = services
        clear_storage(services)
        host = LocalHost(
            function_app.app,
            env=env,
            host_json=host_json(tmp_path),
            timers=False,
            cors_origins=["https://subject-assistant.zooniverse.org"],
        )
        with host:
            reset_services()
            get_page_settings.cache_clear()  # the settings are read once per process, as in Azure
            with Stack(host, panoptes, ml, sample, env) as stack:
                yield stack
        reset_services()
        get_page_settings.cache_clear()


# -- the `slow` marker: tests over 5 s (pytest.ini) ---------------------------------------
SLOW_SECONDS = 5.0
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report):
    """Collect tests whose call took over SLOW_SECONDS without the `slow` marker (with xdist,
    the workers' reports arrive here in the controller)."""
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter):
    """Name them, so the marker keeps saying which tests `make test-fast` leaves out. A
    warning, not a failure: a test's time depends on the machine's load."""
    if _unmarked_slow:
        terminalreporter.section(f"tests over {SLOW_SECONDS:.0f} s without the slow marker")
        for nodeid, seconds in sorted(_unmarked_slow, key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")


# -- the `no_cover` marker: tests of scale, and of our tools, run untraced -----------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked no_cover (set-up, call and teardown) runs with `make test`'s coverage
    tracer paused. Either it measures scale, memory or load, and its code paths are the ones
    the other tests cover; or it tests our tools (stand-ins, local host, client, KQL) and runs
    no code of exports/, page/ or shared/ in this process. On Python 3.11 the tracer doubles
    the time of every line in the process, measured or not (the 300,000-image test took 52 s
    traced, 27 s untraced). Threads started meanwhile (the test's stack) stay untraced; they
    end with the test."""
    cov = coverage.Coverage.current() if item.get_closest_marker("no_cover") else None
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        with warnings.catch_warnings():  # on restart it warns that the app is already imported
            warnings.simplefilter("ignore", CoverageWarning)
            cov.start()
