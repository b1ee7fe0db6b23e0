"""Fault injection end to end: LocalHost + Azurite + the Panoptes stand-in + the ML emulator.

Every test ends with `assert_invariants`: exports final or correctly active, at most one ML
job per export, no manifest blob that no export record names. What each test guards (and what
would break it) is said in its docstring.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import function_app
from devtools.azurite import start_azurite
from devtools.host import LocalHost
from devtools.local_env import offline_settings
from exports import worker
from exports.manifest import build_manifest
from exports.services import get_services, reset_services
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample, sample_subjects
from tests.harness import (
    FAST,
    FIGURES,
    ROOT,
    TOKEN_KEY,
    Stack,
    assert_invariants,
    clear_storage,
    create_export_record,
    host_json,
    ml_jobs_per_export,
    poison_messages,
    wait_final,
    wait_for,
)
from tests.tracing import untraced_env


# -- Panoptes faults ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings_overrides", [{"PANOPTES_PAGE_CONCURRENCY": "1", "PANOPTES_TIMEOUT_SECONDS": "1"}]
)
def test_panoptes_random_5xx_and_timeouts_still_give_the_exact_manifest(stack):
    """30% of subject pages fail (5xx, dropped connection, or slower than the client timeout),
    seeded; pages are read one at a time so the seeded plan replays identically. Breaks if a retried page is lost, duplicated or reordered in the manifest, or if a
    rebuild after a page that failed every retry submits twice."""
    stack.panoptes.faults.reseed(20240607)
    subjects = sample_subjects(first_id=300000, count=1930)  # 20 pages of 100
    stack.panoptes.add_subject_set("6100", "1234", "Flaky pages", subjects)
    faults = [
        stack.panoptes.faults.add(r"/api/subjects\?.*page=", "status", status=502, probability=0.15),
        stack.panoptes.faults.add(r"/api/subjects\?.*page=", "status", status=500, probability=0.07),
        stack.panoptes.faults.add(r"/api/subjects\?.*page=", "drop", probability=0.05),
        stack.panoptes.faults.add(r"/api/subjects\?.*page=", "slow", delay=1.3, probability=0.05),
    ]
    body = stack.start_export(subject_set="6100").json()
    export = wait_for(
        lambda: (e := stack.export(body["id"])).status != "queued" and e.status != "building" and e,
        90,
        message="export to leave building",
    )
    stack.settle(30)
    injected = sum(f.hits for f in faults)
    FIGURES["faults_injected"] += injected
    assert injected >= 3, "the seeded plan should have injected faults"
    assert export.status == "submitted", export
    assert stack.ml.wait_for_downloads(10)
    [submission] = stack.ml.submissions
    assert submission.manifest_bytes == build_manifest([subjects], "1234", "6100")[0]
    assert export.manifest_subjects == 1930
    assert_invariants(stack)


def test_ml_503_bursts_across_concurrent_exports(stack):
    """Bursts of 503 'too many active jobs' and plain 500s while three exports submit at once.
    Breaks if a 503/500 is treated as 'maybe accepted' (export failed ml_submission_unknown),
    or if the fence is not cleared so the retry never submits, or if a retry submits twice."""
    for i in range(3):
        stack.panoptes.add_subject_set(
            str(6200 + i), "1234", f"Set {i}", sample_subjects(first_id=400000 + 100 * i, count=5)
        )
    busy = stack.ml.faults.add(
        r"request_detections",
        "status",
        status=503,
        times=7,
        body={"error": "Too many active jobs, please try again later"},
    )
    broken = stack.ml.faults.add(
        r"request_detections", "status", status=500, times=2, body={"error": "internal"}
    )
    ids = [stack.start_export(subject_set=str(6200 + i)).json()["id"] for i in range(3)]
    stack.settle(60)
    FIGURES["faults_injected"] += busy.hits + broken.hits
    assert (busy.hits, broken.hits) == (7, 2)
    for export_id in ids:
        export = stack.export(export_id)
        assert export.status == "submitted", export
        assert export.submit_started_at is not None and export.ml_task_id
    assert stack.ml.accepted_count == 3
    assert_invariants(stack)


@pytest.mark.parametrize("settings_overrides", [{"ML_TIMEOUT_SECONDS": "1"}])
def test_ml_accept_then_hang_stays_one_job_even_on_redelivery_and_polls(stack):
    """The ML service accepts the job but the answer never arrives. Documented decision: no
    second POST; the export fails ml_submission_unknown. Then the message is redelivered twice
    and the poller ticks: still one job. Breaks if a timeout is retried, or if a redelivery
    (fence `submit_started_at` ignored) or the stuck-export sweep submits again."""
    hang = stack.ml.faults.add(r"request_detections", "accept_then_hang", delay=3, times=1)
    body = stack.start_export().json()
    export = wait_final(stack, body["id"], 30)
    FIGURES["faults_injected"] += hang.hits
    assert (export.status, export.error_code) == ("failed", "ml_submission_unknown")
    assert stack.ml.accepted_count == 1
    message = json.dumps({"v": 1, "export_id": body["id"], "token": None})
    stack.services.queue.send_message(message)
    stack.services.queue.send_message(message)
    stack.settle(30)
    stack.tick()
    assert stack.ml.accepted_count == 1
    assert stack.export(body["id"]).error_code == "ml_submission_unknown"
    # The user can export again: a fresh export gets its own (single) job.
    again = stack.start_export()
    assert again.status_code == 202
    stack.settle(30)
    assert stack.export(again.json()["id"]).status == "submitted"
    assert stack.ml.accepted_count == 2
    assert_invariants(stack)


# -- the worker process killed at the worst moments --------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from exports import worker, ml_service
    from exports.services import Services
    from exports.settings import get_settings

    point, body = sys.argv[1], sys.argv[2]

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "after_upload":          # blob committed, export record not yet naming it
        commit = worker.BlockBlobWriter.commit
        def patched(self):
            commit(self)
            die()
        worker.BlockBlobWriter.commit = patched
    elif point == "before_submit":       # manifest recorded, fence not yet set
        def patched(self):
            die()
        worker.ExportRun._submit = patched
    elif point == "fence_set_not_sent":  # fence persisted, POST never sent
        def patched(self, url, name):
            die()
        ml_service.MlServiceClient.submit = patched
    elif point == "after_submit":        # the ML service accepted; task id never recorded
        submit = ml_service.MlServiceClient.submit
        def patched(self, url, name):
            submit(self, url, name)
            die()
        ml_service.MlServiceClient.submit = patched
    services = Services.from_settings(get_settings())
    worker.process_export_message(body, services)
    print("worker finished without being killed")
""")


@pytest.mark.parametrize("settings_overrides", [{"BUILD_LEASE_SECONDS": "2"}])
@pytest.mark.parametrize(
    "point,status,code,jobs",
    [
        ("after_upload", "submitted", None, 1),
        ("before_submit", "submitted", None, 1),
        ("fence_set_not_sent", "failed", "ml_submission_unknown", 0),
        ("after_submit", "failed", "ml_submission_unknown", 1),
    ],
)
def test_worker_killed_then_message_redelivered(stack, tmp_path, point, status, code, jobs):
    """A worker process is SIGKILLed at `point`; the same message is then redelivered (after the
    dead worker's lease lapses). Killed before the fence → exactly one job. Killed once the
    fence is set → failed ml_submission_unknown, and never a second job (at most once). Breaks
    if the redelivery re-POSTs after an unrecorded submission, if a lapsed lease is never taken
    over, or if a rebuild after a kill mid-upload leaves an orphan or different manifest blob."""
    services = stack.services
    export, body = create_export_record(services)
    script = tmp_path / "kill_worker.py"
    script.write_text(KILL_SCRIPT)
    env = {**untraced_env(), **stack.env}  # killed: it could not save what it measured
    run = subprocess.run(
        [sys.executable, str(script), point, body, str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stdout, run.stderr[-2000:])
    FIGURES["faults_injected"] += 1
    dead = stack.export(export.id)
    assert dead.status == "building" and dead.lease_owner is not None  # the crash left its lease
    if point == "after_upload":
        assert dead.manifest_blob is None
        assert [b.name for b in services.container.list_blobs()] == [worker.manifest_blob_name(export.id)]
    # Redelivery, in-process, once the dead worker's lease has lapsed.
    wait_for(lambda: stack.export(export.id).lease_until < services.clock(), 10, message="lease to lapse")
    worker.process_export_message(body, services)
    stack.settle(30)
    final = stack.export(export.id)
    assert (final.status, final.error_code) == (status, code), final
    assert ml_jobs_per_export(stack.ml)[export.id] == jobs
    assert stack.ml.accepted_count == jobs
    if status == "submitted":
        assert stack.ml.wait_for_downloads(10)
        expected = build_manifest([sample_subjects()], "1234", "5678")[0]
        assert stack.ml.submissions[0].manifest_bytes == expected
    # A third, late delivery changes nothing.
    worker.process_export_message(body, services)
    assert stack.ml.accepted_count == jobs
    assert_invariants(stack)


# -- the same message delivered several times at once ------------------------------------------
@pytest.mark.parametrize("settings_overrides", [{"BUILD_LEASE_SECONDS": "2"}])
@pytest.mark.slow
def test_same_message_delivered_concurrently(stack):
    """Each of three messages is delivered four times at the same instant (threads released by
    a barrier). Breaks if the ETag-checked lease lets two deliveries build and submit the same
    export (a second ML job), or if the losers' self-re-queued messages later submit again."""
    stack.panoptes.latency = 0.02
    services = stack.services
    messages = []
    for i in range(3):
        set_id = str(6300 + i)
        stack.panoptes.add_subject_set(set_id, "1234", f"Dup {i}", sample_subjects(first_id=500000 + 100 * i))
        messages.append(create_export_record(services, subject_set_id=set_id))
    barrier = threading.Barrier(12)
    errors = []

    def deliver(body):
        try:
            barrier.wait()
            worker.process_export_message(body, services)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=deliver, args=(body,)) for _, body in messages for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    FIGURES["faults_injected"] += 9  # nine duplicate deliveries
    assert errors == []
    stack.settle(40)  # the losers re-queued themselves to look again after the lease
    stack.panoptes.latency = 0
    for export, _ in messages:
        assert stack.export(export.id).status == "submitted"
    assert stack.ml.accepted_count == 3
    assert stack.host.errors == []
    assert_invariants(stack)


# -- storage (Azurite) restarted mid-export ----------------------------------------------------
@pytest.fixture
def own_azurite_stack(tmp_path):
    """Like `stack`, but on a dedicated Azurite this test may restart on the same ports."""
    azurite = start_azurite()
    try:
        with PanoptesStandIn() as panoptes, MlServiceStandIn(callers=("zooniverse",)) as ml:
            sample = load_sample(panoptes)
            env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **FAST)
            host = LocalHost(function_app.app, env=env, host_json=host_json(tmp_path), timers=False)
            with host:
                reset_services()
                clear_storage(get_services())
                with Stack(host, panoptes, ml, sample, env) as stack:
                    yield stack, azurite
            reset_services()
    finally:
        azurite.stop()


@pytest.mark.slow
def test_azurite_restarted_mid_export(own_azurite_stack):
    """Azurite (in-memory) restarts while an export is building: the table row, the queue
    message and the container vanish. Decision: the worker must stop cleanly (the record is
    gone, so nothing may be submitted: an ML job no record tracks is a leak), health must report
    503 while storage is unusable, and once the resources exist again a new export runs with
    exactly one job. Breaks if the worker submits a manifest whose export record vanished,
    hangs, or if health says ok on a storage account without our table."""
    stack, azurite = own_azurite_stack
    stack.panoptes.add_subject_set("6400", "1234", "Slow set", sample_subjects(first_id=600000, count=250))
    slow = stack.panoptes.faults.add(r"/api/subjects\?.*page=1(&|$)", "slow", delay=3)
    body = stack.start_export(subject_set="6400").json()
    wait_for(lambda: stack.export(body["id"]).status == "building", 20, message="building")
    azurite.stop()
    restarted = start_azurite(azurite.blob_port, azurite.queue_port, azurite.table_port)
    # The fixture stops whichever process runs, and removes its working directory.
    azurite.process, azurite.workdir = restarted.process, restarted.workdir
    FIGURES["faults_injected"] += 1
    assert stack.call("GET", "/api/health", token=None).status_code == 503
    # The worker finishes its slow pages and finds its storage gone: it must give up, not submit.
    time.sleep(4)
    wait_for(lambda: stack.host.running == 0, 30, message="the worker to stop")
    assert slow.hits >= 1
    assert stack.ml.accepted_count == 0
    # Operators re-create the resources (Bicep does in Azure); the service recovers.
    stack.services.ensure_resources()
    assert stack.call("GET", "/api/health", token=None).status_code == 200
    slow.remove()
    again = stack.start_export(subject_set="6400")
    assert again.status_code == 202, again.text
    stack.settle(30)
    assert stack.export(again.json()["id"]).status == "submitted"
    assert stack.ml.accepted_count == 1
    assert poison_messages(stack.services) == []
    assert_invariants(stack)
