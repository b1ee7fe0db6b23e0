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
from devtools.host import LocalHost, load_app, serve
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
    from standins.ml_service import MlServiceStandIn
    from standins.panoptes import PanoptesStandIn
    from standins.sample_data import load_sample

    mine = own_settings()
    if not _port_free(PORT):
        sys.exit(f"Port {PORT} is in use (another `make run`?). Stop it, or run with PORT=<free port>.")
    with contextlib.ExitStack() as running:
        # Azurite's usual ports when free, so Storage Explorer & co. find it; any free ports otherwise.
        ports = AZURITE_DEFAULT_PORTS if all(map(_port_free, AZURITE_DEFAULT_PORTS)) else (None, None, None)
        azurite = start_azurite(*ports)
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
    users = [
        ("demo-owner", sample.owner_token, f"owner of {sample.project_id}"),
        ("demo-collaborator", sample.collaborator_token, f"collaborator on {sample.project_id}"),
    ]
    if getattr(sample, "tester_token", None):
        users.append(("demo-tester", sample.tester_token, f"tester on {sample.project_id}: no export role"))
    if getattr(sample, "nobody_token", None):
        users.append(("demo-nobody", sample.nobody_token, "no role on any project"))
    return users


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
        + ("  (stand-in: sign in by picking a sample user)" if panoptes else ""),
        f"  ML service     {env['SUBJECT_ASSISTANT_ML_SERVICE_URL']}"
        + (f"  (emulator: its tasks move every {ML_MONITOR_SECONDS:g} s)" if ml else ""),
        f"  Storage        Azurite, blob :{azurite.blob_port}, queue :{azurite.queue_port}, table :{azurite.table_port}",
        f"  ML poll        every few seconds ({env['ML_POLL_SCHEDULE']}); every 10 minutes in Azure",
    ]
    if sample is not None:
        lines += [
            "",
            f'  Sample project {sample.project_id} "{sample.project_name}": subject set '
            f"{sample.subject_set_id} ({sample.subject_count} subjects), {sample.empty_set_id} (empty)",
            "  Sample users (sign in on the page, or send the token with curl):",
        ]
        for login, token, what in sample_users(sample):
            lines.append(f"    {login:<20} {token:<26} {what}")
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
            "  The Subject Assistant links name tasks only this local ML emulator knows: the real",
            "  Subject Assistant cannot open them.",
        ]
    lines += ["", "  Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
