"""`sa-export` against the whole local stack (Azurite, the local Functions host, the Panoptes
stand-in and the ML emulator; tests/harness.py): the commands a project owner's script runs,
each in its own process as a script runs it. The stack polls the ML service only when a test
ticks it, so a waiting command is ticked along until it ends."""

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

from tests.client.running import COMMAND, CONSOLE_SCRIPT, assert_no_traceback, cli_env, sa_export, start
from tests.harness import wait_for

OWNER = "demo-owner-token"
FAST = ("--interval", "0.2")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def tick_until_done(stack, process, timeout=120.0) -> subprocess.CompletedProcess:
    """Tick the stack's ML poller until the waiting command ends; its result."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "sa-export did not end in time"
        stack.tick()
        time.sleep(0.1)
    out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def only_export(stack) -> str:
    [export] = stack.exports()
    return export.id


def test_export_waited_to_completion_quietly_when_not_a_terminal(stack):
    process = start(
        "export",
        "1234",
        "5678",
        "--wait",
        *FAST,
        env=cli_env(stack.host.url, OWNER),
        command=[str(CONSOLE_SCRIPT)],
    )
    result = tick_until_done(stack, process)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no bar and no chatter in a pipe
    export = stack.get(only_export(stack)).json()
    assert export["status"] == "completed"
    out = result.stdout
    assert out.startswith(f"Started export {export['id']} (queued")
    assert f"Export {export['id']}: completed" in out
    assert f"Subject Assistant: {export['subject_assistant_url']}" in out
    summary = export["results_summary"]
    assert summary["available"] is True
    for key, value in summary.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert re.search(rf"^ +{key.replace('_', ' ')} +{value}\b", out, re.MULTILINE), (key, out)
    # --json: the export resource exactly as the service shows it, and nothing else.
    machine = sa_export("status", export["id"], "--json", env=cli_env(stack.host.url, OWNER))
    assert machine.returncode == 0
    assert same_resource(json.loads(machine.stdout), stack.get(export["id"]).json())


def same_resource(shown, served) -> bool:
    """Equal, but for the CSV links' signatures: each read mints a link anew (its expiry, and
    so its signature, move with the second of the read); the blob it names must be the same."""

    def unsigned(value):
        if isinstance(value, dict):
            return {
                key: (item.split("?", 1)[0] if key == "results_csv_url" and item else unsigned(item))
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [unsigned(item) for item in value]
        return value

    return unsigned(shown) == unsigned(served)


def test_a_failed_export_is_exit_1_with_the_services_error(stack):
    process = start("export", "1234", "5679", "--wait", *FAST, env=cli_env(stack.host.url, OWNER))
    result = tick_until_done(stack, process)
    assert result.returncode == 1, result.stderr
    export = stack.get(only_export(stack)).json()
    assert export["status"] == "failed" and export["error"]["code"] == "subject_set_empty"
    assert f"Error (subject_set_empty): {export['error']['message']}" in result.stdout
    assert_no_traceback(result)


def test_cancelled_while_waiting_is_exit_3_and_a_second_export_joins_the_first(stack):
    env = cli_env(stack.host.url, OWNER)
    waiting = start("export", "1234", "5678", "--wait", *FAST, env=env)
    export_id = wait_for(lambda: stack.exports() and only_export(stack), message="the export to be created")
    wait_for(lambda: stack.export(export_id).status == "submitted", message="the export to be submitted")
    joined = sa_export("export", "1234", "5678", env=env)
    assert joined.returncode == 0
    assert f"Joined the export already active for this subject set: export {export_id}" in joined.stdout

    def cancelled() -> bool:
        # The ML service cancels a task only once it runs: until then the refusal is exit 4.
        result = sa_export("cancel", export_id, env=env)
        if result.returncode == 4 and "cancel_refused" in result.stderr:
            stack.tick()
            return False
        assert result.returncode == 0, result.stderr
        return f"Export {export_id}: cancelled" in result.stdout

    wait_for(cancelled, timeout=60, message="the cancel to be accepted")
    result = tick_until_done(stack, waiting)
    assert result.returncode == 3, result.stderr
    assert f"Export {export_id}: cancelled" in result.stdout
    again = sa_export("cancel", export_id, "--json", env=env)  # already final: refused, in JSON
    assert again.returncode == 4 and json.loads(again.stdout)["error"]["code"] == "export_final", again
    listing = sa_export("list", "1234", "--json", env=env)
    assert listing.returncode == 0
    assert same_resource(json.loads(listing.stdout), stack.call("GET", "/api/projects/1234/exports").json())
    human = sa_export("list", "1234", env=env)
    assert f"  latest export {export_id}: cancelled" in human.stdout


def test_a_wrong_token_is_exit_4_with_the_services_message_and_nothing_started(stack):
    expected = stack.start_export(token="not-a-token").json()["error"]
    result = sa_export("export", "1234", "5678", "--wait", env=cli_env(stack.host.url, "not-a-token"))
    assert result.returncode == 4
    assert f"sa-export: {expected['message']}" in result.stderr
    assert "(the service answered 401 unauthenticated)" in result.stderr
    assert result.stdout == ""
    assert_no_traceback(result)
    machine = sa_export("list", "1234", "--json", env=cli_env(stack.host.url, "not-a-token"))
    assert machine.returncode == 4
    assert json.loads(machine.stdout) == {"error": {**expected, "status": 401}}
    assert stack.exports() == []


def test_ctrl_c_while_waiting_leaves_the_export_going_and_says_how_to_follow_it(stack):
    """In a terminal (a pty): the bar is drawn, Ctrl-C stops the command, not the export."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    # A terminal as a person's is, whatever the test runner's environment says about its own.
    env = {k: v for k, v in cli_env(stack.host.url, OWNER).items() if not k.startswith("TTY_")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [*COMMAND, "export", "1234", "5678", "--wait", *FAST],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        # Not ticked: the worker submits the export, and the ML task stays `created`.
        screen = read_terminal(controller, until="ML service: created")
        process.send_signal(signal.SIGINT)
        screen += read_terminal(controller)
        assert process.wait(timeout=30) == 130
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    export_id = only_export(stack)
    assert f"Started export {export_id}" in screen
    assert "Subjects read" in screen and "25/25" in screen  # the bar, in a terminal
    assert (
        f"Stopped waiting. Export {export_id} goes on; follow it with: sa-export status {export_id} --wait"
        in screen
    )
    assert "Traceback" not in screen
    assert stack.get(export_id).json()["status"] in ("submitted", "running")
    # It goes on: the command it printed follows it to the end.
    follow = start("status", export_id, "--wait", *FAST, env=cli_env(stack.host.url, OWNER))
    result = tick_until_done(stack, follow)
    assert result.returncode == 0, result.stderr
    assert f"Export {export_id}: completed" in result.stdout


def read_terminal(controller: int, until: str | None = None, timeout: float = 60.0) -> str:
    """What the command wrote to its terminal (escape codes removed): until `until` appears,
    or, without it, until the command has closed the terminal."""
    deadline, raw = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command ended and the terminal closed
            chunk = b""
        raw += chunk
        text = ANSI.sub("", raw.decode("utf-8", "replace"))
        if not chunk:
            assert until is None, f"the command ended before showing {until!r}: {text!r}"
            return text
        if until is not None and until in text:
            return text
    raise AssertionError(f"timed out reading the terminal ({until!r}): {raw[-2000:]!r}")


def test_export_waited_to_completion_with_the_csv_downloaded(stack, tmp_path):
    target = tmp_path / "results.csv"
    process = start("export", "1234", "5678", "--csv", str(target), *FAST, env=cli_env(stack.host.url, OWNER))
    result = tick_until_done(stack, process)
    assert result.returncode == 0, result.stderr
    export = stack.get(only_export(stack)).json()
    rows = target.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith(
        "subject_id,frames_sent,frames_scored,frames_failed,frames_missing,max_detection_conf,"
    )
    assert len(rows) == 1 + export["manifest"]["subjects"]
    assert f"Results CSV: saved to {target}" in result.stdout


def test_rerun_of_a_completed_export(stack):
    stack.ml.failure_rate = 0.2  # some images fail (seeded: the same ones every run)
    env = cli_env(stack.host.url, OWNER)
    result = tick_until_done(stack, start("export", "1234", "5678", "--wait", *FAST, env=env))
    assert result.returncode == 0, result.stderr
    parent = only_export(stack)
    rerun = sa_export("rerun", parent, "--json", env=env)
    answer = json.loads(rerun.stdout)
    assert rerun.returncode == 0, rerun.stderr
    assert answer["rerun_of"] == parent and answer["id"] != parent
    assert answer["progress"]["subjects_total"] > 0
