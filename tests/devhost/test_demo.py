"""`make demo` as a newcomer reads it: the Subject Assistant link only once the Subject Assistant
can open the task, no claim that it cannot, and no address at the end that has already stopped."""

import os
import re
import subprocess
import sys

import pytest

from devtools.azurite import ROOT
from scripts.demo import assistant_link

URL = "https://subject-assistant.zooniverse.org/#/tasks/t1"


@pytest.mark.parametrize(
    "status, ml_status, shown",
    [
        ("queued", None, False),
        ("submitted", "created", False),  # the Subject Assistant: "ML Task encountered an unknown error"
        ("running", "problem", False),
        ("running", "running", True),
        ("completed", "completed", True),
    ],
)
def test_the_printed_link_waits_for_the_ml_task_to_run(status, ml_status, shown):
    export = {"status": status, "ml_status": ml_status, "subject_assistant_url": URL}
    assert assistant_link(export) == (URL if shown else None)


@pytest.mark.slow
def test_make_demo_completes_and_ends_with_what_is_still_true():
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = out.splitlines()
    first_link = next(
        i for i, line in enumerate(lines) if "subject-assistant.zooniverse.org/#/tasks/" in line
    )
    first_running = next(i for i, line in enumerate(lines) if re.search(r"ML task \w+ is running", line))
    assert first_link > first_running, "the link was printed before the ML task ran"
    assert "cannot open" not in out
    host = re.search(r"local host (http://127\.0\.0\.1:\d+)", out).group(1)
    after_the_run = out[out.index("The Subject Assistant link (") :]
    assert host not in after_the_run, "the demo ends by naming its own stopped host"
    assert "make run" in lines[-1]
