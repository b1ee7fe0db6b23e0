"""Shared fixtures: Azurite (real storage emulator) once per test session."""
import pytest

from devtools.azurite import start_azurite


@pytest.fixture(scope="session")
def azurite():
    emulator = start_azurite()
    yield emulator
    emulator.stop()


from tests.harness import settings_overrides, stack  # noqa: E402,F401  (fixtures for every test)
