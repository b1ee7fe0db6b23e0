"""Secrets never leak (queues incl. poison, table, blobs, logs), and TOKEN_ENCRYPTION_KEY
rotates without losing queued exports (SECURITY.md describes the procedure)."""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.queue import QueueClient

import function_app
from devtools.host import LocalHost
from exports.messages import ExportMessage
from exports.services import reset_services
from shared.crypto import TokenCipher, derive_key
from tests.harness import FIGURES, TOKEN_KEY, create_export_record, host_json, wait_final, wait_for

TOKENS = ("demo-owner-token", "demo-collaborator-token", "demo-outsider-token")
KEY_BYTES = base64.urlsafe_b64decode(TOKEN_KEY)


@pytest.fixture
def sent_messages(monkeypatch):
    """Every queue message's text as it is sent (work queue, retries, the host's poison copies),
    captured before any consumer can take it off the queue."""
    sent: list[str] = []
    original = QueueClient.send_message

    def capture(self, content, *args, **kwargs):
        sent.append(str(content))
        try:  # the host's poison copy is the raw (base64) text: scan what it says, too
            sent.append(base64.b64decode(str(content), validate=True).decode("utf-8"))
        except (ValueError, UnicodeError):
            pass
        return original(self, content, *args, **kwargs)

    monkeypatch.setattr(QueueClient, "send_message", capture)
    return sent


def secrets_of(stack) -> dict[str, str]:
    derived = derive_key(KEY_BYTES).decode()
    storage_key = stack.env["AzureWebJobsStorage"].split("AccountKey=")[1].split(";")[0]
    return {
        **{f"token {t}": t for t in TOKENS},
        "TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
        "derived token key": derived,
        "storage account key": storage_key,
    }


def find_leaks(secrets: dict[str, str], places: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(place, secret name) for each secret found in a place's texts."""
    return [
        (place, name)
        for place, texts in places.items()
        for name, secret in secrets.items()
        if any(secret in text for text in texts)
    ]


def storage_texts(stack) -> dict[str, list[str]]:
    services = stack.services
    blobs = [
        services.container.get_blob_client(b.name).download_blob().readall().decode()
        for b in services.container.list_blobs()
    ]
    return {"table": [repr(dict(row)) for row in stack.table_rows()], "blob": blobs}


def test_the_scan_finds_a_planted_token(stack, sent_messages, caplog):
    """The scan below must be able to fail: a clear token planted in a queue message, a table row
    and a log line is found in each place; the sealed form of the same token is not."""
    secrets = secrets_of(stack)
    stack.services.queue.send_message(ExportMessage("1-2-3", "demo-owner-token").encode())
    stack.services.enqueue(ExportMessage("1-2-3", stack.services.cipher.encrypt("demo-owner-token", "1-2-3")))
    with caplog.at_level(logging.INFO):
        logging.getLogger("exports").info("careless line with demo-collaborator-token")
    places = {"queue": sent_messages, "log": [caplog.text]}
    assert find_leaks(secrets, places) == [
        ("queue", "token demo-owner-token"),
        ("log", "token demo-collaborator-token"),
    ]
    assert find_leaks(secrets, {"queue": sent_messages[1:]}) == []  # sealed: nothing readable
    stack.services.queue.clear_messages()


@pytest.mark.parametrize("settings_overrides", [{"ML_POLL_CONCURRENCY": "2"}])
@pytest.mark.slow
def test_no_secret_in_queues_table_blobs_or_logs(stack, caplog, monkeypatch, sent_messages):
    """A full run (completed, token_expired, poisoned and cancelled exports) with every logger
    at DEBUG. Breaks if a token, the encryption key (or the key derived from it), the storage
    key, or a SAS signature reaches a log line, or a clear token reaches a queue message (as sent,
    retries and poison copies included), a table row or a blob."""
    # Every logger at DEBUG through caplog, which puts each back to its own level after the
    # test: left at DEBUG, every later test on the worker logged each HTTP call of the Azure SDK
    # and urllib3, and pytest's capture formatted every record.
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    from exports import worker

    # 1) completed
    done = stack.start_export().json()
    stack.settle()
    stack.tick(), stack.tick()
    assert stack.export(done["id"]).status == "completed"
    # 2) token expired in the queue (collaborator token)
    stack.panoptes.add_subject_set(
        "8300", "1234", "Expired", [{"id": "1", "locations": [{"image/jpeg": "https://x/1.jpg"}]}]
    )
    expired, body = create_export_record(
        stack.services, subject_set_id="8300", user_id="43", token="demo-collaborator-token"
    )
    stack.panoptes.expire_token("demo-collaborator-token")
    stack.services.queue.send_message(body)
    assert wait_final(stack, expired.id).error_code == "token_expired"
    # 3) a worker bug: the message goes to the poison queue
    stack.panoptes.add_subject_set(
        "8301", "1234", "Crash", [{"id": "2", "locations": [{"image/jpeg": "https://x/2.jpg"}]}]
    )
    original = worker.ExportRun._build_manifest

    def crash(self):
        if self.export.subject_set_id == "8301":
            raise RuntimeError(f"simulated bug while reading subject set {self.export.subject_set_id}")
        return original(self)

    monkeypatch.setattr(worker.ExportRun, "_build_manifest", crash)
    poisoned = stack.start_export(subject_set="8301").json()
    assert wait_final(stack, poisoned["id"], 60).error_code == "internal_error"
    # 4) cancelled while queued
    stack.panoptes.add_subject_set(
        "8302", "1234", "Cancel", [{"id": "3", "locations": [{"image/jpeg": "https://x/3.jpg"}]}]
    )
    stack.panoptes.latency = 0.3
    cancelled = stack.start_export(subject_set="8302").json()
    stack.call("POST", f"/api/exports/{cancelled['id']}/cancel")
    stack.panoptes.latency = 0
    stack.settle(30)

    assert stack.host.invocations["fail_poisoned_export"] >= 1
    poison_copies = [m for m in sent_messages if poisoned["id"] in m]
    assert len(poison_copies) >= 2  # the work message and the host's poison copy, both scanned
    messages = [m for m in map(ExportMessage.parse, sent_messages) if m]
    assert len(messages) >= 5 and all(m.token.startswith("gAAAAA") for m in messages if m.token)
    logs = [record.getMessage() for record in caplog.records]
    logs += [record.exc_text or "" for record in caplog.records]
    logs += [caplog.text]
    assert len(caplog.records) > 50  # really captured at DEBUG (SDK and urllib3 lines included)
    places = {"queue": sent_messages, "log": logs, **storage_texts(stack)}
    leaks = find_leaks(secrets_of(stack), places)
    sas = stack.ml.submissions[0].body["images_requested_json_sas"]
    signature = parse_qs(urlsplit(sas).query)["sig"][0]
    leaks += find_leaks({"manifest SAS signature": signature}, places)
    # A signature value after sig= (a redacted "sig=REDACTED" carries none).
    leaks += [("log", "sig=") for t in logs if re.search(r"(?i)sig=(?!REDACTED)[^&\s]", t)]
    FIGURES["leaks_found"] += len(leaks)
    assert not leaks, sorted(set(leaks))
    # The sealed token is gone from every export record once it is no longer needed.
    assert all(export.token_ciphertext is None for export in stack.exports())


# -- key rotation -------------------------------------------------------------------------------
NEW_KEY = base64.urlsafe_b64encode(b"rotated-token-encryption-key-abcdefghijklmnop").decode()


def restart_host(stack, tmp_path, **changes):
    """Stop the host and start a new one with changed app settings (as a settings change does).
    Returns the new host; the caller stops it."""
    stack.host.stop()
    return start_host(stack, tmp_path, **changes)


def start_host(stack, tmp_path, **changes):
    """Start a new host, the old one stopped, with changed app settings. Returns it."""
    env = {k: v for k, v in {**stack.env, **changes}.items() if v is not None}
    host = LocalHost(function_app.app, env=env, host_json=host_json(tmp_path), timers=False)
    # Forgotten before the start, not after: the new host's pollers may take a message at once,
    # and must read the new settings, not clients the test built under the old ones.
    reset_services()
    host.start()
    stack.host = host
    return host


@pytest.mark.parametrize("settings_overrides", [{"RETRY_DELAY_SECONDS": "1"}])
@pytest.mark.parametrize("previous", [TOKEN_KEY, None])
def test_key_rotation_keeps_queued_exports(stack, tmp_path, previous):
    """An export is queued (token encrypted under the old key) and keeps retrying a Panoptes
    outage while the key is rotated and the host restarted. With TOKEN_ENCRYPTION_KEY_PREVIOUS
    set to the old key it completes; without it, it fails internal_error saying the key changed.
    Breaks if PREVIOUS is ignored, or if an undecryptable token crashes the worker (poison) or
    is silently sent to Panoptes as no token."""
    outage = stack.panoptes.faults.add(r"/api/subjects", "status", status=503)
    body = stack.start_export().json()
    wait_for(lambda: outage.hits >= 1, 20, message="the worker to meet the outage")
    old_cipher = TokenCipher(KEY_BYTES)
    stack.host.stop()  # after the in-flight attempt, whose retry message is then in the queue
    # Read while no host runs: once the message is visible the new host takes it at once (and,
    # without PREVIOUS, fails the export and deletes it), so a read after its start raced its
    # poller and could find the queue empty.
    queued = wait_for(lambda: stack.services.queue.peek_messages(), 20, message="the retry message")
    ciphertext = ExportMessage.parse(queued[0].content).token
    assert old_cipher.decrypt(ciphertext, body["id"]) == "demo-owner-token"  # still under the old key
    host = start_host(stack, tmp_path, TOKEN_ENCRYPTION_KEY=NEW_KEY, TOKEN_ENCRYPTION_KEY_PREVIOUS=previous)
    try:
        outage.remove()
        export = wait_for(
            lambda: (e := stack.export(body["id"])).status in ("submitted", "failed") and e,
            30,
            message="the export to move on",
        )
        if previous:
            assert export.status == "submitted", export
            assert stack.ml.accepted_count == 1
            # Rotation done: PREVIOUS cleared, host restarted, new exports work under the new key.
            restart_host(stack, tmp_path, TOKEN_ENCRYPTION_KEY=NEW_KEY).stop()
            host = restart_host(stack, tmp_path, TOKEN_ENCRYPTION_KEY=NEW_KEY)
            again = stack.start_export(subject_set="5679")  # a different set: 5678 is still active
            assert again.status_code == 202
            assert wait_final(stack, again.json()["id"]).error_code == "subject_set_empty"  # ran, decrypted
        else:
            assert (export.status, export.error_code) == ("failed", "internal_error")
            assert "encryption key" in export.error_message and "export again" in export.error_message
            assert stack.ml.accepted_count == 0
        assert stack.host.errors == []
        FIGURES["exports_run"] += 1
    finally:
        host.stop()


# -- telemetry ----------------------------------------------------------------------------------
def test_no_secret_in_what_the_telemetry_exporter_sends(telemetry):
    """What the Application Insights exporter sent over HTTP during a scenario with a completed
    export (its manifest SAS and its detections file's SAS link), ML outages and refusals, and a
    poisoned message (tests/appinsights.py). Breaks if a token, the encryption key, the storage
    key or a SAS signature reaches a log record, a dependency or an exception."""
    sent = {"telemetry": telemetry.bodies}
    assert len(telemetry.bodies) >= 3 and any("export_finished" in body for body in telemetry.bodies)
    # The scan can fail: a value known to be sent is found.
    assert find_leaks({"export id": telemetry.exports["completed"]}, sent) == [("telemetry", "export id")]
    leaks = find_leaks(telemetry.secrets, sent)
    leaks += [
        ("telemetry", "sig=") for body in telemetry.bodies if re.search(r"(?i)sig=(?!REDACTED)[^&\s\"]", body)
    ]
    FIGURES["leaks_found"] += len(leaks)
    assert not leaks, sorted(set(leaks))
