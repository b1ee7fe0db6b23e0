"""`make run` as a newcomer meets it: one command starts everything, says where it is and who can
sign in, an export started the way the banner shows reaches the Subject Assistant link, and any
stop signal stops everything, Azurite included."""

import contextlib
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from devtools import azurite as azurite_module
from devtools.azurite import ROOT, free_port, running_azurite, start_azurite
from devtools.run import sample_users
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample


def start_make_run(tmp_path):
    """`python -m devtools.run` in its own process group (as make runs it), once it listens:
    (process, port, log file, Azurite's blob port)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while "Local Functions host listening" not in log.read_text():
        assert run.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    blob_port = int(re.search(r"Storage +Azurite, blob :(\d+)", log.read_text()).group(1))
    return run, port, log, blob_port


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def assert_stops(run, blob_port, log, timeout=60):
    """The process ends by itself, and Azurite (in a session of its own) with it."""
    try:
        run.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        raise AssertionError(f"make run did not stop: {log.read_text()}") from None
    deadline = time.monotonic() + 30
    while listening(blob_port):
        assert time.monotonic() < deadline, f"Azurite still listens on {blob_port} after make run stopped"
        time.sleep(0.2)


@pytest.mark.slow
def test_make_run_starts_everything_and_says_how_to_use_it(tmp_path):
    run, port, log, blob_port = start_make_run(tmp_path)
    try:
        banner = log.read_text()
        base = f"http://127.0.0.1:{port}"
        with PanoptesStandIn() as panoptes:  # the same sample data, to read its names
            sample = load_sample(panoptes)
        for expected in (
            f"The page       {base}/",
            f"The API        {base}/api/",
            "demo-owner-token",
            "demo-tester-token",
            "Panoptes       http://127.0.0.1:",
            "(emulator: its tasks move every 5 s)",
            "no local.settings.json",
            "curl -s -X POST",
            f'"{sample.other_project_name}" (private',
            '"Camera C - May (3,000 subjects)"',
        ):
            assert expected in banner, expected
        # Every user of the stand-in's sign-in form, with their token.
        for login, token, _ in sample_users(sample):
            assert re.search(rf"^    {login} +{token} ", banner, re.M), login
        assert "cannot open" not in banner  # pointed at this emulator, the Subject Assistant does
        assert requests.get(base + "/", timeout=10).headers["Content-Type"].startswith("text/html")
        owner = {"Authorization": "Bearer demo-owner-token"}
        started = requests.post(
            f"{base}/api/projects/1234/subject-sets/5678/exports", headers=owner, timeout=10
        )
        assert started.status_code == 202
        deadline = time.monotonic() + 60  # the poll runs every few seconds in `make run`
        while (
            not (
                export := requests.get(base + started.headers["Location"], headers=owner, timeout=10).json()
            )["subject_assistant_url"]
            or export["status"] != "completed"
        ):
            assert time.monotonic() < deadline, export
            time.sleep(0.5)
        assert re.fullmatch(
            r"https://subject-assistant\.zooniverse\.org/#/tasks/[0-9a-f]{32}",
            export["subject_assistant_url"],
        )
        assert "poll tick: 0 active" not in log.read_text()

        # The large set reads over several slow pages: its progress can be watched.
        large = requests.post(
            f"{base}/api/projects/1234/subject-sets/5680/exports", headers=owner, timeout=10
        )
        assert large.status_code == 202
        seen, deadline = [], time.monotonic() + 60
        while not any(0 < done < total for status, done, total in seen if status == "building"):
            assert time.monotonic() < deadline, seen
            export = requests.get(base + large.headers["Location"], headers=owner, timeout=10).json()
            seen.append(
                (export["status"], export["progress"]["subjects_done"], export["progress"]["subjects_total"])
            )
            time.sleep(0.2)
        requests.post(f"{base}/api/exports/{export['id']}/cancel", headers=owner, timeout=10)
    finally:
        # As make stops it: SIGTERM to the whole group, then make passes its own SIGTERM on.
        os.killpg(run.pid, signal.SIGTERM)
        run.send_signal(signal.SIGTERM)
    assert_stops(run, blob_port, log)
    assert "Stopped: Azurite, the stand-ins and the local host." in log.read_text()


def test_azurite_stops_even_when_make_run_is_killed(tmp_path):
    """SIGKILL cannot be handled: the kernel stops Azurite for us (parent-death signal)."""
    run, _, log, blob_port = start_make_run(tmp_path)
    assert listening(blob_port)
    run.kill()
    assert_stops(run, blob_port, log)


def test_azurite_on_ports_another_azurite_holds_is_an_error_not_the_other_one():
    """Two `make run`s starting at once both find the usual ports free: the second Azurite
    exits (EADDRINUSE) while the first answers on those ports. start_azurite must say so,
    so that make run takes other ports, instead of handing out the first one's storage."""
    with running_azurite() as first, pytest.raises(RuntimeError, match="exited early"):
        start_azurite(first.blob_port, first.queue_port, first.table_port)


def test_a_free_port_taken_before_azurite_binds_it_means_other_ports_not_an_error(monkeypatch):
    """Free ports are chosen a second or two before Azurite binds them; another process (a test
    worker's connection) may take one meanwhile. Azurite then starts on other free ports. The
    working directories of both starts, the failed one's too, are gone once it has stopped."""
    real_free_ports = azurite_module.free_ports
    chosen = []
    workdirs = []
    real_mkdtemp = azurite_module.tempfile.mkdtemp

    def recorded_mkdtemp(*args, **kwargs):
        workdirs.append(pathlib.Path(real_mkdtemp(*args, **kwargs)))
        return str(workdirs[-1])

    monkeypatch.setattr(azurite_module.tempfile, "mkdtemp", recorded_mkdtemp)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def first_a_taken_port(count):  # what a race would hand out: a port in use by then
            chosen.append([port, *real_free_ports(count - 1)] if not chosen else real_free_ports(count))
            return chosen[-1]

        monkeypatch.setattr(azurite_module, "free_ports", first_a_taken_port)
        with running_azurite() as azurite:
            assert len(chosen) == 2 and chosen[0][0] == port
            assert [azurite.blob_port, azurite.queue_port, azurite.table_port] == chosen[1]
            assert listening(azurite.table_port)
            assert len(workdirs) == 2 and not workdirs[0].exists() and workdirs[1].exists()
    assert not any(d.exists() for d in workdirs)
