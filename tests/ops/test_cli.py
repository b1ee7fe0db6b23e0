"""The operator's CLI (`python -m ops`) against Azurite: listing and showing exports, failing and
re-queueing a stuck one (asking first), re-driving the poison queue into a completed export,
and the readiness view naming what is down."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from devtools.local_env import offline_settings
from exports import model
from exports.contract import Status
from exports.messages import ExportMessage
from exports.services import Services
from exports.settings import ExportSettings
from ops.__main__ import main
from shared.names import EXPORT_POISON_QUEUE, EXPORT_QUEUE, EXPORT_REDRIVEN_QUEUE
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from tests.harness import (
    TOKEN_KEY,
    clear_storage,
    create_export_record,
    poison_messages,
    wait_final,
    wait_for,
)


@dataclasses.dataclass
class Unused:
    url: str = "http://127.0.0.1:9"


@pytest.fixture
def services(azurite):
    env = offline_settings(azurite, Unused(), Unused(), TOKEN_KEY)
    found = Services.from_settings(ExportSettings.from_env(env))
    found.ensure_resources()
    clear_storage(found)
    return found


def cli(azurite, *args, answer="n"):
    """Run the CLI with the test's Azurite; what it printed and its exit code."""
    asked = []

    def ask(question):
        asked.append(question)
        return answer

    code = main(["--connection-string", azurite.connection_string, *args], ask=ask)
    return code, asked


def aged(services, export, hours, **changes):
    """Store the export as if it had been created `hours` ago."""
    current = services.store.get(export.id)
    then = services.clock() - dt.timedelta(hours=hours)
    return services.store.update(
        dataclasses.replace(export, created_at=then, updated_at=then, **changes), current
    )


def test_list_by_status_and_age_and_show_one(services, azurite, capsys):
    fresh, _ = create_export_record(services, subject_set_id="101")
    current = services.store.get(fresh.id)
    services.store.update(
        model.fail(current.export, "panoptes_error", "Panoptes said no", services.clock()), current
    )
    stale, _ = create_export_record(services, subject_set_id="102")
    aged(services, stale, 3, status=Status.BUILDING)
    done, _ = create_export_record(services, subject_set_id="101")  # the set's next export
    capsys.readouterr()

    assert cli(azurite, "list")[0] == 0
    out = capsys.readouterr().out
    assert stale.id in out and done.id in out and fresh.id not in out  # active ones only
    assert out.index(stale.id) < out.index(done.id)  # oldest first
    cli(azurite, "list", "--status", "building")
    assert capsys.readouterr().out.count("building") == 1
    cli(azurite, "list", "--older-than", "2h")
    out = capsys.readouterr().out
    assert stale.id in out and done.id not in out
    cli(azurite, "list", "--finished", "--json")
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["id"]: r["status"] for r in records}[fresh.id] == "failed"
    assert all(r["token_ciphertext"] in (None, "(sealed token kept)") for r in records)

    services.storage.queue(EXPORT_POISON_QUEUE).send_message(ExportMessage(done.id, None).encode())
    assert cli(azurite, "show", done.id)[0] == 0
    shown = capsys.readouterr().out
    assert f"export {done.id}: queued" in shown and "timeline" in shown and "created (queued)" in shown
    assert fresh.id in shown and "panoptes_error" in shown  # the set's earlier export
    assert "poison queue: message" in shown
    assert "(sealed token kept)" in shown and services.store.get(done.id).export.token_ciphertext not in shown
    assert cli(azurite, "show", "1-2-00000000000000000000x")[0] == 1


def test_fail_asks_first_then_fails_and_refuses_a_final_export(services, azurite, capsys):
    export, _ = create_export_record(services, subject_set_id="103")
    code, asked = cli(azurite, "fail", export.id, "--reason", "stuck for a day")
    assert code == 1 and len(asked) == 1 and services.store.get(export.id).export.status == "queued"
    code, asked = cli(azurite, "fail", export.id, "--reason", "stuck for a day", answer="yes")
    failed = services.store.get(export.id).export
    assert code == 0 and (failed.status, failed.error_code) == ("failed", "internal_error")
    assert "stuck for a day" in failed.error_message and failed.token_ciphertext is None
    assert cli(azurite, "fail", export.id, "--yes")[0] == 1
    assert "already failed" in capsys.readouterr().err


def test_requeue_waits_for_a_live_lease_then_sends_the_message_again(services, azurite, capsys):
    export, body = create_export_record(services, subject_set_id="104")
    now = services.clock()
    current = services.store.get(export.id)
    services.store.update(
        model.claim_for_build(current.export, "worker-1", now, dt.timedelta(minutes=5)), current
    )
    assert cli(azurite, "requeue", export.id, "--yes")[0] == 1
    assert "being built right now" in capsys.readouterr().err
    current = services.store.get(export.id)
    services.store.update(
        dataclasses.replace(current.export, lease_until=now - dt.timedelta(minutes=1)), current
    )
    assert cli(azurite, "requeue", export.id)[0] == 1  # answered no
    assert services.queue.peek_messages() == []
    assert cli(azurite, "requeue", export.id, answer="y")[0] == 0
    requeued = services.store.get(export.id).export
    assert requeued.status == "queued" and requeued.requeued and requeued.lease_owner is None
    [message] = services.queue.peek_messages()
    assert ExportMessage.parse(message.content) == ExportMessage.parse(body)  # the same sealed token
    submitted, _ = create_export_record(services, subject_set_id="105")
    current = services.store.get(submitted.id)
    services.store.update(
        dataclasses.replace(current.export, status=Status.SUBMITTED, ml_task_id="t1"), current
    )
    assert cli(azurite, "requeue", submitted.id, "--yes")[0] == 1
    assert "with the ML service" in capsys.readouterr().err


@pytest.mark.parametrize("settings_overrides", [{"AzureWebJobs.fail_poisoned_export.Disabled": "true"}])
@pytest.mark.slow
def test_a_redrive_after_the_fix_ends_in_a_completed_export(stack, azurite, monkeypatch, capsys):
    """A worker bug sends an export's message to the poison queue; the poison handler is
    disabled (what the runbook says to do during such an incident), so the message waits. Once
    the bug is fixed, the re-drive sends it back once and the export completes. Messages of a
    final export, of no export, and malformed ones are refused and stay."""
    from exports import worker

    original = worker.ExportRun._build_manifest

    def bug(self):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(worker.ExportRun, "_build_manifest", bug)
    started = stack.start_export().json()
    wait_for(lambda: poison_messages(stack.services), 60, message="the message to reach the poison queue")
    assert stack.export(started["id"]).status in ("queued", "building")
    cancelled, body = create_export_record(stack.services, subject_set_id="5679")
    stack.call("POST", f"/api/exports/{cancelled.id}/cancel")
    poison = stack.services.storage.queue(EXPORT_POISON_QUEUE)
    poison.send_message(body)
    poison.send_message("not an export message")
    poison.send_message(ExportMessage("1234-5678-00000000000000000000a", None).encode())
    monkeypatch.setattr(worker.ExportRun, "_build_manifest", original)  # the fix is deployed
    capsys.readouterr()

    code, asked = cli(azurite, "redrive")  # answered no: nothing moves
    assert code == 1 and asked and len(poison_messages(stack.services)) == 4
    plan = capsys.readouterr().out
    assert f"re-drive  {started['id']}" in plan and "already cancelled" in plan

    assert cli(azurite, "redrive", "--yes")[0] == 0
    out = capsys.readouterr().out
    assert "1 re-driven, 3 refused" in out
    stack.settle()
    stack.tick(), stack.tick()
    assert wait_final(stack, started["id"]).status == "completed"
    assert stack.ml.accepted_count == 1
    left = poison_messages(stack.services)
    assert len(left) == 3 and not any(started["id"] in m for m in left)
    assert poison.get_queue_properties().approximate_message_count == 3  # invisible ones too
    kept = stack.services.storage.queue(EXPORT_REDRIVEN_QUEUE).peek_messages()
    assert [ExportMessage.parse(m.content).export_id for m in kept] == [started["id"]]
    assert stack.services.storage.queue(EXPORT_QUEUE).peek_messages() == []
    assert cli(azurite, "redrive", "--yes")[0] == 0  # each once: nothing left to re-drive
    assert "0 re-driven, 3 refused" in capsys.readouterr().out


def test_ready_names_what_is_down(services, azurite, capsys):
    with PanoptesStandIn() as panoptes, MlServiceStandIn() as ml:
        args = ["ready", "--panoptes-url", panoptes.url, "--ml-service-url", ml.url, "--timeout", "2"]
        assert cli(azurite, *args)[0] == 0
        out = capsys.readouterr().out
        assert out.count("ok  ") == 3 and "poison queue" in out
        ml.faults.add(r"/task/", "status", status=503)
        panoptes.faults.add(r"/api/projects", "timeout")
        assert cli(azurite, *args)[0] == 1
        lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
        assert lines["storage"].startswith("ok")
        assert lines["Panoptes"].startswith("DOWN") and lines["ML"].startswith("DOWN")
        assert "503" in lines["ML"]


def test_account_means_the_account_in_azure_with_the_operators_sign_in(monkeypatch):
    """--account takes the app's identity-based path (shared/storage.py) with
    DefaultAzureCredential; nothing is called until a command runs (not tried against Azure)."""
    from ops.connect import open_storage, settings_env

    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    assert settings_env(None, "stsaexample") == {"AzureWebJobsStorage__accountName": "stsaexample"}
    storage = open_storage(account="stsaexample")
    assert storage.store.table.url.startswith("https://stsaexample.table.core.windows.net")
    assert storage.poison.url == "https://stsaexample.queue.core.windows.net/subject-assistant-exports-poison"
    assert type(storage.queue.credential).__name__ == "DefaultAzureCredential"
    assert main(["list"]) == 2  # neither a connection string nor an account: says how, changes nothing
