"""BlockBlobWriter against Azurite: blocks staged in the background commit to exactly the bytes
written, in order; a staging error reaches the caller and commits nothing; at most two blocks
wait at once (memory stays bounded)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError

from exports import blob_writer
from exports.blob_writer import BlockBlobWriter
from shared.settings import StorageSettings
from shared.storage import StorageClients


@pytest.fixture
def container(azurite):
    storage = StorageClients(StorageSettings(connection_string=azurite.connection_string))
    name = "writer-" + uuid.uuid4().hex[:8]
    client = storage.blob_service.create_container(name)
    yield client
    client.delete_container()


class SlowStaging:
    """A blob client whose stage_block is slow (and may fail), counting blocks not yet staged."""

    def __init__(self, blob, fail_at: int | None = None, delay: float = 0.02):
        self._blob, self._fail_at, self._delay = blob, fail_at, delay
        self._lock = threading.Lock()
        self.calls = 0

    def stage_block(self, block_id, data):
        with self._lock:
            self.calls += 1
            call = self.calls
        time.sleep(self._delay)
        if call == self._fail_at:
            raise ConnectionError("injected staging failure")
        self._blob.stage_block(block_id, data)

    def __getattr__(self, name):
        return getattr(self._blob, name)


def test_background_blocks_commit_the_bytes_in_order(container, monkeypatch):
    monkeypatch.setattr(blob_writer, "BLOCK_SIZE", 1000)
    blob = container.get_blob_client("m.json")
    chunks = [bytes([65 + i % 26]) * (137 * (i % 7) + 1) for i in range(200)]
    writer = BlockBlobWriter(SlowStaging(blob, delay=0.002))
    waiting = []
    for chunk in chunks:
        writer.write(chunk)
        waiting.append(writer.blocks_waiting)
    writer.commit()
    assert blob.download_blob().readall() == b"".join(chunks)
    assert blob.get_blob_properties().content_settings.content_type == "application/json"
    assert max(waiting) <= 2 and writer.block_count > 20


def test_staging_error_reaches_the_caller_and_commits_nothing(container, monkeypatch):
    monkeypatch.setattr(blob_writer, "BLOCK_SIZE", 1000)
    blob = container.get_blob_client("broken.json")
    with pytest.raises(ConnectionError), BlockBlobWriter(SlowStaging(blob, fail_at=3)) as writer:
        for _ in range(50):
            writer.write(b"x" * 700)
        writer.commit()
    with pytest.raises(ResourceNotFoundError):
        blob.get_blob_properties()
