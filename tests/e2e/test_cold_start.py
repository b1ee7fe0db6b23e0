"""The first requests after a cold start are answered correctly: the handlers load on first use
(exports/blueprint.py), here under several first requests at once, in a fresh host process."""

import concurrent.futures
import threading

import requests

from devtools.local_env import offline_settings
from exports.services import Services
from exports.settings import ExportSettings
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample
from tests.harness import FAST, TOKEN_KEY, clear_storage, host_process, wait_for

OWNER = {"Authorization": "Bearer demo-owner-token"}


def test_the_first_requests_after_start_are_correct(azurite, tmp_path):
    with PanoptesStandIn() as panoptes, MlServiceStandIn(callers=("zooniverse",)) as ml:
        load_sample(panoptes)
        env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **FAST)
        services = Services.from_settings(ExportSettings.from_env(env))
        services.ensure_resources()
        clear_storage(services)
        with host_process(env, tmp_path) as host:
            first = [
                ("POST", "/api/projects/1234/subject-sets/5678/exports", OWNER),
                ("GET", "/api/projects", OWNER),
                ("GET", "/api/projects/1234/exports", OWNER),
                ("GET", "/api/exports/1234-5678-0000000000000deadbeef", OWNER),
                ("GET", "/api/projects/0/exports", OWNER),
                ("GET", "/api/health", {}),
                ("GET", "/api/openapi.json", {}),
                ("GET", "/api/projects", {}),
            ]
            together = threading.Barrier(len(first))

            def call(method, path, headers):
                together.wait(10)  # all at once: the handlers' first imports race each other
                return requests.request(method, host.url + path, headers=headers, timeout=60)

            with concurrent.futures.ThreadPoolExecutor(len(first)) as pool:
                answers = list(pool.map(lambda args: call(*args), first))
            started, projects, listing, unknown, bad_id, health, openapi, anonymous = answers
            assert started.status_code == 202, started.text
            assert projects.status_code == 200 and projects.json()["user"]["login"] == "demo-owner"
            assert listing.status_code == 200 and any(
                s["id"] == "5678" for s in listing.json()["subject_sets"]
            )
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "export_not_found"
            assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "invalid_id"
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.1")
            assert anonymous.status_code == 401
            # The queue trigger's first invocation, too: the export reaches the ML service.
            location = host.url + started.headers["Location"]
            export = wait_for(
                lambda: (
                    (e := requests.get(location, headers=OWNER, timeout=30).json())["status"] == "submitted"
                    and e
                ),
                60,
                message="the export to be submitted",
            )
            assert export["ml_task_id"] and ml.accepted_count == 1
            assert "Traceback" not in host.output(), host.output()[-3000:]
