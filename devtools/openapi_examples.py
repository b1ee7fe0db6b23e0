"""Record real answers of the running app as the OpenAPI document's examples
(exports/openapi_examples.json; `make docs` runs this).

Starts Azurite, the Panoptes stand-in with its sample project, the ML emulator and the local
host, walks an export through its life (start, again, building, completed with its summary,
listing, cancel, errors) and keeps one answer per operation and status. Times and random ids
vary from run to run; the shapes are what the API really sends.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import requests

from exports.openapi import EXAMPLES


def record() -> dict[str, Any]:
    import function_app
    from devtools.azurite import running_azurite
    from devtools.host import LocalHost
    from devtools.local_env import new_token_key, offline_settings
    from exports.services import reset_services
    from standins.ml_service import MlServiceStandIn
    from standins.panoptes import PanoptesStandIn
    from standins.sample_data import load_sample

    examples: dict[str, dict[str, Any]] = {}

    def keep(operation: str, response: requests.Response) -> Any:
        body = json.loads(re.sub(r"(sig=)[^&\"]+", r"\1REDACTED", response.text))  # no SAS in docs
        examples.setdefault(operation, {}).setdefault(str(response.status_code), body)
        return body

    with (
        running_azurite() as azurite,
        PanoptesStandIn() as panoptes,
        MlServiceStandIn(callers=("zooniverse",)) as ml,
    ):
        sample = load_sample(panoptes)
        env = offline_settings(azurite, panoptes, ml, new_token_key())
        with LocalHost(function_app.app, env=env, timers=False) as host:
            reset_services()
            owner = requests.Session()
            owner.headers["Authorization"] = f"Bearer {sample.owner_token}"
            base = host.url + "/api"
            start = f"{base}/projects/{sample.project_id}/subject-sets/{sample.subject_set_id}/exports"
            export = keep("startExport", owner.post(start, timeout=30))
            keep("startExport", owner.post(start, timeout=30))  # 200: already active
            assert host.wait_idle(30) and ml.wait_for_downloads(30)
            # Two images fail and two go missing (a failed shard), as the README's example shows.
            task = owner.get(f"{base}/exports/{export['id']}", timeout=30).json()["ml_task_id"]
            ml.configure(task, failed_rows=[3, 17], missing_rows=[8, 30])
            for _ in range(2):  # the emulator's monitor moves the task on, then the app polls it
                ml.run_monitor()
                host.run_timer("poll_ml_tasks")
            keep("getExport", owner.get(f"{base}/exports/{export['id']}", timeout=30))
            rerun = f"{base}/exports/{export['id']}/rerun"
            again = keep("rerunExport", owner.post(rerun, timeout=30))  # 202: the 4 images
            keep("rerunExport", owner.post(rerun, timeout=30))  # 200: already active
            keep("rerunExport", owner.post(f"{base}/exports/{again['id']}/rerun", timeout=30))  # 409
            assert host.wait_idle(30) and ml.wait_for_downloads(30)
            for _ in range(2):
                ml.run_monitor()
                host.run_timer("poll_ml_tasks")
            keep("rerunExport", owner.post(f"{base}/exports/{again['id']}/rerun", timeout=30))  # 409
            keep("listProjectExports", owner.get(f"{base}/projects/{sample.project_id}/exports", timeout=30))
            keep("listProjects", owner.get(f"{base}/projects", timeout=30))
            keep("cancelExport", owner.post(f"{base}/exports/{export['id']}/cancel", timeout=30))  # 409
            running = keep("startExport", owner.post(start, timeout=30))
            assert host.wait_idle(30) and ml.wait_for_downloads(30)
            ml.run_monitor()
            host.run_timer("poll_ml_tasks")
            keep("cancelExport", owner.post(f"{base}/exports/{running['id']}/cancel", timeout=30))
            keep("health", requests.get(f"{base}/health", timeout=30))
            keep("getExport", requests.get(f"{base}/exports/{export['id']}", timeout=30))  # 401
            outsider = {"Authorization": f"Bearer {sample.outsider_token}"}
            keep("getExport", requests.get(f"{base}/exports/{export['id']}", headers=outsider, timeout=30))
            keep(
                "listProjectExports",
                requests.get(f"{base}/projects/{sample.project_id}/exports", headers=outsider, timeout=30),
            )
            keep("listProjectExports", owner.get(f"{base}/projects/0/exports", timeout=30))
            keep(
                "startExport",
                owner.post(
                    f"{base}/projects/{sample.project_id}/subject-sets/{sample.other_set_id}/exports",
                    timeout=30,
                ),
            )
            reset_services()
    examples["_parameters"] = {
        "project_id": int(sample.project_id),
        "subject_set_id": int(sample.subject_set_id),
        "export_id": export["id"],
    }
    return examples


def main() -> None:
    started = time.monotonic()
    examples = record()
    EXAMPLES.write_text(json.dumps(examples, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    count = sum(len(v) for k, v in examples.items() if not k.startswith("_"))
    print(f"{EXAMPLES.name}: {count} answers recorded in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
