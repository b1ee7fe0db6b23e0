"""The detections file's bytes, exactly as aggregate_results() uploads it, with each image
as score_v5.py and pytorch_detector.py write it (README.md: the facts and their sources);
synthetic images for files of any size; the hostile bodies.

Everything here is a generator of bytes: a file of a million images (hundreds of MB)
is never held in memory. `encode_image()` reproduces `json.dumps(..., indent=1)` for one
image nested in the file, byte for byte, about twice as fast as the stdlib's pure-Python
indenting encoder (the C encoder does not do indentation).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_str  # C-accelerated, ensure_ascii=False
from typing import Any

DETECTION_CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}  # DETECTOR_LABEL_MAP
FORMAT_VERSION = "1.1"  # OUTPUT_FORMAT_VERSION
FAILURE_INFER = "Failure inference"  # pytorch_detector.FAILURE_INFER
FAILURE_IMAGE_OPEN = "Failure image access"  # pytorch_detector.FAILURE_IMAGE_OPEN
CHUNK_BYTES = 64 * 1024  # pieces handed to the socket: big enough to keep 1M images fast
SYNTHETIC_UPLOADS = "https://panoptes-uploads.zooniverse.org/production/subject_location"

_SIXTEEN_SHORTS = struct.Struct(">16H")
_NEWLINE_INDENT = ["\n" + " " * depth for depth in range(64)]


# -- one image ------------------------------------------------------------------------
def detect(row: Any, failure_rate: float, access_failure_rate: float = 0.0) -> dict:
    """Deterministic fake MegaDetector v5 output for one image row (a hash of its locator).

    Key order and failure shapes follow score_v5.py/pytorch_detector.py, so the bytes of
    the file look like the real one's.
    """
    url, meta, has_meta = (row[0], row[1], True) if isinstance(row, list) else (row, None, False)
    unit = [x / 65535 for x in _SIXTEEN_SHORTS.unpack(hashlib.sha256(str(url).encode("utf-8")).digest())]
    if unit[0] < failure_rate:
        return failed_inference(row)
    out: dict = {"file": url}
    if unit[0] < failure_rate + access_failure_rate:
        out["failure"] = FAILURE_IMAGE_OPEN  # the download failed: no detector output at all
    else:
        dets = _fake_detections(unit)
        out["max_detection_conf"] = max((d["conf"] for d in dets), default=0.0)
        out["detections"] = dets
    if has_meta:
        out["meta"] = meta  # verbatim: the Subject Assistant parses it
    return out


def failed_inference(row: Any) -> dict:
    """An image whose inference failed: PTDetector still writes max_detection_conf 0.0 and no
    detections, so the Subject Assistant shows it as 100% empty."""
    url, meta, has_meta = (row[0], row[1], True) if isinstance(row, list) else (row, None, False)
    out = {"file": url, "failure": FAILURE_INFER, "max_detection_conf": 0.0, "detections": []}
    if has_meta:
        out["meta"] = meta
    return out


def _fake_detections(unit: list) -> list:
    n = 0 if unit[1] < 0.4 else 1 + int(unit[2] * 3) % 3  # ~40% empty, like camera-trap data
    dets = []
    for k in range(n):
        u = unit[3 + 3 * k : 6 + 3 * k]
        category = "1" if u[0] < 0.8 else ("2" if u[0] < 0.95 else "3")
        x, y = round(u[1] * 0.6, 4), round(u[2] * 0.6, 4)
        dets.append(
            {
                "category": category,
                "conf": round(0.1 + 0.899 * u[(k + 1) % 3], 3),
                "bbox": [x, y, round(0.1 + u[2] * 0.3, 4), round(0.1 + u[1] * 0.3, 4)],
            }
        )
    return dets


def encode_image(image: Any) -> str:
    """`image` as json.dumps(file, ensure_ascii=False, indent=1) writes it inside `images`."""
    if type(image) is dict:
        fields = []
        for key, value in image.items():
            if type(key) is not str:
                return "  " + _encode(image, 2)
            text = _encode_detections(value) if key == "detections" else None
            fields.append(_json_str(key) + ": " + (text or _encode(value, 3)))
        if fields:
            return "  {\n   " + ",\n   ".join(fields) + "\n  }"
    return "  " + _encode(image, 2)


def _encode_detections(dets: Any) -> str | None:
    """Fast path for MegaDetector's detection list; None when it has another shape."""
    if type(dets) is not list or not dets:
        return None
    items = []
    for d in dets:
        if type(d) is not dict or len(d) != 3:
            return None
        category, conf, bbox = d.get("category"), d.get("conf"), d.get("bbox")
        if (
            type(category) is not str
            or type(conf) is not float
            or not math.isfinite(conf)
            or type(bbox) is not list
            or not bbox
            or list(d) != ["category", "conf", "bbox"]
            or not all(type(x) is float and math.isfinite(x) for x in bbox)
        ):
            return None
        items.append(
            '    {\n     "category": '
            + _json_str(category)
            + ',\n     "conf": '
            + float.__repr__(conf)
            + ',\n     "bbox": [\n      '
            + ",\n      ".join(map(float.__repr__, bbox))
            + "\n     ]\n    }"
        )
    return "[\n" + ",\n".join(items) + "\n   ]"


def _encode(value: Any, depth: int) -> str:
    """An indent=1 JSON encoder for the shapes we emit; anything unusual goes to json.dumps.

    JSON strings never hold a raw newline, so re-indenting json.dumps output by replacing
    "\\n" is exact; that is the fallback for empty containers, None, bools, NaN and
    non-string keys, whose spelling we leave to the stdlib.
    """
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is float:
        if math.isfinite(value):
            return float.__repr__(value)
    elif kind is int:
        return int.__repr__(value)
    elif kind is dict:
        if value and depth < 60 and all(type(k) is str for k in value):
            inner = _NEWLINE_INDENT[depth + 1]
            return (
                "{"
                + inner
                + ("," + inner).join([_json_str(k) + ": " + _encode(v, depth + 1) for k, v in value.items()])
                + _NEWLINE_INDENT[depth]
                + "}"
            )
    elif kind is list:
        if value and depth < 60:
            inner = _NEWLINE_INDENT[depth + 1]
            return (
                "["
                + inner
                + ("," + inner).join([_encode(v, depth + 1) for v in value])
                + _NEWLINE_INDENT[depth]
                + "]"
            )
    return json.dumps(value, ensure_ascii=False, indent=1).replace("\n", _NEWLINE_INDENT[depth])


# -- the whole file -------------------------------------------------------------------
def file_info(model_version: str, completion_time: str) -> dict:
    return {
        "detector": f"megadetector_v{model_version}",
        "detection_completion_time": completion_time,
        "format_version": FORMAT_VERSION,
    }


def iter_file_bytes(info: dict, images: Iterable[dict], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file exactly as aggregate_results() uploads it, in pieces of about chunk_bytes."""
    skeleton = json.dumps(
        {"info": info, "detection_categories": DETECTION_CATEGORIES, "images": []},
        ensure_ascii=False,
        indent=1,
    )
    head, tail = skeleton.rsplit("[]", 1)  # tail is "\n}"
    buf = [head, "["]
    size = 0
    sep = "\n"
    for image in images:
        text = encode_image(image)
        buf.append(sep)
        buf.append(text)
        sep = ",\n"
        size += len(text)
        if size >= chunk_bytes:
            yield "".join(buf).encode("utf-8")
            buf, size = [], 0
    buf.append("]" if sep == "\n" else "\n ]")
    buf.append(tail)
    yield "".join(buf).encode("utf-8")


def count_bytes(pieces: Iterable[bytes]) -> int:
    return sum(len(p) for p in pieces)


def images_to_exceed(info: dict, images: Iterable[dict], limit: int) -> tuple[int, int]:
    """How many of `images` make the file longer than `limit` bytes, and that file's size.

    Sizes follow iter_file_bytes(): `[`, then "\n" + image, ",\n" + image..., then "\n ]".
    """
    skeleton = json.dumps(
        {"info": info, "detection_categories": DETECTION_CATEGORIES, "images": []},
        ensure_ascii=False,
        indent=1,
    ).encode("utf-8")
    empty_size = len(skeleton)  # "[]" included
    size, count = empty_size, 0
    for image in images:
        if size > limit:
            break
        text = encode_image(image)
        item = len(text) if text.isascii() else len(text.encode("utf-8"))
        size += item + (len("\n") + len("\n ") if count == 0 else len(",\n"))
        count += 1
    return count, size


@dataclass(frozen=True)
class SyntheticImages:
    """`count` images that were never in a manifest, for results of a given size.

    Rows look like Hamlet's: a Panoptes upload URL and a meta string with project_id,
    subject_set_id, subject_id and frame_id (all strings, in that order).
    """

    count: int | None  # None: endless (for the drip)
    project_id: str = "1"
    subject_set_id: str = "1"
    first_subject_id: int = 10_000_000
    frames: int = 3  # frames a subject

    def rows(self) -> Iterator[list]:
        i = 0
        while self.count is None or i < self.count:
            yield self.row(i)
            i += 1

    def row(self, i: int) -> list:
        h = hashlib.md5(f"synthetic:{self.subject_set_id}:{i}".encode()).hexdigest()
        url = f"{SYNTHETIC_UPLOADS}/{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}.jpeg"
        # json.dumps of the four keys, spelt out because this runs a million times
        meta = (
            f'{{"project_id": {json.dumps(self.project_id)}, "subject_set_id": '
            f'{json.dumps(self.subject_set_id)}, "subject_id": "{self.first_subject_id + i // self.frames}", '
            f'"frame_id": "{i % self.frames}"}}'
        )
        return [url, meta]


# -- hostile bodies -------------------------------------------------------------------
GZIP_BOMB_INFLATED_BYTES = 256 * 1024 * 1024  # >= 200 MB however MB is counted
_gzip_bomb_lock = threading.Lock()
_gzip_bomb: bytes | None = None

NOT_JSON_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code>'
    b"<Message>This is not JSON.</Message></Error>"
)


def gzip_bomb() -> bytes:
    """A gzip member of about 260 KB inflating to 256 MiB of valid JSON; built once per process.

    The bulk is whitespace inside the `images` array (legal JSON), which deflate compresses
    at its best ratio (~1000:1).
    """
    global _gzip_bomb
    with _gzip_bomb_lock:
        if _gzip_bomb is None:
            text = json.dumps(
                {
                    "info": file_info("5a", "2021-02-08T20:02:05.699689Z"),
                    "detection_categories": DETECTION_CATEGORIES,
                },
                indent=1,
            )[:-2]
            head = (text + ',\n "images": [').encode()
            tail = b"]\n}"
            comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
            out = [comp.compress(head)]
            block = b" " * (1 << 20)
            padding = GZIP_BOMB_INFLATED_BYTES - len(head) - len(tail)
            for _ in range(padding // len(block)):
                out.append(comp.compress(block))
            out.append(comp.compress(b" " * (padding % len(block)) + tail))
            out.append(comp.flush())
            _gzip_bomb = b"".join(out)
        return _gzip_bomb


def drip_source(info: dict, synthetic: SyntheticImages) -> Iterator[bytes]:
    """The opening of a valid-looking detections file that never ends, one byte at a time."""
    images = (
        detect(row, 0.0)
        for row in SyntheticImages(None, synthetic.project_id, synthetic.subject_set_id).rows()
    )
    for piece in iter_file_bytes(info, images, chunk_bytes=256):
        for i in range(len(piece)):
            yield piece[i : i + 1]
