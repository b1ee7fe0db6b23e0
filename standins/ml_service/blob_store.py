"""The results blob, as Azure Blob Storage serves what aggregate_results() uploaded
(server_orchestration.py): which images the file holds, its bytes and length, and the
hostile ways of serving it that the client's tests need."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..server import Request, Response
from . import detections, real
from .detections import SyntheticImages, detect, failed_inference
from .tasks import Task, TaskTable
from .wire import blob_error

RESULTS_MODES = (None, "gzip_bomb", "drip", "oversized", "not_json")
DEFAULT_OVERSIZED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class FileSpec:
    """Everything that decides the bytes of one detections file (also the length cache key)."""

    model_version: str
    completion_time: str
    kept_shards: tuple  # shard indices, in the blob-name order aggregate_results reads them
    shard_size: int
    failure_rate: float
    access_failure_rate: float
    synthetic: SyntheticImages | None  # None: the manifest rows of kept_shards
    failed_rows: frozenset[int] = frozenset()  # row indices: in the manifest, or synthetic
    missing_rows: frozenset[int] = frozenset()
    extra_rows: tuple[str, ...] = ()  # JSON rows; the k-th follows the file's k-th image

    @property
    def info(self) -> dict:
        return detections.file_info(self.model_version, self.completion_time)


def sas_url(root_url: str, t: Task) -> str:
    """The results link: the blob on this server with a read-only SAS, or the URL a test set."""
    if t.results_url is not None:
        return t.results_url
    expiry = datetime.now(UTC) + timedelta(days=real.OUTPUT_SAS_EXPIRATION_DAYS)
    sig = base64.b64encode(hashlib.sha256(t.request_id.encode()).digest()).decode()
    query = urllib.parse.urlencode(
        {"se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "sp": "r", "sv": "2020-10-02", "sr": "b", "sig": sig}
    )
    return f"{root_url}/results/{t.request_id}/detections.json?{query}"


class BlobStore:
    """GET /results/<id>/detections.json?<SAS>, and the same bytes for test controls."""

    def __init__(self, table: TaskTable, stopping: threading.Event):
        self.table = table
        self.stopping = stopping  # set when the server stops: ends a drip
        self.drips_ended = threading.Event()  # set by a test: ends every drip now, and later ones

    def serve(self, req: Request) -> Response:
        if req.method not in ("GET", "HEAD"):
            return blob_error(405, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.")
        parts = req.path.strip("/").split("/")  # results/<id>/detections.json
        with self.table.lock:
            name_ok = len(parts) == 3 and parts[2] == "detections.json"
            t = self.table.tasks.get(parts[1]) if name_ok else None
            mode = t.results_mode if t is not None and t.results_ready else None
        if t is None or not t.results_ready:
            return blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if not req.query.get("sig"):
            return blob_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. "
                "Make sure the value of Authorization header is formed correctly "
                "including the signature.",
            )
        headers = {"x-ms-blob-type": "BlockBlob"}
        ctype = "application/octet-stream"  # upload_blob() without content settings
        if mode == "gzip_bomb":
            return Response(
                200, detections.gzip_bomb(), {**headers, "Content-Encoding": "gzip"}, "application/json"
            )
        if mode == "not_json":
            return Response(200, detections.NOT_JSON_BODY, headers, "application/json")
        if mode == "drip":
            source, count = self._drip_source(t)
            return Response(
                200, self._drip(source, count, t.drip_interval), headers, ctype, content_length=count
            )
        spec = self.file_spec(t.request_id)
        body = detections.iter_file_bytes(spec.info, self._images(t, spec))
        length = None if t.results_chunked else self._file_length(t, spec)
        return Response(200, body, headers, ctype, content_length=length)

    def file_bytes(self, request_id: str) -> Iterator[bytes]:
        """The valid file (the "oversized" one included), in pieces."""
        spec = self.file_spec(request_id)
        t = self.table.tasks[request_id]
        return detections.iter_file_bytes(spec.info, self._images(t, spec))

    def file_images(self, request_id: str) -> Iterator[dict]:
        """The valid file's images, in order, before they are encoded."""
        spec = self.file_spec(request_id)
        t = self.table.tasks[request_id]
        return self._images(t, spec)

    def body_bytes(self, request_id: str) -> Iterator[bytes]:
        """The bytes the results URL answers with (before any gzip decoding); a drip's without
        its waits."""
        with self.table.lock:
            t = self.table.tasks[request_id]
            mode = t.results_mode
        if mode == "gzip_bomb":
            return iter([detections.gzip_bomb()])
        if mode == "not_json":
            return iter([detections.NOT_JSON_BODY])
        if mode == "drip":
            source, count = self._drip_source(t)
            return itertools.islice(source, count)
        return self.file_bytes(request_id)

    def file_spec(self, request_id: str) -> FileSpec:
        """What the file holds: synthetic images, an oversized file, or the kept shards' rows."""
        with self.table.lock:
            t = self.table.tasks[request_id]
            shards = t.num_shards
            kept = shards - self.table.dropped_shards(t) if t.kept_count is None else t.kept_count
            version = t.model_version
            spec = FileSpec(
                version if isinstance(version, str) else str(version),
                t.completion_time or t.last_updated,
                tuple(sorted(range(kept), key=str)),  # job_<id>_task_<n>.json name order
                t.shard_size,
                t.failure_rate,
                t.access_failure_rate,
                None,
                t.failed_rows,
                t.missing_rows,
                t.extra_rows,
            )
            mode, limit, count = t.results_mode, t.results_bytes, t.results_images
        if mode == "oversized":  # outside the lock: sizing can take seconds; only rates apply
            plain = dataclasses.replace(
                spec, failed_rows=frozenset(), missing_rows=frozenset(), extra_rows=()
            )
            return self._oversized_spec(t, plain, DEFAULT_OVERSIZED_BYTES if limit is None else limit)
        if count is not None:
            return dataclasses.replace(spec, synthetic=self._synthetic(t, count))
        return spec

    def _oversized_spec(self, t: Task, spec: FileSpec, limit: int) -> FileSpec:
        """Enough synthetic images for the file to pass `limit` bytes (counted once, cached)."""
        key = ("oversized", spec, limit)
        if key not in t.length_cache:
            endless = self._synthetic(t, None)
            images = (detect(row, spec.failure_rate, spec.access_failure_rate) for row in endless.rows())
            t.length_cache[key] = detections.images_to_exceed(spec.info, images, limit)
        count, size = t.length_cache[key]
        sized = dataclasses.replace(spec, synthetic=self._synthetic(t, count))
        t.length_cache[sized] = size
        return sized

    @staticmethod
    def _synthetic(t: Task, count: int | None) -> SyntheticImages:
        """Synthetic rows that reuse the manifest's project and subject set when it has them."""
        project_id, subject_set_id = "1", "1"
        if t.images and isinstance(t.images[0], list):
            try:
                meta = json.loads(t.images[0][1])
                project_id = str(meta.get("project_id", project_id))
                subject_set_id = str(meta.get("subject_set_id", subject_set_id))
            except (TypeError, ValueError, AttributeError):
                pass
        return SyntheticImages(count, project_id, subject_set_id, frames=t.results_frames)

    @staticmethod
    def _images(t: Task, spec: FileSpec) -> Iterator[dict]:
        """The file's images, in order: each row (index, row) of the kept shards (or synthetic),
        scored, failed or left out as chosen, with the extra rows in between."""
        indexed: Iterable[tuple[int, Any]]
        if spec.synthetic is not None:
            indexed = enumerate(spec.synthetic.rows())
        else:
            images, size = t.images or [], spec.shard_size
            positions = (
                p
                for shard in spec.kept_shards
                for p in range(shard * size, min((shard + 1) * size, len(images)))
            )
            indexed = ((t.row_index(p), images[p]) for p in positions)
        rates = spec.failure_rate, spec.access_failure_rate
        failed, missing = spec.failed_rows, spec.missing_rows
        if failed or missing:
            scored = (
                failed_inference(row) if i in failed else detect(row, *rates)
                for i, row in indexed
                if i not in missing
            )
        else:
            scored = (detect(row, *rates) for _, row in indexed)
        if not spec.extra_rows:
            return scored
        return _interleave(scored, (detect(json.loads(row), *rates) for row in spec.extra_rows))

    def _file_length(self, t: Task, spec: FileSpec) -> int:
        """Content-Length by a counting pass over the same generator, once per file."""
        if spec not in t.length_cache:
            t.length_cache[spec] = detections.count_bytes(
                detections.iter_file_bytes(spec.info, self._images(t, spec))
            )
        return t.length_cache[spec]

    def _drip_source(self, t: Task) -> tuple[Iterator[bytes], int]:
        """(byte iterator, how many bytes fit in drip_max_seconds at one per drip_interval)."""
        spec = self.file_spec(t.request_id)
        interval = max(t.drip_interval, 1e-6)
        count = max(1, int(t.drip_max_seconds / interval))
        return detections.drip_source(spec.info, self._synthetic(t, None)), count

    def _drip(self, source: Iterator[bytes], count: int, interval: float) -> Iterator[bytes]:
        """One byte every `interval` seconds; stops early when the server stops."""
        for i, byte in enumerate(itertools.islice(source, count)):
            if i and (self.stopping.wait(interval) or self.drips_ended.is_set()):
                return
            yield byte


def _interleave(images: Iterator[dict], extra: Iterator[dict]) -> Iterator[dict]:
    """The k-th extra image right after the k-th image; the rest at the end."""
    for image in images:
        yield image
        yield from itertools.islice(extra, 1)
    yield from extra
