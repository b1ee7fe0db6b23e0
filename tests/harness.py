"""What the tests share: the whole service through the local host (Azurite + Panoptes stand-in +
ML emulator, as `Stack`), and the reliability suite's helpers and invariants. The fixtures that
build them are in tests/conftest.py."""

import collections
import contextlib
import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests
from azure.core.exceptions import ResourceNotFoundError

from devtools.azurite import free_port
from devtools.host import LocalHost
from exports import model
from exports.contract import Status
from exports.messages import ExportMessage
from exports.services import Services, get_services
from exports.store import ACTIVE_PREFIX, SET_INDEX_PREFIXES, export_from_row
from exports.worker import REQUEST_NAME_PREFIX
from shared.names import (
    CALLBACK_POISON_QUEUE,
    CALLBACK_QUEUE,
    EXPORT_POISON_QUEUE,
    EXPORT_QUEUE,
    EXPORT_TABLE,
)
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn

ROOT = pathlib.Path(__file__).resolve().parents[1]
# URL-safe base64 of 40 bytes, as TOKEN_ENCRYPTION_KEY must be (readable: it is a test key).
TOKEN_KEY = "ZTJlLXRlc3QtdG9rZW4tZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc4OQ=="
# Tests retry at once, hold leases briefly and cache nothing, so faults resolve within seconds.
FAST = {
    "RETRY_DELAY_SECONDS": "0",
    "PANOPTES_RETRY_BACKOFF_SECONDS": "0.01",
    "PANOPTES_RETRIES": "2",
    "AUTH_CACHE_SECONDS": "0",
    "ML_TIMEOUT_SECONDS": "5",
    "BUILD_LEASE_SECONDS": "3",
}


@dataclass
class Stack:
    host: LocalHost
    panoptes: PanoptesStandIn
    ml: MlServiceStandIn
    sample: object
    env: dict
    # Keep-alive connections for the test's calls, one session per calling thread, as a client
    # of the API has (a new connection per call cost a handshake and a server thread each).
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _sessions: list = field(default_factory=list, repr=False)

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        for session in self._sessions:
            session.close()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            self._sessions.append(session)
        return session

    @property
    def services(self) -> Services:
        return get_services()

    def call(self, method, path, token="demo-owner-token", **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self.session.request(method, self.host.url + path, headers=headers, timeout=30, **kwargs)

    def start_export(self, project="1234", subject_set="5678", token="demo-owner-token"):
        return self.call("POST", f"/api/projects/{project}/subject-sets/{subject_set}/exports", token)

    def submitted_export(self, subject_set="5678") -> dict:
        """Start an export and wait until the worker has submitted it and the ML emulator has
        read its manifest; the export as the API shows it."""
        body = self.start_export(subject_set=subject_set).json()
        self.settle()
        assert self.ml.wait_for_downloads(10)
        export = self.get(body["id"]).json()
        assert export["status"] == "submitted", export
        return export

    def get(self, export_id, token="demo-owner-token"):
        return self.call("GET", f"/api/exports/{export_id}", token)

    def export(self, export_id):
        return self.services.store.get(export_id).export

    def settle(self, timeout=30):
        assert self.host.wait_idle(timeout), "queue work did not finish in time"

    def tick(self):
        """Time passes once: one check of the ML emulator's monitor (every task takes the next
        step of its plan), then one ML poll tick of the app. Both wait until the emulator has
        read every manifest it accepted: until then a task stays `created` (as the real service
        does while it lists images), and a check right after `settle()` would race the
        emulator's download thread."""
        self.ml.wait_for_downloads(10)
        self.ml.run_monitor()
        return self.host.run_timer("poll_ml_tasks")

    def poll(self):
        """One ML poll tick of the app while the service's clock stands still (no monitor check)."""
        self.ml.wait_for_downloads(10)
        return self.host.run_timer("poll_ml_tasks")

    def table_rows(self):
        """One row per export (active or finished): the subject sets' index rows are left out."""
        table = self.services.storage.table(EXPORT_TABLE)
        return [row for row in table.list_entities() if not row["RowKey"].startswith(SET_INDEX_PREFIXES)]

    def exports(self):
        return [export_from_row(row) for row in self.table_rows()]

    def exports_rerunning(self, export_id):
        """Exports (active or finished) that re-run `export_id`."""
        return [e for e in self.exports() if e.rerun_of == export_id]

    def queued_messages(self):
        return [m.content for m in self.services.queue.peek_messages(max_messages=32)]


def host_json(tmp_path, **queues):
    config = json.loads((ROOT / "host.json").read_text())
    config["extensions"]["queues"].update({"visibilityTimeout": "00:00:01", **queues})
    path = tmp_path / "host.json"
    path.write_text(json.dumps(config))
    return path


def clear_storage(services: Services) -> None:
    table = services.storage.table(EXPORT_TABLE)
    # One transaction per partition and hundred rows (the service's limit) instead of a call a
    # row: a test leaves about four rows, some leave hundreds.
    by_partition: dict[str, list] = {}
    for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
        by_partition.setdefault(entity["PartitionKey"], []).append(("delete", entity))
    for deletes in by_partition.values():
        for start in range(0, len(deletes), 100):
            table.submit_transaction(deletes[start : start + 100])
    # The callbacks' queues too: a delivery a test left would go on being retried in the next.
    for name in (EXPORT_QUEUE, EXPORT_POISON_QUEUE, CALLBACK_QUEUE, CALLBACK_POISON_QUEUE):
        services.storage.queue(name).clear_messages()
    try:
        for blob in services.container.list_blobs():
            services.container.delete_blob(blob.name)
    except ResourceNotFoundError:
        pass


# -- helpers of the reliability suite ---------------------------------------------------
# The invariants every fault test ends with (`assert_invariants`):
# - every export is final, or active *and* named by its subject set's active marker;
# - the ML service accepted at most one job per export (counted by request_name);
# - every manifest blob is named by an export record's `manifest_blob`.
# Counters reported by the suite (printed at the end of a run with -s; see conftest-free use).
FIGURES = collections.Counter()


def exports_in_table(stack) -> list[model.Export]:
    return stack.exports()


def ml_jobs_per_export(ml) -> collections.Counter:
    """Accepted ML submissions per export id (from the request_name the worker sends)."""
    names = collections.Counter()
    for submission in ml.submissions:
        name = submission.body.get("request_name", "")
        names[name[len(REQUEST_NAME_PREFIX) :] if name.startswith(REQUEST_NAME_PREFIX) else name] += 1
    return names


def assert_invariants(stack, services=None) -> None:
    services = services or stack.services
    rows = stack.table_rows()
    finished = [export_from_row(r) for r in rows if not r["RowKey"].startswith(ACTIVE_PREFIX)]
    active = [export_from_row(r) for r in rows if r["RowKey"].startswith(ACTIVE_PREFIX)]
    exports = {e.id: e for e in finished + active}
    assert len(exports) == len(rows), "an export is stored twice (active and finished)"
    for export in finished:
        assert export.is_final, f"finished row of an active export {export.id}"
    for row, export in zip([r for r in rows if r["RowKey"].startswith(ACTIVE_PREFIX)], active):
        assert export.is_active, f"active row of a finished export {export.id}"
        assert row["RowKey"] == f"{ACTIVE_PREFIX}{export.project_id}-{export.subject_set_id}", row["RowKey"]
    for export in exports.values():
        if export.status == Status.FAILED:
            assert export.error_code, export
    jobs = ml_jobs_per_export(stack.ml)
    duplicates = {k: n for k, n in jobs.items() if n > 1}
    FIGURES["duplicate_ml_jobs"] += sum(n - 1 for n in duplicates.values())
    assert not duplicates, f"more than one ML job for an export: {duplicates}"
    assert stack.ml.accepted_count == len(stack.ml.submissions)
    for export_id, _n in jobs.items():
        export = exports.get(export_id)
        assert export is not None, f"ML job for an export with no record: {export_id}"
        if export.ml_task_id is not None:
            [submission] = [s for s in stack.ml.submissions if s.body["request_name"].endswith(export_id)]
            assert submission.request_id == export.ml_task_id
    named = {e.manifest_blob for e in exports.values() if e.manifest_blob}
    blobs = {b.name for b in services.container.list_blobs()}
    assert blobs <= named, f"manifest blobs without an export record naming them: {blobs - named}"
    FIGURES["exports_run"] += len(exports)


def poison_messages(services) -> list[str]:
    return [m.content for m in services.storage.queue(EXPORT_POISON_QUEUE).peek_messages(max_messages=32)]


def create_export_record(
    services, project_id="1234", subject_set_id="5678", user_id="42", token="demo-owner-token", cipher=None
):
    """An export record and its queue message body, as the POST would make them, without
    enqueueing (so the host's queue trigger does not race the test). Returns (export, body)."""
    now = services.clock()
    export_id = model.new_export_id(project_id, subject_set_id, now)
    ciphertext = (cipher or services.cipher).encrypt(token, bound_to=export_id) if token is not None else None
    export = model.new_export(
        export_id, project_id, subject_set_id, user_id, now, dt.timedelta(hours=24), ciphertext
    )
    current, created = services.store.create(export)
    assert created
    return current.export, ExportMessage(export.id, ciphertext).encode()


def wait_for(predicate, timeout=30.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def wait_final(stack, export_id, timeout=30.0) -> model.Export:
    return wait_for(
        lambda: (e := stack.export(export_id)).is_final and e,
        timeout,
        message=f"export {export_id} to reach a final state",
    )


# -- the app in its own process, as the Functions worker runs it ---------------------------
@dataclass
class HostProcess:
    """`python -m devtools.host` in a fresh process: nothing of the app is imported before it
    starts (a cold start), and process-wide state such as telemetry stays in it."""

    url: str
    process: subprocess.Popen
    log: pathlib.Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def host_process(env: dict, tmp_path, timers: bool = False, timeout: float = 60) -> Iterator[HostProcess]:
    port = free_port()
    log = tmp_path / f"host-{port}.log"
    command = [
        sys.executable,
        "-m",
        "devtools.host",
        "--port",
        str(port),
        "--host-json",
        str(host_json(tmp_path)),
    ]
    if not timers:
        command.append("--no-timers")
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = HostProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while "Local Functions host listening" not in host.output():
            assert process.poll() is None, f"the host exited early:\n{host.output()[-3000:]}"
            assert time.monotonic() < deadline, f"the host did not start:\n{host.output()[-3000:]}"
            time.sleep(0.05)
        yield host
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # as the platform stops an instance
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
