"""Every image accounted for: the manifest against the detections file, in one streamed pass each.

At completion the detections file is read once (ijson's C backend, one image at a time) into
compact arrays, one entry per image: a 64-bit key of its (`file`, `meta`) pair, its
`max_detection_conf`, its best confidence per detection category, and its failure reason if any.
Then our own manifest is read once, in order, and each row gets one outcome:
- **scored**: in the file without `failure`;
- **failed**: in the file with `failure` (counted by the service's failure text);
- **missing**: not in the file (its shard failed).
Rows are matched on the pair, since one URL may appear in two subjects. Rows of the file that
match no manifest row are counted (`images_unknown`) and otherwise ignored.

The same pass aggregates per subject (the manifest lists a subject's frames together, in frame
order) and writes the results CSV, one row per subject in manifest order, and the re-run rows
(the failed and missing rows, byte for byte, in the manifest's order) through the writers it is
given. Memory: the arrays above (about 50 bytes an image), never the strings of the file; a
million images stay well under 100 MB (bench section "accounting").

"Likely empty" is the Subject Assistant's own default filter, computed as it computes it
(src/store/MLSelectionStore.js): `threshold <= (1 - max_detection_conf) * 100`, with the threshold
in whole percent (50 for LIKELY_EMPTY_CONFIDENCE 0.5), in float64 as JavaScript does. A failed
image is never likely empty here, although the Subject Assistant shows one with
`max_detection_conf: 0.0` as 100% empty.

The keys are Python's `hash()` of the (file, meta) pair: SipHash with a per-process random key
(collisions are as unlikely as 64 random bits, and cannot be aimed at), computed in C. Both
passes run in one process, so the keys agree.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from array import array
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, Protocol

import ijson
import numpy as np

from exports.manifest import subject_of

# ijson's C backend (yajl2_c) reads a detections file about as fast as json.load; the pure-Python
# fallback would be about 10x slower. Fail loudly rather than silently slow.
if ijson.backend != "yajl2_c":  # pragma: no cover - depends on the installed wheel
    raise ImportError(f"ijson's C backend is not available (got {ijson.backend}); reinstall ijson")

READ_SIZE = 64 * 1024
BATCH = 8192  # manifest rows matched at once (vectorised)
MAX_REASONS = 20  # distinct failure texts kept; the rest count as OTHER_FAILURE
MAX_REASON_LENGTH = 200
MAX_CATEGORIES = 16  # detection categories given a CSV column
OTHER_FAILURE = "Other failures"
_ABSENT: Any = object()  # a key the image does not have
HEAD_LIMIT = 1 << 20
_CATEGORY_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


Write = Callable[[bytes], None]


class NotADetectionsFile(ValueError):
    """The results file is not JSON, or has no top-level `images` list."""


class NotAManifest(ValueError):
    """Our manifest blob could not be read as a manifest."""


@dataclasses.dataclass
class Detections:
    """The detections file as compact arrays. Entry i is the i-th image of the file; `keys` is
    sorted, with `order[j]` the entry whose key is `keys[j]`. The per-entry arrays end with one
    more entry, NaN and unfailed, that no key names: where a manifest row has no entry."""

    keys: np.ndarray  # int64, sorted
    order: np.ndarray  # int64
    conf: np.ndarray  # float64: max_detection_conf as the Subject Assistant reads it (NaN: none)
    best: list[np.ndarray]  # float32, one per category: best confidence of the entry (0: none)
    failure: np.ndarray  # int16: 0 scored, k > 0 failed with reasons[k - 1]
    reasons: list[str]
    categories: list[tuple[str, str]]  # (id, name) in id order: the CSV's max_conf_<name> columns
    model: str | None
    unusable: int  # entries that are not objects with a string file and meta

    @property
    def entries(self) -> int:
        return len(self.keys)


def _js_number(value: Any) -> float:
    """`1 - value` as JavaScript would coerce `value` (what the Subject Assistant computes with):
    numbers as they are, null as 0, booleans as 0/1, numeric strings parsed, anything else NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return 0.0
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            return math.nan
        return number if text.lower().lstrip("+-") not in ("inf", "infinity", "nan") else math.nan
    return math.nan


class _HeadRecorder:
    """Passes reads through, keeping the first HEAD_LIMIT bytes: the file's `info` and
    `detection_categories` come before `images` (server_orchestration.aggregate_results), and an
    empty `images` list is told from a file without one."""

    def __init__(self, stream: ByteStream):
        self._stream = stream
        self.head = bytearray()
        self.complete = True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if len(self.head) < HEAD_LIMIT:
            self.head += data[: HEAD_LIMIT - len(self.head)]
        if data and len(self.head) >= HEAD_LIMIT:
            self.complete = False
        return data

    def top_level(self) -> tuple[dict[str, Any], bool]:
        """(the file's `info` and `detection_categories` when they are in the head, whether it
        starts an `images` list)."""
        found: dict[str, Any] = {}
        has_images = False
        head = bytes(self.head)
        try:
            for prefix, event, _ in ijson.parse(head):
                if prefix == "images" and event == "start_array":
                    has_images = True
                    break
        except ijson.common.JSONError:
            pass  # the head ends mid-file (or is not JSON): what was found before that counts
        for key in ("info", "detection_categories"):
            try:
                for value in ijson.items(head, key):
                    found[key] = value
                    break
            except ijson.common.JSONError:
                pass
        return found, has_images


def read_detections(stream: ByteStream) -> Detections:
    """The detections file in one pass. NotADetectionsFile when it is not one."""
    head = _HeadRecorder(stream)
    keys = array("q")
    confs = array("d")
    failures = array("h")
    per_category: list[array] = []
    column: dict[str, int] = {}
    reasons: dict[str, int] = {}
    unusable = 0
    # The loop runs once an image (millions): its lookups are bound once, and an image without
    # detections (about half of a camera trap's) takes the short way.
    add_key, add_failure, add_conf, nan = keys.append, failures.append, confs.append, math.nan
    try:
        for image in ijson.items(head, "images.item", use_float=True, buf_size=READ_SIZE):
            if type(image) is not dict:
                unusable += 1
                continue
            file, meta = image.get("file"), image.get("meta")
            if type(file) is not str or type(meta) is not str:
                unusable += 1
                continue
            add_key(hash((file, meta)))
            failure = image.get("failure", _ABSENT)
            add_failure(0 if failure is _ABSENT else _reason_index(failure, reasons))
            conf = image.get("max_detection_conf", _ABSENT)
            add_conf(conf if type(conf) is float else nan if conf is _ABSENT else _js_number(conf))
            detections = image.get("detections")
            if not detections or type(detections) is not list:
                for values in per_category:
                    values.append(0.0)
                continue
            best = [0.0] * len(per_category)
            for detection in detections:
                if type(detection) is not dict:
                    continue
                category, score = detection.get("category"), detection.get("conf")
                if type(score) is not float and (type(score) is not int):
                    continue
                if score != score:
                    continue
                index = column.get(category) if type(category) is str else None
                if index is None:
                    if type(category) is not str or len(column) >= MAX_CATEGORIES:
                        continue
                    index = column[category] = len(column)
                    per_category.append(array("f", bytes(4 * (len(keys) - 1))))
                    best.append(0.0)
                if score > best[index]:
                    best[index] = float(score)
            for values, value in zip(per_category, best):
                values.append(value)
    except ijson.common.JSONError as exc:
        raise NotADetectionsFile(f"the detections file is not valid JSON ({exc})") from None
    top, has_images = head.top_level()
    if not keys and not unusable and not (head.complete and has_images):
        raise NotADetectionsFile("the detections file has no images list")
    categories = _categories(top.get("detection_categories"), column)
    # One more entry at the end of every per-entry array: where a manifest row has no entry.
    count = len(keys)
    confs.append(math.nan)
    failures.append(0)
    columns: list[np.ndarray] = []
    for category_id, _ in categories:
        if category_id in column:
            values = per_category[column[category_id]]
            values.append(0.0)
            columns.append(np.frombuffer(values, dtype=np.float32))  # a view: no copy
        else:
            columns.append(np.zeros(count + 1, dtype=np.float32))
    key_array = np.frombuffer(keys, dtype=np.int64)
    order = np.argsort(key_array, kind="stable")
    sorted_keys = key_array[order]
    del key_array, keys  # the unsorted keys are not needed any more
    info = top.get("info")
    detector = info.get("detector") if isinstance(info, dict) else None
    return Detections(
        keys=sorted_keys,
        order=order,
        conf=np.frombuffer(confs, dtype=np.float64),
        best=columns,
        failure=np.frombuffer(failures, dtype=np.int16),
        reasons=sorted(reasons, key=reasons.__getitem__),
        categories=categories,
        model=detector[:80] if isinstance(detector, str) else None,
        unusable=unusable,
    )


def _reason_index(value: Any, reasons: dict[str, int]) -> int:
    text = value[:MAX_REASON_LENGTH] if isinstance(value, str) and value.strip() else "Failure"
    index = reasons.get(text)
    if index is None:
        if len(reasons) >= MAX_REASONS - 1:
            text = OTHER_FAILURE
            index = reasons.get(text)
        if index is None:
            index = reasons[text] = len(reasons) + 1
    return index


def _categories(declared: Any, seen: dict[str, int]) -> list[tuple[str, str]]:
    """The CSV's category columns: the file's detection_categories in id order (names made safe
    for a column name); without them, the category ids seen."""
    pairs: dict[str, str] = {}
    if isinstance(declared, dict):
        for category_id, name in declared.items():
            if isinstance(category_id, str) and len(pairs) < MAX_CATEGORIES:
                label = _CATEGORY_NAME.sub("_", name if isinstance(name, str) else "")[:40].strip("_")
                pairs[category_id] = label or f"category_{_CATEGORY_NAME.sub('_', category_id)[:20]}"
    if not pairs:
        pairs = {c: f"category_{_CATEGORY_NAME.sub('_', c)[:20]}" for c in seen}
    return sorted(
        pairs.items(),
        key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit() else 0, item[0]),
    )


@dataclasses.dataclass
class _Subject:
    """One subject's frames so far (a subject's rows may straddle two batches)."""

    subject_id: str
    sent: int = 0
    scored: int = 0
    failed: int = 0
    missing: int = 0
    likely_empty: int = 0  # scored frames that are likely empty
    conf: float = math.nan  # best max_detection_conf of its scored frames (NaN: none readable)
    best: list[float] = dataclasses.field(default_factory=list)  # per category, over scored frames
    # (NaN in `best`: no scored frame, printed empty; 0 when scored frames have no such detection)

    def add(self, other: _Subject) -> None:
        self.sent += other.sent
        self.scored += other.scored
        self.failed += other.failed
        self.missing += other.missing
        self.likely_empty += other.likely_empty
        self.conf = float(np.fmax(self.conf, other.conf))
        self.best = np.fmax(self.best, other.best).tolist() if self.best else []

    @property
    def all_likely_empty(self) -> bool:
        return self.scored == self.sent and self.likely_empty == self.sent


@dataclasses.dataclass
class Accounting:
    """What one pass found: the summary's counts, and the re-run's size."""

    images_sent: int = 0
    images_scored: int = 0
    images_failed: int = 0
    images_missing: int = 0
    images_likely_empty: int = 0
    subjects_sent: int = 0
    subjects_all_likely_empty: int = 0
    subjects_incomplete: int = 0
    rerun_subjects: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    images_unknown: int = 0

    @property
    def rerun_images(self) -> int:
        return self.images_failed + self.images_missing


class _Writers:
    """The CSV (one row per subject) and the re-run rows, handed to their writers in pieces."""

    def __init__(self, csv_out: Write | None, rerun_out: Write | None, categories: list[tuple[str, str]]):
        self.csv_out, self.rerun_out = csv_out, rerun_out
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._rerun_started = False
        self._no_confidence = "," * len(categories)  # max_detection_conf and one a category, empty
        self._row_format = "%s,%d,%d,%d,%d,%s,%s\n"
        if csv_out is not None:
            self._csv.writerow(
                [
                    "subject_id",
                    "frames_sent",
                    "frames_scored",
                    "frames_failed",
                    "frames_missing",
                    "max_detection_conf",
                    *(f"max_conf_{name}" for _, name in categories),
                    "all_frames_likely_empty",
                ]
            )

    def subjects(self, subjects: list[_Subject]) -> None:
        if self.csv_out is None:
            return
        lines = []
        for s in subjects:
            confs = _confidences(s.conf, s.best) if s.scored else self._no_confidence
            subject_id = s.subject_id if s.subject_id.isdigit() else _quoted(s.subject_id)
            likely = "true" if s.all_likely_empty else "false"
            lines.append(f"{subject_id},{s.sent},{s.scored},{s.failed},{s.missing},{confs},{likely}\n")
        self._text.write("".join(lines))

    def rows(
        self,
        ids: list[str],
        sent: list[int],
        scored: list[int],
        failed: list[int],
        missing: list[int],
        conf: list[float],
        best: list[list[float]],
        empty: list[bool],
    ) -> None:
        """Many subjects' rows at once (the common path: one format string, no objects)."""
        if self.csv_out is None:
            return
        row = self._row_format
        blank = self._no_confidence
        self._text.write(
            "".join(
                row
                % (
                    i if i.isdigit() else _quoted(i),
                    n,
                    s_,
                    f,
                    m,
                    _confidences(c, b) if s_ else blank,
                    "true" if e else "false",
                )
                for i, n, s_, f, m, c, b, e in zip(ids, sent, scored, failed, missing, conf, best, empty)
            )
        )

    def rerun_rows(self, rows: list[tuple[str, str]]) -> None:
        if self.rerun_out is None or not rows:
            return
        # json.dumps([[url, meta], ...]): the same bytes as the manifest's own rows.
        text = ", ".join(f"[{_json_string(url)}, {_json_string(meta)}]" for url, meta in rows)
        self.rerun_out(((", " if self._rerun_started else "[") + text).encode("ascii"))
        self._rerun_started = True

    def flush(self) -> None:
        if self.csv_out is not None and self._text.tell():
            self.csv_out(self._text.getvalue().encode("utf-8"))
            self._text.seek(0)
            self._text.truncate()

    def finish(self) -> None:
        self.flush()
        if self.rerun_out is not None and self._rerun_started:
            self.rerun_out(b"]")


def _quoted(text: str) -> str:
    """A CSV field as the csv module quotes one (a subject id that is not all digits)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


# Cells already printed: confidences come with a few decimals, so a few thousand distinct ones
# cover a file of millions (printing each anew was the CSV's largest cost).
_CONF_CELLS: dict[float, str] = {}
_BEST_CELLS: dict[float, str] = {}


def _confidences(conf: float, best: list[float]) -> str:
    """A subject's max_detection_conf and per-category maxima, comma-separated. The per-category
    ones are kept as float32 (a confidence needs no more) and printed to 6 decimals."""
    if len(_CONF_CELLS) + len(_BEST_CELLS) > 100_000:
        _CONF_CELLS.clear()
        _BEST_CELLS.clear()
    text = _CONF_CELLS.get(conf)
    if text is None:
        text = _CONF_CELLS[conf] = _cell(conf)
    out = [text]
    for value in best:
        text = _BEST_CELLS.get(value)
        if text is None:
            text = _BEST_CELLS[value] = _cell(round(value, 6))
        out.append(text)
    return ",".join(out)


def _cell(value: float) -> str:
    if value != value:  # NaN: the Subject Assistant could not read a confidence
        return ""
    return repr(float(value)) if value != int(value) else str(int(value))


class _Pass:
    """The manifest pass: rows are matched a batch at a time with numpy, then summed per subject
    (a subject's rows are consecutive in the manifest)."""

    def __init__(self, detections: Detections, threshold: float, writers: _Writers):
        self.detections, self.writers = detections, writers
        self.result = Accounting()
        percent = round((1 - threshold) * 100, 9)  # the Subject Assistant's whole-percent threshold
        with np.errstate(invalid="ignore"):
            self.likely_empty = (1 - detections.conf) * 100 >= percent  # NaN: False, as in JavaScript
        self.matched = np.zeros(detections.entries + 1, dtype=np.int32)  # difference array over keys
        self.failures = np.zeros(len(detections.reasons) + 1, dtype=np.int64)
        self.open: _Subject | None = None  # the last subject of the previous batch

    def batch(self, rows: list[tuple[str, str]]) -> None:
        d, count = self.detections, len(rows)
        hashes = np.fromiter((hash(row) for row in rows), dtype=np.int64, count=count)
        left = np.searchsorted(d.keys, hashes, "left")
        right = np.searchsorted(d.keys, hashes, "right")
        found = left < right
        np.add.at(self.matched, left[found], 1)
        np.add.at(self.matched, right[found], -1)
        nowhere = d.entries  # the extra entry: NaN, unfailed
        entry = np.where(found, d.order[np.minimum(left, nowhere - 1)], nowhere) if nowhere else left
        failure = np.where(found, d.failure[entry], 0)
        failed = found & (failure > 0)
        scored = found & ~failed
        likely = scored & self.likely_empty[entry]
        self.failures += np.bincount(failure[failed], minlength=len(self.failures))
        self.writers.rerun_rows([rows[i] for i in np.flatnonzero(~scored).tolist()])
        # Per subject: runs of equal subject ids, summed with reduceat.
        subject_ids = [subject_of(meta) for _, meta in rows]
        starts = [0] + [i for i in range(1, count) if subject_ids[i] != subject_ids[i - 1]]
        at = np.asarray(starts)
        sums = [
            np.add.reduceat(column.astype(np.int64), at).tolist()
            for column in (scored, failed, ~found, likely)
        ]
        lengths = np.diff(np.append(at, count)).tolist()
        with np.errstate(invalid="ignore"):
            conf = np.fmax.reduceat(np.where(scored, d.conf[entry], np.nan), at).tolist()
            best = (
                np.fmax.reduceat(
                    np.where(scored[:, None], np.column_stack([column[entry] for column in d.best]), np.nan),
                    at,
                    axis=0,
                ).tolist()
                if d.categories
                else [[] for _ in starts]
            )
        ids = [subject_ids[start] for start in starts]
        # The first run may go on the subject the previous batch ended with, and the last may go
        # on in the next batch: those two are kept as _Subject; the runs between are written whole.
        first = 0
        if self.open is not None and self.open.subject_id == ids[0]:
            self.open.add(self._subject(0, ids, lengths, sums, conf, best))
            first = 1
        if first < len(starts):
            self._close()
            last = len(starts) - 1
            self._runs(slice(first, last), ids, lengths, sums, conf, best)
            self.open = self._subject(last, ids, lengths, sums, conf, best)
        r = self.result
        r.images_sent += count
        r.images_scored += int(scored.sum())
        r.images_failed += int(failed.sum())
        r.images_missing += int(count - found.sum())
        r.images_likely_empty += int(likely.sum())
        self.writers.flush()

    @staticmethod
    def _subject(
        k: int,
        ids: list[str],
        lengths: list[int],
        sums: list[list[int]],
        conf: list[float],
        best: list[list[float]],
    ) -> _Subject:
        return _Subject(ids[k], lengths[k], sums[0][k], sums[1][k], sums[2][k], sums[3][k], conf[k], best[k])

    def _runs(
        self,
        part: slice,
        ids: list[str],
        lengths: list[int],
        sums: list[list[int]],
        conf: list[float],
        best: list[list[float]],
    ) -> None:
        """Subjects wholly inside this batch: counted and written as columns."""
        sent, scored, failed, missing, likely = (
            lengths[part],
            sums[0][part],
            sums[1][part],
            sums[2][part],
            sums[3][part],
        )
        r = self.result
        r.subjects_sent += len(sent)
        empty = [n == s_ == e for n, s_, e in zip(sent, scored, likely)]
        incomplete = sum(1 for f, m in zip(failed, missing) if f or m)
        r.subjects_all_likely_empty += sum(empty)
        r.subjects_incomplete += incomplete
        r.rerun_subjects += incomplete
        self.writers.rows(ids[part], sent, scored, failed, missing, conf[part], best[part], empty)

    def _close(self) -> None:
        subject, self.open = self.open, None
        if subject is not None:
            self._count(subject)
            self.writers.subjects([subject])

    def _count(self, subject: _Subject) -> None:
        r = self.result
        r.subjects_sent += 1
        r.subjects_all_likely_empty += subject.all_likely_empty
        if subject.failed or subject.missing:
            r.subjects_incomplete += 1
            r.rerun_subjects += 1

    def finish(self) -> Accounting:
        self._close()
        self.writers.finish()
        d, r = self.detections, self.result
        r.images_unknown = int(np.count_nonzero(np.cumsum(self.matched)[:-1] == 0)) + d.unusable
        r.failures = {
            reason: int(self.failures[k + 1]) for k, reason in enumerate(d.reasons) if self.failures[k + 1]
        }
        return r


def account(
    manifest: ByteStream,
    detections: Detections,
    threshold: float,
    csv_out: Write | None = None,
    rerun_out: Write | None = None,
) -> Accounting:
    """Give every manifest row its outcome, in one pass over the manifest (module doc)."""
    run = _Pass(detections, threshold, _Writers(csv_out, rerun_out, detections.categories))
    batch: list[tuple[str, str]] = []
    try:
        for row in ijson.items(manifest, "item", buf_size=READ_SIZE):
            if type(row) is not list or len(row) != 2 or type(row[0]) is not str or type(row[1]) is not str:
                raise NotAManifest("a manifest row is not a [url, meta] pair of strings")
            batch.append((row[0], row[1]))
            if len(batch) >= BATCH:
                run.batch(batch)
                batch = []
    except ijson.common.JSONError as exc:
        raise NotAManifest(f"the manifest is not valid JSON ({exc})") from None
    if batch:
        run.batch(batch)
    return run.finish()


def summary(
    result: Accounting, detections: Detections, threshold: float, failed_shards: Any
) -> dict[str, Any]:
    """The Export's results_summary (CONTRACT.md "Results people can act on")."""
    return {
        "available": True,
        "reason": None,
        "model": detections.model,
        "images_sent": result.images_sent,
        "images_scored": result.images_scored,
        "images_failed": result.images_failed,
        "images_missing": result.images_missing,
        "images_unknown": result.images_unknown,
        "failures": result.failures,
        "likely_empty_threshold": threshold,
        "images_likely_empty": result.images_likely_empty,
        "subjects_sent": result.subjects_sent,
        "subjects_all_likely_empty": result.subjects_all_likely_empty,
        "subjects_incomplete": result.subjects_incomplete,
        "failed_shards": failed_shards
        if isinstance(failed_shards, int) and not isinstance(failed_shards, bool)
        else None,
    }
