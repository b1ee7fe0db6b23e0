"""`make run` as a newcomer meets it: one command starts everything, says where it is and who can
sign in, and an export started the way the banner shows reaches the Subject Assistant link."""

import os
import re
import signal
import subprocess
import sys
import time

import requests

from devtools.azurite import ROOT, free_port


def test_make_run_starts_everything_and_says_how_to_use_it(tmp_path):
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
    try:
        deadline = time.monotonic() + 60
        while "Local Functions host listening" not in log.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        banner = log.read_text()
        base = f"http://127.0.0.1:{port}"
        for expected in (
            f"The page       {base}/",
            f"The API        {base}/api/",
            "demo-owner-token",
            "demo-tester-token",
            "Panoptes       http://127.0.0.1:",
            "(emulator: its tasks move every 5 s)",
            "no local.settings.json",
            "curl -s -X POST",
        ):
            assert expected in banner, expected
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
    finally:
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
