"""The subject manifest, byte for byte as Hamlet wrote it (the Subject Assistant depends on it).

`json.dumps(rows)` of `[[url, meta], ...]` where meta is itself `json.dumps` of
{"project_id", "subject_set_id", "subject_id", "frame_id"} (all strings, in that order), one row
per image frame, in Panoptes' order. `ManifestEncoder` produces the same bytes incrementally so
a million-row manifest is streamed to the blob instead of held whole.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps uses for str
from typing import Any
from urllib.parse import urlsplit

import ijson

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SUBJECT_ID = re.compile(r'"subject_id": "([0-9]+)"')  # in a meta this module wrote
# Fast path for plain absolute URLs (all of Panoptes'): printable ASCII without spaces or
# brackets, where group 1 is exactly urlsplit's path. Anything else takes urlsplit itself.
_C = r"\x00-\x20\x5b\x5d\x7f-\U0010ffff"  # characters that send a URL to the slow path
_PLAIN_URL = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#{_C}]*([^?#{_C}]*)(?:[?#][^{_C}]*)?")


def is_image_url(url: Any) -> bool:
    """True when the URL's path ends in .jpg/.jpeg/.png (any case), as the ML service requires."""
    if not isinstance(url, str):
        return False
    match = _PLAIN_URL.fullmatch(url)
    if match:
        return match[1].lower().endswith(IMAGE_SUFFIXES)
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return path.lower().endswith(IMAGE_SUFFIXES)


def frame_meta(project_id: str, subject_set_id: str, subject_id: str, frame_id: int) -> str:
    return json.dumps(
        {
            "project_id": str(project_id),
            "subject_set_id": str(subject_set_id),
            "subject_id": str(subject_id),
            "frame_id": str(frame_id),
        }
    )


def frame_url(location: Any) -> str | None:
    """The URL of one `{mime-type: url}` location, or None when it holds none."""
    if isinstance(location, dict):
        for url in location.values():
            return url if isinstance(url, str) else None
    return None


@dataclasses.dataclass
class ManifestCounts:
    subjects: int = 0
    images: int = 0
    skipped_frames: int = 0
    duplicates: int = 0


class ManifestEncoder:
    """Turns pages of subjects into manifest bytes, in chunks, skipping repeated subjects."""

    def __init__(self, project_id: str, subject_set_id: str):
        self.project_id = str(project_id)
        self.subject_set_id = str(subject_set_id)
        self.counts = ManifestCounts()
        self._seen: set[int] = set()  # ints: about half the memory of strings
        self._started = False  # has the opening "[" been written?
        # frame_meta() spelled out once: the same bytes as json.dumps of the four-key dict.
        self._meta_head = (
            f'{{"project_id": {_json_string(self.project_id)}, '
            f'"subject_set_id": {_json_string(self.subject_set_id)}, "subject_id": '
        )

    def _subject_rows(self, subject_id: str, locations: Any) -> list[str]:
        """Encoded rows (`json.dumps([url, meta])`) for one subject's image frames; other
        (or malformed) frames are counted as skipped."""
        rows = []
        if not isinstance(locations, list):
            locations = []
        subject = _json_string(subject_id)
        for index, location in enumerate(locations):
            url = frame_url(location)
            if url is not None and is_image_url(url):
                meta = f'{self._meta_head}{subject}, "frame_id": "{index}"}}'
                rows.append(f"[{_json_string(url)}, {_json_string(meta)}]")
            else:
                self.counts.skipped_frames += 1
        self.counts.subjects += 1
        self.counts.images += len(rows)
        return rows

    def encode_page(self, subjects: Iterable[dict[str, Any]]) -> bytes:
        parts = []
        for subject in subjects:
            subject_id = str(subject.get("id", "")) if isinstance(subject, dict) else ""
            if not (subject_id.isascii() and subject_id.isdigit()):
                continue  # not a subject: nothing the Subject Assistant could link to
            key = int(subject_id)
            if key in self._seen:
                self.counts.duplicates += 1
                continue
            self._seen.add(key)
            for row in self._subject_rows(subject_id, subject.get("locations")):
                # json.dumps([[a, b], [c, d]]) == "[" + ", ".join(json.dumps(row) ...) + "]"
                parts.append((", " if self._started else "[") + row)
                self._started = True
        return "".join(parts).encode("ascii")

    def finish(self) -> bytes:
        return b"]" if self._started else b"[]"


def subject_of(meta: str) -> str:
    """The subject id of a manifest row's meta (normally our own json.dumps of four strings)."""
    found = _SUBJECT_ID.search(meta)
    if found:
        return found[1]
    try:
        parsed = json.loads(meta)
    except ValueError:
        return meta[:40]
    value = parsed.get("subject_id") if isinstance(parsed, dict) else None
    return str(value)[:40] if value is not None else meta[:40]


def copy_manifest_rows(stream: Any, write: Callable[[bytes], None]) -> ManifestCounts:
    """Copy a manifest (a re-run's rows) to `write`, row by row, re-encoded to the very same bytes
    (json.dumps of the rows), counting its images and subjects (a subject's rows are consecutive).
    ValueError when it is not a manifest."""
    counts = ManifestCounts()
    last_subject = None
    started = False
    try:
        for row in ijson.items(stream, "item", buf_size=64 * 1024):
            if type(row) is not list or len(row) != 2 or not all(type(v) is str for v in row):
                raise ValueError("a manifest row is not a [url, meta] pair of strings")
            url, meta = row
            write(
                ((", " if started else "[") + f"[{_json_string(url)}, {_json_string(meta)}]").encode("ascii")
            )
            started = True
            counts.images += 1
            key = subject_of(meta)
            if key != last_subject:
                counts.subjects += 1
                last_subject = key
    except ijson.common.JSONError as exc:
        raise ValueError(f"not a manifest ({exc})") from None
    write(b"]" if started else b"[]")
    return counts


def build_manifest(
    pages: Iterable[Iterable[dict[str, Any]]], project_id: str, subject_set_id: str
) -> tuple[bytes, ManifestCounts]:
    """The whole manifest at once (tests and small sets); same bytes as the streaming path."""
    encoder = ManifestEncoder(project_id, subject_set_id)
    chunks = [encoder.encode_page(page) for page in pages]
    chunks.append(encoder.finish())
    return b"".join(chunks), encoder.counts
