"""The app's wiring (exports/services.py): built once per process, its storage made sure of
once per storage account and container."""

from __future__ import annotations

import types
import uuid

import pytest

from devtools.local_env import offline_settings
from exports import services as wiring
from tests.harness import TOKEN_KEY

NOWHERE = types.SimpleNamespace(url="http://127.0.0.1:9")  # no call reaches Panoptes or the ML service


@pytest.fixture
def ensured(monkeypatch):
    """The containers whose resources get_services() made sure of, in order."""
    made = []
    real = wiring.Services.ensure_resources

    def spy(self):
        made.append(self.settings.container_name)
        real(self)

    monkeypatch.setattr(wiring.Services, "ensure_resources", spy)
    yield made
    wiring.reset_services()


def wire(azurite, monkeypatch, container: str) -> wiring.Services:
    env = offline_settings(
        azurite, NOWHERE, NOWHERE, TOKEN_KEY, SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME=container
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset_services()  # as the tests do when they change the settings
    return wiring.get_services()


def test_storage_is_made_sure_of_once_per_account_and_container(azurite, monkeypatch, ensured):
    first, second = f"c{uuid.uuid4().hex[:12]}", f"c{uuid.uuid4().hex[:12]}"
    wire(azurite, monkeypatch, first)
    wire(azurite, monkeypatch, first)  # rebuilt with the same storage: not asked again
    assert ensured == [first]
    services = wire(azurite, monkeypatch, second)
    assert ensured == [first, second]
    assert services.container.exists()  # and really made
