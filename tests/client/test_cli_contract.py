"""`sa-export` against a fake service that answers as CONTRACT.md says (tests/client/fake_service.py):
what the real service does not serve yet (re-run, the results CSV), and what is hard to make it do
on cue (a signed link that expires, an outage in the middle of a wait, Zooniverse's sign-in)."""

import io
import json

import pytest

from sa_export import cli, waiting
from tests.client.fake_service import CSV, PASSWORD, TOKEN, USERNAME, error, export_resource
from tests.client.running import assert_no_traceback, cli_env, sa_export

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

FAST = ("--interval", "0.05")


def walk(fake, *statuses, **final_changes):
    """An export of 1234/5678 that the next start answers with (202) and whose reads walk
    through `statuses`, the last with `final_changes`."""
    first = export_resource(statuses[0])
    states = [export_resource(s, first["id"]) for s in statuses[:-1]]
    states.append(export_resource(statuses[-1], first["id"], **final_changes))
    export_id = fake.script(*states)
    fake.starts[("1234", "5678")] = (202, export_id)
    return export_id


def test_export_waits_to_completion_and_saves_the_csv_without_sending_the_token_there(fake, tmp_path):
    export_id = walk(
        fake, "queued", "building", "submitted", "running", "completed", ml_message="Check number 3"
    )
    fake.scripts[export_id][1]["progress"] = {"subjects_done": 10, "subjects_total": 25}
    target = tmp_path / "results.csv"
    result = sa_export(
        "export", "1234", "5678", "--wait", "--csv", str(target), *FAST, env=cli_env(fake.url, TOKEN)
    )
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == CSV
    assert list(tmp_path.iterdir()) == [target]  # no partial file left behind
    assert result.stderr == ""  # not a terminal: no bar, no chatter
    out = result.stdout
    assert f"Started export {export_id}" in out
    assert f"Export {export_id}: completed" in out
    assert (
        "Subject Assistant: https://subject-assistant.zooniverse.org/#/tasks/f940ecd58c7746b1bde89bd6ba5a5202"
        in out
    )
    assert "images scored" in out and "45" in out and "(Failure inference: 2)" in out
    assert "subjects all likely empty" in out and "at most 0.5" in out
    assert f"Results CSV: saved to {target}" in out
    [download] = fake.csv_requests
    assert "Authorization" not in download and TOKEN not in json.dumps(download)
    assert fake.reads[export_id] == 5  # the start's answer, then one read per state


def test_csv_alone_implies_waiting_and_an_expired_link_is_read_again(fake, tmp_path):
    export_id = walk(fake, "queued", "running", "completed")
    fake.refused_links = {1}  # the link minted at the read that saw `completed` has expired
    target = tmp_path / "results.csv"
    result = sa_export("export", "1234", "5678", "--csv", str(target), *FAST, env=cli_env(fake.url, TOKEN))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == CSV
    assert len(fake.csv_requests) == 2 and fake.links_minted == 2
    assert fake.reads[export_id] == 4  # the start, two reads to `completed`, one for a fresh link


def test_a_link_refused_twice_is_exit_6_with_the_export_in_the_json(fake, tmp_path):
    export_id = walk(fake, "running", "completed")
    fake.refused_links = {1, 2}
    target = tmp_path / "results.csv"
    result = sa_export(
        "export", "1234", "5678", "--csv", str(target), "--json", *FAST, env=cli_env(fake.url, TOKEN)
    )
    assert result.returncode == 6, result.stderr
    document = json.loads(result.stdout)
    assert document["error"]["code"] == "csv_link_refused"
    assert document["export"]["id"] == export_id and document["export"]["status"] == "completed"
    assert "refused twice" in result.stderr
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_no_csv_offered_is_exit_6_after_showing_the_results(fake, tmp_path):
    walk(fake, "running", "completed", results_csv_url=None)
    result = sa_export(
        "export", "1234", "5678", "--csv", str(tmp_path / "r.csv"), *FAST, env=cli_env(fake.url, TOKEN)
    )
    assert result.returncode == 6
    assert "Subject Assistant: https://" in result.stdout and "images scored" in result.stdout
    assert "offers no results CSV" in result.stderr
    assert_no_traceback(result)


@pytest.mark.parametrize(
    ("final", "changes", "code"),
    [
        ("completed", {}, 0),
        ("failed", {"error": {"code": "ml_failed", "message": "The ML service gave up: quota exceeded."}}, 1),
        ("cancelled", {"ml_status": "canceled"}, 3),
    ],
)
def test_status_wait_exits_by_how_the_export_ended(fake, final, changes, code):
    export_id = walk(fake, "building", "running", final, **changes)
    result = sa_export("status", export_id, "--wait", *FAST, env=cli_env(fake.url, TOKEN))
    assert result.returncode == code, result.stderr
    assert f"Export {export_id}: {final}" in result.stdout
    if final == "failed":
        assert "Error (ml_failed): The ML service gave up: quota exceeded." in result.stdout
    # Without --wait, status shows the export and succeeds, whatever its state.
    again = sa_export("status", export_id, "--json", env=cli_env(fake.url, TOKEN))
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == final


def test_rerun_starts_a_new_export_and_waits_for_it(fake):
    parent = fake.script(export_resource("completed"))
    child = fake.script(
        export_resource("queued", rerun_of=parent),
        export_resource("completed", rerun_of=parent, results_csv_url=None),
    )
    fake.reruns[parent] = (202, child)
    result = sa_export("rerun", parent, "--wait", *FAST, env=cli_env(fake.url, TOKEN))
    assert result.returncode == 0, result.stderr
    assert f"Re-running the failed and missing images of {parent}: export {child}." in result.stdout
    assert f"Re-run of export {parent}" in result.stdout and f"Export {child}: completed" in result.stdout


def test_rerun_joins_an_active_export(fake):
    parent = fake.script(export_resource("completed"))
    active = fake.script(export_resource("running"))
    fake.reruns[parent] = (200, active)
    result = sa_export("rerun", parent, "--json", env=cli_env(fake.url, TOKEN))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == active
    human = sa_export("rerun", parent, env=cli_env(fake.url, TOKEN))
    assert f"already active: {active}" in human.stdout
    assert f"sa-export status {active} --wait" in human.stdout


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("nothing_to_rerun", "Every image of this export was scored: there is nothing to re-run."),
        ("export_not_completed", "Only a completed export can be re-run; this one is running."),
    ],
)
def test_rerun_refused_is_exit_4_with_the_services_words(fake, code, message):
    parent = fake.script(export_resource("completed"))
    fake.reruns[parent] = (409, error(code, message))
    result = sa_export("rerun", parent, env=cli_env(fake.url, TOKEN))
    assert result.returncode == 4
    assert message in result.stderr and f"409 {code}" in result.stderr
    assert result.stdout == ""
    assert_no_traceback(result)
    machine = sa_export("rerun", parent, "--json", env=cli_env(fake.url, TOKEN))
    assert machine.returncode == 4
    assert json.loads(machine.stdout) == {"error": {"code": code, "message": message, "status": 409}}


def test_a_service_failing_for_a_while_during_a_wait_is_ridden_out(fake):
    export_id = walk(fake, "running", "running", "completed", results_csv_url=None)
    fault = fake.faults.add(r"^/api/exports/", "status", status=500, times=4, method="GET")
    result = sa_export("export", "1234", "5678", "--wait", *FAST, env=cli_env(fake.url, TOKEN))
    assert result.returncode == 0, result.stderr
    assert fault.hits == 4
    assert f"Export {export_id}: completed" in result.stdout


def test_a_service_down_for_longer_than_the_patience_is_exit_5_with_how_to_follow(fake, monkeypatch, capsys):
    export_id = walk(fake, "running", "running")
    fake.faults.add(r"^/api/exports/", "status", status=500, method="GET")
    monkeypatch.setattr(waiting, "PATIENCE", 0.3)
    code = cli.main(["export", "1234", "5678", "--wait", *FAST], env=cli_env(fake.url, TOKEN))
    assert code == 5
    err = capsys.readouterr().err
    assert "Injected fault: HTTP 500" in err
    assert f"Export {export_id} goes on; follow it with: sa-export status {export_id} --wait" in err


def test_an_answer_that_is_not_the_services_json_is_exit_5(fake):
    fake.faults.add(r"^/api/exports/", "status", status=200, body="<html>Welcome to nginx</html>")
    result = sa_export("status", "1234-5678-x", env=cli_env(fake.url, TOKEN))
    assert result.returncode == 5
    assert "not the export service's JSON: is the URL right?" in result.stderr
    assert_no_traceback(result)


def test_json_that_is_not_an_export_is_exit_5(fake):
    fake.faults.add(r"^/api/exports/", "status", status=200, body={"status": "ok"})
    result = sa_export("status", "1234-5678-x", "--json", env=cli_env(fake.url, TOKEN))
    assert result.returncode == 5
    assert json.loads(result.stdout)["error"]["code"] == "not_an_export"
    assert_no_traceback(result)


def test_usage_errors_are_exit_2(fake):
    plain = sa_export("status", "x", "--url", "http://example.org", env=cli_env(None, TOKEN))
    assert plain.returncode == 2 and "unencrypted" in plain.stderr
    nowhere = sa_export("status", "x", env=cli_env(None, TOKEN))
    assert nowhere.returncode == 2 and "SA_EXPORT_URL" in nowhere.stderr
    # There is no way to give the token as an argument (`ps` would show it).
    argument = sa_export("status", "x", "--token", TOKEN, env=cli_env(fake.url))
    assert argument.returncode == 2 and "unrecognized arguments" in argument.stderr
    for result in (plain, nowhere, argument):
        assert_no_traceback(result)
    assert fake.total_requests == 0


def test_without_a_token_and_without_a_terminal_it_says_what_to_set(fake):
    result = sa_export("status", "x", env=cli_env(fake.url))
    assert result.returncode == 2
    assert "No Panoptes token: set PANOPTES_TOKEN" in result.stderr
    assert fake.total_requests == 0


def test_network_trouble_is_exit_5(unused_port):
    result = sa_export("list", "1234", env=cli_env(f"http://127.0.0.1:{unused_port}", TOKEN))
    assert result.returncode == 5
    assert f"Could not reach the export service at http://127.0.0.1:{unused_port}: Connection refused." in (
        result.stderr
    )
    assert_no_traceback(result)


class Terminal(io.StringIO):
    """Standard input as a person at a terminal types it."""

    def isatty(self):
        return True


def test_signing_in_with_panoptes_client_asks_on_the_terminal(fake, monkeypatch, capsys):
    export_id = fake.script(export_resource("running"))
    monkeypatch.setattr("sys.stdin", Terminal(USERNAME + "\n"))
    asked = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    code = cli.main(["status", export_id, "--url", fake.url], env=cli_env(None, PANOPTES_ENDPOINT=fake.url))
    assert code == 0
    captured = capsys.readouterr()
    assert f"Sign in to Zooniverse ({fake.url})." in captured.err and "Username: " in captured.err
    assert asked == ["Password: "] and fake.sign_ins == 1
    assert f"Export {export_id}: at the ML service, running" in captured.out
    assert PASSWORD not in captured.out + captured.err


def test_a_refused_sign_in_is_exit_4(fake, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", Terminal(USERNAME + "\n"))
    monkeypatch.setattr("getpass.getpass", lambda prompt: "wrong password")
    code = cli.main(["list", "1234", "--url", fake.url], env=cli_env(None, PANOPTES_ENDPOINT=fake.url))
    assert code == 4
    assert "Zooniverse did not sign you in: Invalid login or password." in capsys.readouterr().err
    assert fake.count("/api") == 0
