"""`make demo`: one export through every function, offline, printed step by step.

Starts Azurite, the Panoptes stand-in with a sample camera-trap project, the ML service
emulator and the local Functions host (HTTP, queue and timer triggers from function_app.py),
then does what the Subject Assistant does: start an export with the user's Panoptes token and
watch it until the ML task completes. Exits 0 when the export completed.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import requests

import function_app
from devtools.azurite import running_azurite
from devtools.host import LocalHost
from devtools.local_env import new_token_key, offline_settings
from exports.services import reset_services
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample

ORIGIN = "https://subject-assistant.zooniverse.org"
TIMEOUT = 120
ML_MONITOR_SECONDS = 2.0  # the emulator's monitor: every 2 s here; every 10 minutes in the real service


def redact(url: str | None) -> str | None:
    """Never print a SAS signature."""
    return re.sub(r"(sig=)[^&]+", r"\1<redacted>", url) if url else url


def describe(export: dict) -> str:
    progress = export["progress"]
    parts = [export["status"]]
    if export["status"] == "building":
        parts.append(f"read {progress['subjects_done']}/{progress['subjects_total'] or '?'} subjects")
    if export["manifest"]:
        m = export["manifest"]
        parts.append(
            f"manifest {m['subjects']} subjects, {m['images']} images, "
            f"{m['skipped_frames']} non-image frame(s) skipped"
        )
    if export["ml_task_id"]:
        parts.append(f"ML task {export['ml_task_id']} is {export['ml_status']}")
    if export["error"]:
        parts.append(f"error {export['error']['code']}: {export['error']['message']}")
    return " — ".join(parts)


def assistant_link(export: dict) -> str | None:
    """The Subject Assistant link, only once the Subject Assistant can open it: it handles the ML
    statuses running, completed and failed, and shows "ML Task encountered an unknown error"
    for a task still `created` (or in `problem`)."""
    if export["status"] == "running" and export["ml_status"] == "running":
        return export["subject_assistant_url"]
    if export["status"] == "completed":
        return export["subject_assistant_url"]
    return None


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    print("Subject Assistant export service — offline demo\n")
    with (
        running_azurite() as azurite,
        PanoptesStandIn() as panoptes,
        MlServiceStandIn(callers=("zooniverse",), monitor_seconds=ML_MONITOR_SECONDS) as ml,
    ):
        sample = load_sample(panoptes)
        env = offline_settings(
            azurite,
            panoptes,
            ml,
            new_token_key(),
            # every 2 s here; every 10 min by default
            ML_POLL_SCHEDULE="*/2 * * * * *",
        )
        with LocalHost(function_app.app, env=env, cors_origins=[ORIGIN]) as host:
            reset_services()
            print(
                f"  storage     Azurite (blob :{azurite.blob_port}, queue :{azurite.queue_port}, "
                f"table :{azurite.table_port})"
            )
            print(
                f"  Panoptes    stand-in {panoptes.url} — project {sample.project_id} "
                f'"{sample.project_name}", subject set {sample.subject_set_id}: '
                f"{sample.subject_count} subjects"
            )
            print(f"  ML service  emulator {ml.url} (its monitor moves tasks every {ML_MONITOR_SECONDS:g} s)")
            print(f"  functions   local host {host.url}: {', '.join(sorted(host.functions))}\n")

            session = requests.Session()
            session.headers.update({"Authorization": f"Bearer {sample.owner_token}", "Origin": ORIGIN})
            path = f"/api/projects/{sample.project_id}/subject-sets/{sample.subject_set_id}/exports"
            print(f"1. The Subject Assistant, signed in as user {sample.owner_id}, sends POST {path}")
            response = session.post(host.url + path, timeout=30)
            print(
                f"   → {response.status_code}, Location: {response.headers.get('Location')}, "
                f"CORS allows {response.headers.get('Access-Control-Allow-Origin')}"
            )
            if response.status_code not in (200, 202):
                print(f"   unexpected answer: {response.text}")
                return 1
            export = response.json()
            again = session.post(host.url + path, timeout=30)
            print(
                f"   (a second click answers {again.status_code} with the same export: "
                f"{again.json()['id'] == export['id']})"
            )

            print("\n2. It watches GET /api/exports/{id} while the queue worker and the ML poller work:")
            last, deadline, link_shown = None, time.monotonic() + TIMEOUT, False
            while time.monotonic() < deadline:
                export = session.get(f"{host.url}/api/exports/{export['id']}", timeout=30).json()
                line = describe(export)
                if line != last:
                    print(f"   {time.strftime('%H:%M:%S')}  {line}")
                    last = line
                if not link_shown and export["status"] == "running" and (link := assistant_link(export)):
                    print(
                        "             The Subject Assistant can open the task from now on (it says it "
                        f"is still running until the results are ready): {link}"
                    )
                    link_shown = True
                if export["status"] in ("completed", "failed", "cancelled"):
                    break
                time.sleep(0.25)

            submission = ml.submissions[0] if ml.submissions else None
            if submission is not None:
                print(
                    f"\n3. The ML service downloaded the manifest through its read-only SAS URL "
                    f"(HTTP {submission.download_status}, {len(submission.manifest_bytes or b'')} "
                    f"bytes, {submission.content_type}); first row:"
                )
                print(f"   {submission.manifest[0] if submission.manifest else None}")
            summary = export.get("results_summary") or {}
            if export["status"] == "completed":
                print("\n4. Results summary:")
                for key, value in summary.items():
                    print(f"   {key:24} {value}")
                print(f"   results_url              {redact(export['results_url'])}")
                listing = session.get(
                    f"{host.url}/api/projects/{sample.project_id}/exports", timeout=30
                ).json()
                print(
                    f"\n5. GET /api/projects/{sample.project_id}/exports lists "
                    f"{len(listing['subject_sets'])} subject sets:"
                )
                for entry in listing["subject_sets"]:
                    latest = entry["latest_completed_export"]
                    print(
                        f"   {entry['id']:>6} {entry['display_name']:<28} "
                        f"{'completed → ' + latest['subject_assistant_url'] if latest else 'no export yet'}"
                    )
                print(
                    "\nThe Subject Assistant link (it names a task of this run's ML emulator: a Subject "
                    "Assistant whose proxy forwards to that emulator opens it):"
                    f"\n  {assistant_link(export)}"
                )
                print(f"\nFunction invocations: {dict(host.invocations)}")
                print(
                    "\nThe page for people, with sign-in through the Panoptes stand-in: `make run`, "
                    "then open the address it prints (http://127.0.0.1:7071/ by default)."
                )
            reset_services()
            if export["status"] != "completed":
                print(f"\nThe export did not complete: {describe(export)}")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
