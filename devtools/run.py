"""`make run`: the whole service on this machine, ready to click through.

Starts Azurite, the Panoptes stand-in (its sample project and users, and a sign-in form at
/oauth/authorize), the MegaDetector emulator and the local Functions host with function_app.py,
polling the ML service every few seconds instead of every 10 minutes, and the emulator's monitor
moving its tasks on every few seconds too, so an export visibly goes through its states. Prints where everything
is and who can sign in, then runs until Ctrl-C.

To use a real Panoptes or ML service instead of a stand-in, write your own local.settings.json
(git-ignored) with just the values to change, e.g.
    {"Values": {"PANOPTES_URL": "https://panoptes-staging.zooniverse.org",
                "PANOPTES_OAUTH_CLIENT_ID": "<your application id>"}}
A stand-in is started only for a service whose URL the file does not set.
local.settings.sample.json lists every setting with its default.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from typing import Any

from devtools.azurite import ROOT, start_azurite
from devtools.host import LocalHost, load_app, serve, stop_on_signals
from devtools.local_env import CALLER_ID, OAUTH_CLIENT_ID, new_token_key

PORT = int(os.environ.get("PORT", "7071"))
AZURITE_DEFAULT_PORTS = (10000, 10001, 10002)
OWN_SETTINGS = ROOT / "local.settings.json"
LOCAL_RUN = {  # what makes a local run watchable: seconds, not minutes
    "ML_POLL_SCHEDULE": "*/3 * * * * *",
    "RETRY_DELAY_SECONDS": "2",
    "STUCK_EXPORT_MINUTES": "2",
}
# The ML emulator's monitor: every 5 s instead of the real service's 10 minutes, so each ML state
# stays on the page for a poll or two.
ML_MONITOR_SECONDS = 5.0
# The stand-in answers in microseconds; Panoptes takes a second or two for a page of 100
# subjects with their locations. Here only (tests want it fast), so that reading a set shows.
SUBJECT_PAGE_SECONDS = 1.5
# A set large enough to read over several pages (30 of them, 8 at a time): its progress bar moves.
LARGE_SET = {"set_id": "5680", "display_name": "Camera C - May (3,000 subjects)", "count": 3000, "frames": 1}


def own_settings() -> dict[str, str]:
    """The Values of local.settings.json, or {} when there is none."""
    if not OWN_SETTINGS.exists():
        return {}
    with open(OWN_SETTINGS, encoding="utf-8") as fh:
        return {k: str(v) for k, v in json.load(fh).get("Values", {}).items()}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main() -> None:
    # A signal at any point, start-up included, is noted now; serve() stops at it, and the
    # ExitStack below then stops everything in order, Azurite last.
    stop_on_signals()
    run()


def run() -> None:
    from standins.ml_service import MlServiceStandIn
    from standins.panoptes import PanoptesStandIn
    from standins.sample_data import load_sample

    mine = own_settings()
    if not _port_free(PORT):
        sys.exit(f"Port {PORT} is in use (another `make run`?). Stop it, or run with PORT=<free port>.")
    with contextlib.ExitStack() as running:
        running.callback(print, "Stopped: Azurite, the stand-ins and the local host.", flush=True)
        # Azurite's usual ports when free, so Storage Explorer & co. find it; any free ports otherwise.
        azurite = None
        if all(map(_port_free, AZURITE_DEFAULT_PORTS)):
            with contextlib.suppress(RuntimeError):  # taken meanwhile: another `make run` starting
                azurite = start_azurite(*AZURITE_DEFAULT_PORTS)
        if azurite is None:
            azurite = start_azurite()
        running.callback(azurite.stop)
        env: dict[str, Any] = {
            "AzureWebJobsStorage": azurite.connection_string,
            "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID": CALLER_ID,
            "PANOPTES_OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
            "TOKEN_ENCRYPTION_KEY": new_token_key(),
            **LOCAL_RUN,
        }
        panoptes = sample = ml = None
        if "PANOPTES_URL" not in mine:
            panoptes = running.enter_context(PanoptesStandIn())
            sample = load_sample(panoptes)
            panoptes.add_synthetic_subject_set(project_id=sample.project_id, **LARGE_SET)
            panoptes.faults.add(r"^/api/subjects\?", "slow", delay=SUBJECT_PAGE_SECONDS)
            env["PANOPTES_URL"] = panoptes.url
        if "SUBJECT_ASSISTANT_ML_SERVICE_URL" not in mine:
            ml = running.enter_context(
                MlServiceStandIn(callers=(CALLER_ID,), monitor_seconds=ML_MONITOR_SECONDS)
            )
            env["SUBJECT_ASSISTANT_ML_SERVICE_URL"] = ml.url
        for key, value in mine.items():  # one's own settings win, but Azurite stays Azurite
            if value.replace(" ", "").lower() != "usedevelopmentstorage=true":
                env[key] = value
        os.chdir(ROOT)
        host = LocalHost(
            load_app("function_app"),
            env=env,
            host_json=ROOT / "host.json",
            port=PORT,
            cors_origins=[o for o in env.get("ALLOWED_ORIGINS", "").split(",") if o],
        )
        banner(
            host_url=f"http://127.0.0.1:{PORT}",
            env=env,
            mine=mine,
            panoptes=panoptes,
            sample=sample,
            ml=ml,
            azurite=azurite,
        )
        serve(host)


def sample_users(sample: Any) -> list[tuple[str, str, str]]:
    """Every user on the stand-in's sign-in form: (login, token, what they may do)."""
    return [
        ("demo-owner", sample.owner_token, f"owner of {sample.project_id}: may export"),
        ("demo-collaborator", sample.collaborator_token, f"collaborator on {sample.project_id}: may export"),
        (
            "demo-outsider",
            sample.outsider_token,
            f"owner of the private {sample.other_project_id} only: nothing of {sample.project_id}",
        ),
        ("demo-tester", sample.tester_token, f"tester on {sample.project_id}: no export role, no projects"),
        ("demo-nobody", sample.nobody_token, "no role on any project"),
    ]


def sample_projects(sample: Any) -> list[str]:
    """Every project and subject set on the stand-in, one line each."""
    return [
        f'project {sample.project_id} "{sample.project_name}":',
        f'  set {sample.subject_set_id} "Camera A - March": {sample.subject_count} subjects, '
        f"{sample.image_count} images ({sample.skipped_frames} video frame left out)",
        f'  set {sample.empty_set_id} "Camera B - April (empty)": no subjects (Export is off)',
        f'  set {LARGE_SET["set_id"]} "{LARGE_SET["display_name"]}": read over 30 pages, '
        "so its progress bar moves",
        f'project {sample.other_project_id} "{sample.other_project_name}" (private, demo-outsider\'s):',
        f"  set {sample.other_set_id}",
    ]


def banner(
    *, host_url: str, env: dict, mine: dict, panoptes: Any, sample: Any, ml: Any, azurite: Any
) -> None:
    source = (
        f"{OWN_SETTINGS.name} ({', '.join(sorted(mine))}) over the local defaults"
        if mine
        else "local defaults and stand-ins (no local.settings.json)"
    )
    lines = [
        "",
        "Subject Assistant export service, running locally",
        "",
        f"  The page       {host_url}/   (open it in a browser)",
        f"  The API        {host_url}/api/...   e.g. {host_url}/api/health",
        f"  Settings       {source}",
        f"  Panoptes       {env['PANOPTES_URL']}"
        + (
            f"  (stand-in: sign in by picking a sample user; {SUBJECT_PAGE_SECONDS:g} s a page of subjects)"
            if panoptes
            else ""
        ),
        f"  ML service     {env['SUBJECT_ASSISTANT_ML_SERVICE_URL']}"
        + (f"  (emulator: its tasks move every {ML_MONITOR_SECONDS:g} s)" if ml else ""),
        f"  Storage        Azurite, blob :{azurite.blob_port}, queue :{azurite.queue_port}, table :{azurite.table_port}",
        f"  ML poll        every few seconds ({env['ML_POLL_SCHEDULE']}); every 10 minutes in Azure",
    ]
    if sample is not None:
        lines += ["", "  Sample projects on the Panoptes stand-in:"]
        lines += [f"    {line}" for line in sample_projects(sample)]
        lines += ["", "  Sample users (pick one on the sign-in form, or send the token with curl):"]
        for login, token, what in sample_users(sample):
            lines.append(f"    {login:<18} {token:<24} {what}")
        lines += [
            "",
            "  Try it with curl:",
            f"    curl -s -H 'Authorization: Bearer {sample.owner_token}' {host_url}/api/projects",
            f"    curl -s -X POST -H 'Authorization: Bearer {sample.owner_token}' "
            f"{host_url}/api/projects/{sample.project_id}/subject-sets/{sample.subject_set_id}/exports",
        ]
    if ml is not None:
        lines += [
            "",
            "  The Subject Assistant links name tasks of this ML emulator. The page shows a link once",
            "  the task runs. The Subject Assistant reads a task through its proxy (proxyUrl on its",
            "  #/config page): through one that forwards to this emulator it opens these tasks; through",
            "  zooniverse.org's own it asks the production ML service, which does not know them.",
        ]
    lines += ["", "  Ctrl-C (or SIGTERM) stops everything, Azurite included.", ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
