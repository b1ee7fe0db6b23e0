"""The whole service through the local host: Azurite + Panoptes stand-in + ML emulator.

Fixtures `stack` and `settings_overrides` are registered for every test in tests/conftest.py."""
import json
import pathlib
from dataclasses import dataclass

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

import function_app
from devtools.host import LocalHost
from devtools.local_env import offline_settings
from exports.services import Services, get_services, reset_services
from exports.settings import ExportSettings as Settings
from exports.store import SET_INDEX_PREFIXES, export_from_row
from shared.names import EXPORT_POISON_QUEUE, EXPORT_QUEUE, EXPORT_TABLE
from standins.ml_service import MlServiceStandIn
from standins.panoptes import PanoptesStandIn
from standins.sample_data import load_sample

ROOT = pathlib.Path(__file__).resolve().parents[1]
# URL-safe base64 of 40 bytes, as TOKEN_ENCRYPTION_KEY must be (readable: it is a test key).
TOKEN_KEY = "ZTJlLXRlc3QtdG9rZW4tZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc4OQ=="
# Tests retry at once, hold leases briefly and cache nothing, so faults resolve within seconds.
FAST = {"RETRY_DELAY_SECONDS": "0", "PANOPTES_RETRY_BACKOFF_SECONDS": "0.01", "PANOPTES_RETRIES": "2",
        "AUTH_CACHE_SECONDS": "0", "ML_TIMEOUT_SECONDS": "5", "BUILD_LEASE_SECONDS": "3"}


@dataclass
class Stack:
    host: LocalHost
    panoptes: PanoptesStandIn
    ml: MlServiceStandIn
    sample: object
    env: dict

    @property
    def services(self) -> Services:
        return get_services()

    def call(self, method, path, token="demo-owner-token", **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return requests.request(method, self.host.url + path, headers=headers, timeout=30, **kwargs)

    def start_export(self, project="1234", subject_set="5678", token="demo-owner-token"):
        return self.call("POST", f"/api/projects/{project}/subject-sets/{subject_set}/exports", token)

    def get(self, export_id, token="demo-owner-token"):
        return self.call("GET", f"/api/exports/{export_id}", token)

    def export(self, export_id):
        return self.services.store.get(export_id).export

    def settle(self, timeout=30):
        assert self.host.wait_idle(timeout), "queue work did not finish in time"

    def tick(self):
        return self.host.run_timer("poll_ml_tasks")

    def table_rows(self):
        """One row per export (active or finished): the subject sets' index rows are left out."""
        table = self.services.storage.table(EXPORT_TABLE)
        return [row for row in table.list_entities() if not row["RowKey"].startswith(SET_INDEX_PREFIXES)]

    def exports(self):
        return [export_from_row(row) for row in self.table_rows()]

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
    for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    for name in (EXPORT_QUEUE, EXPORT_POISON_QUEUE):
        services.storage.queue(name).clear_messages()
    try:
        for blob in services.container.list_blobs():
            services.container.delete_blob(blob.name)
    except ResourceNotFoundError:
        pass


@pytest.fixture
def settings_overrides():
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
def stack(azurite, tmp_path, settings_overrides):
    with PanoptesStandIn() as panoptes, MlServiceStandIn(callers=("zooniverse",)) as ml:
        sample = load_sample(panoptes)
        env = offline_settings(azurite, panoptes, ml, TOKEN_KEY, **{**FAST, **settings_overrides})
        # Clear what earlier tests left before the host starts consuming the queue.
        services = Services.from_settings(Settings.from_env(env))
        services.ensure_resources()
        clear_storage(services)
        host = LocalHost(function_app.app, env=env, host_json=host_json(tmp_path), timers=False,
                         cors_origins=["https://subject-assistant.zooniverse.org"])
        with host:
            reset_services()
            yield Stack(host, panoptes, ml, sample, env)
        reset_services()
