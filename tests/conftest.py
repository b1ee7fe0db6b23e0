"""Shared fixtures: Azurite (real storage emulator) once per test session."""
import pytest

from devtools.azurite import start_azurite


@pytest.fixture(scope="session")
def azurite():
    emulator = start_azurite()
    yield emulator
    emulator.stop()
