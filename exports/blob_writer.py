"""Blobs as streams: BlockBlobWriter writes one (a manifest, a results CSV) without holding it
whole; read_blob reads one piece by piece."""

from __future__ import annotations

import base64
import concurrent.futures

from azure.storage.blob import BlobBlock, ContentSettings

BLOCK_SIZE = 2 * 1024 * 1024


class BlockBlobWriter:
    """Stages BLOCK_SIZE blocks as bytes arrive; nothing is visible until `commit`.

    Blocks are staged on one background thread, so the caller goes on reading Panoptes while a
    block uploads (a 2 MiB block takes about as long as 20 pages at the default concurrency). At
    most one block waits behind the one in flight: memory stays at about three blocks.
    A staging error is raised by the next `write` or by `commit`."""

    def __init__(self, blob_client, content_type: str = "application/json"):
        self._blob = blob_client
        self._content_type = content_type
        self._buffer = bytearray()
        self._blocks: list[BlobBlock] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "manifest-block")
        self._pending: list[concurrent.futures.Future] = []
        self.size = 0

    @property
    def blocks_waiting(self) -> int:
        """Blocks handed to the staging thread and not yet staged (at most two)."""
        return sum(1 for future in self._pending if not future.done())

    @property
    def block_count(self) -> int:
        return len(self._blocks)

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= BLOCK_SIZE:
            self._stage(bytes(self._buffer[:BLOCK_SIZE]))
            del self._buffer[:BLOCK_SIZE]

    def _stage(self, data: bytes) -> None:
        while len(self._pending) >= 2:  # one in flight, one waiting: wait for the oldest
            self._pending.pop(0).result()
        block_id = base64.b64encode(f"{len(self._blocks):010d}".encode()).decode()
        self._blocks.append(BlobBlock(block_id=block_id))
        self._pending.append(self._pool.submit(self._blob.stage_block, block_id, data))

    def _drain(self) -> None:
        try:
            while self._pending:
                self._pending.pop(0).result()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()

    def commit(self) -> None:
        try:
            if self._buffer or not self._blocks:
                self._stage(bytes(self._buffer))
                self._buffer.clear()
            self._drain()
            self._blob.commit_block_list(
                self._blocks, content_settings=ContentSettings(content_type=self._content_type)
            )
        finally:
            self.close()

    def close(self) -> None:
        """Stop staging (an abandoned manifest's staged blocks expire on their own)."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BlobReader:
    """A blob as a plain `read(size)` stream (the SDK's downloader also offers `readinto`, which
    ijson would call with a buffer the downloader cannot write into)."""

    def __init__(self, downloader):
        self._downloader = downloader

    def read(self, size: int = -1) -> bytes:
        return bytes(self._downloader.read(size))


def read_blob(container, name: str) -> BlobReader:
    """One blob of `container`, streamed (ResourceNotFoundError when it is gone)."""
    return BlobReader(container.get_blob_client(name).download_blob(max_concurrency=1))
