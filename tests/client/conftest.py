import pytest

from tests.client.fake_service import FakeExportService


@pytest.fixture
def fake():
    with FakeExportService() as service:
        yield service


@pytest.fixture
def unused_port():
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
