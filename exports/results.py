"""The ML service's detections file: which URLs we may follow, and its summary in one pass.

The URL comes from the ML service's answer, so it is untrusted input: it is followed (and shown to
users as `results_url`) only when it is https on an allowed host (the Azure blob hosts by default,
where the real service writes its output) or on the ML service's own origin, scheme included (how
the local emulator serves it). Anything else is neither fetched nor returned.

The file itself can hold millions of images (the service writes it with `indent=1`: hundreds of
MB), so it is summarised as a stream with ijson's C backend: one image object at a time, memory
that does not grow with the file. The download that feeds it is bounded in bytes and in total time
(shared/outbound.py); this module sees only a file-like object.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol
from urllib.parse import urlsplit

import ijson

from shared.urls import Url, UrlError, parse_url

# ijson's C backend (yajl2_c) is about 4x faster than json.load on a detections file; the pure
# Python fallback would be about 10x slower. Fail loudly rather than silently slow.
if ijson.backend != "yajl2_c":  # pragma: no cover - depends on the installed wheel
    raise ImportError(f"ijson's C backend is not available (got {ijson.backend}); reinstall ijson")

READ_SIZE = 64 * 1024


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class ResultsPolicy:
    allowed_hosts: tuple[str, ...]  # "host" or "*.domain"
    ml_origin: tuple[str, str, int]  # (scheme, host, port) of the ML service, always allowed


def describe(url: str) -> str:
    """The URL as it may be logged: no query string (a SAS signature lives there), no user info."""
    try:
        return parse_url(url).without_query[:200]
    except UrlError:
        pass
    try:  # for the log only: what a refused link looked like, without its secrets
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.netloc:
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"[:200]
    return f"{parts.scheme}: URL"[:200]


def checked_url(url: Any, policy: ResultsPolicy) -> Url:
    """The detections URL parsed once (shared/urls.py), or UrlProblem saying why it must not be
    followed. The download connects to exactly the parsed host and port."""
    if not isinstance(url, str):
        raise UrlProblem("The ML service reported no usable results link.")
    try:
        parsed = parse_url(url)
    except UrlError as exc:
        raise UrlProblem(f"The ML service reported a results link that is not followed: {exc}.") from None
    if parsed.origin == policy.ml_origin:
        return parsed  # the service's own origin, scheme included
    if parsed.scheme != "https":
        raise UrlProblem(
            f"The ML service reported a results link with scheme '{parsed.scheme}'; "
            "only https links are followed."
        )
    if parsed.effective_port != 443 or not any(_host_matches(parsed.host, p) for p in policy.allowed_hosts):
        raise UrlProblem(
            f"The ML service reported results on host '{parsed.netloc}', which is not an allowed "
            "results host (RESULTS_ALLOWED_HOSTS)."
        )
    return parsed


def url_problem(url: Any, policy: ResultsPolicy) -> str | None:
    """Why the detections URL must not be followed, or None when it may be."""
    try:
        checked_url(url, policy)
    except UrlProblem as exc:
        return str(exc)
    return None


class UrlProblem(ValueError):
    """The results link must not be followed (nor shown); the message says why, for people."""


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


@dataclasses.dataclass
class Counts:
    returned: int = 0
    failed: int = 0
    likely_empty: int = 0


def count_images(stream: ByteStream, threshold: float) -> Counts:
    """Count a detections file's images in one pass. ValueError when it is not a detections file
    (not JSON, or no top-level `images` list)."""
    counts = Counts()
    head = _HeadRecorder(stream)
    try:
        # One parser, straight over the bytes: "images.item" matches only the items of a
        # top-level object's `images` array.
        for image in ijson.items(head, "images.item", use_float=True, buf_size=READ_SIZE):
            if not isinstance(image, dict):
                continue
            counts.returned += 1
            if "failure" in image:
                counts.failed += 1
            elif _confidence(image) < threshold:
                counts.likely_empty += 1
        if counts.returned == 0 and not head.has_images_list():
            raise ValueError("the detections file has no images list")
    except ijson.common.JSONError as exc:
        raise ValueError(f"the detections file is not valid JSON ({exc})") from None
    return counts


class _HeadRecorder:
    """Passes reads through, keeping the first HEAD_LIMIT bytes: when no image was found, they
    tell an empty `images` list (a small file) from a file that is not a detections file."""

    HEAD_LIMIT = 1 << 20

    def __init__(self, stream: ByteStream):
        self._stream = stream
        self._head = bytearray()
        self._complete = True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if len(self._head) < self.HEAD_LIMIT:
            self._head += data[: self.HEAD_LIMIT - len(self._head)]
        if len(data) and len(self._head) >= self.HEAD_LIMIT:
            self._complete = False
        return data

    def has_images_list(self) -> bool:
        if not self._complete:
            return False  # over 1 MiB without a single image: not a detections file
        return any(
            prefix == "images" and event == "start_array"
            for prefix, event, _ in ijson.parse(bytes(self._head))
        )


def _confidence(image: dict[str, Any]) -> float:
    confidence = image.get("max_detection_conf")
    if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
        return float(confidence)
    detections = image.get("detections")
    if not isinstance(detections, list):
        return 0.0
    confs = [d.get("conf") for d in detections if isinstance(d, dict)]
    return max(
        (float(c) for c in confs if isinstance(c, (int, float)) and not isinstance(c, bool)), default=0.0
    )


def summary(
    counts: Counts, images_submitted: int | None, threshold: float, failed_shards: Any
) -> dict[str, Any]:
    """The Export's results_summary. `images_submitted` is what the service says it processed
    (Status.num_images, after its own filtering) or, failing that, our manifest's image count;
    missing images are those submitted but absent from the file (failed shards)."""
    submitted = images_submitted if images_submitted is not None else counts.returned
    return {
        "available": True,
        "images_submitted": submitted,
        "images_returned": counts.returned,
        "images_failed": counts.failed,
        "images_missing": max(submitted - counts.returned, 0),
        "images_likely_empty": counts.likely_empty,
        "likely_empty_threshold": threshold,
        "failed_shards": failed_shards
        if isinstance(failed_shards, int) and not isinstance(failed_shards, bool)
        else None,
    }


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}
