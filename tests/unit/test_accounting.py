"""The accounting of every image (exports/accounting.py) against a plain reference written the
obvious way (json.load, dicts), over generated manifests and detections files."""

from __future__ import annotations

import csv
import io
import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports import accounting
from exports.manifest import frame_meta

CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}


def detections_file(images, categories=CATEGORIES, model="megadetector_v5a", indent=1) -> bytes:
    body = {"info": {"detector": model, "format_version": "1.1"}, "detection_categories": categories}
    body["images"] = images
    return json.dumps(body, indent=indent, ensure_ascii=False).encode()


def run(manifest_rows, images, threshold=0.5, categories=CATEGORIES):
    detections = accounting.read_detections(io.BytesIO(detections_file(images, categories)))
    csv_out, rerun_out = io.BytesIO(), io.BytesIO()
    result = accounting.account(
        io.BytesIO(json.dumps(manifest_rows).encode()), detections, threshold, csv_out.write, rerun_out.write
    )
    return result, detections, csv_out.getvalue().decode(), rerun_out.getvalue()


def reference(manifest_rows, images, threshold=0.5, categories=CATEGORIES):
    """The same outcomes, the obvious way."""
    by_pair = {}
    for image in images:
        by_pair.setdefault((image["file"], image["meta"]), image)
    percent = round((1 - threshold) * 100, 9)
    outcome = {"scored": 0, "failed": 0, "missing": 0, "likely_empty": 0}
    failures, rerun, subjects = {}, [], {}
    for url, meta in manifest_rows:
        sid = json.loads(meta)["subject_id"]
        s = subjects.setdefault(
            sid, {"sent": 0, "scored": 0, "failed": 0, "missing": 0, "empty": True, "conf": None, "best": {}}
        )
        s["sent"] += 1
        image = by_pair.get((url, meta))
        if image is None:
            outcome["missing"] += 1
            s["missing"] += 1
            s["empty"] = False
            rerun.append([url, meta])
        elif "failure" in image:
            outcome["failed"] += 1
            s["failed"] += 1
            s["empty"] = False
            failures[image["failure"]] = failures.get(image["failure"], 0) + 1
            rerun.append([url, meta])
        else:
            outcome["scored"] += 1
            s["scored"] += 1
            conf = image["max_detection_conf"]
            if (1 - conf) * 100 >= percent:
                outcome["likely_empty"] += 1
            else:
                s["empty"] = False
            s["conf"] = conf if s["conf"] is None else max(s["conf"], conf)
            for cid in categories:
                best = max([d["conf"] for d in image["detections"] if d["category"] == cid], default=0.0)
                s["best"][cid] = max(s["best"].get(cid, 0.0), best)
    return outcome, failures, rerun, subjects


def scored(url, meta, conf, detections=()):
    return {"file": url, "meta": meta, "max_detection_conf": conf, "detections": list(detections)}


def failed(url, meta, reason="Failure inference"):
    return {"file": url, "meta": meta, "failure": reason, "max_detection_conf": 0.0, "detections": []}


@st.composite
def jobs(draw):
    urls = [f"https://panoptes-uploads.zooniverse.org/p/{n}.jpeg" for n in range(6)]
    rows, images = [], []
    for subject in range(draw(st.integers(0, 12))):
        for frame in range(draw(st.integers(1, 3))):
            url = draw(st.sampled_from(urls))  # one URL may appear in several subjects
            meta = frame_meta("1234", "5678", str(9000 + subject), frame)
            rows.append([url, meta])
            kind = draw(st.sampled_from(["scored", "scored", "failed", "missing"]))
            if kind == "scored":
                conf = draw(st.sampled_from([0.0, 0.2, 0.49, 0.5, 0.51, 0.93, 1.0]))
                dets = [
                    {"category": draw(st.sampled_from(["1", "2", "3"])), "conf": conf, "bbox": [0, 0, 1, 1]}
                    for _ in range(draw(st.integers(0, 2)))
                ]
                images.append(scored(url, meta, conf, dets))
            elif kind == "failed":
                images.append(
                    failed(url, meta, draw(st.sampled_from(["Failure inference", "Failure image access"])))
                )
    for n in range(draw(st.integers(0, 3))):  # rows the manifest never held
        images.append(scored(f"https://elsewhere.example/{n}.jpg", frame_meta("1", "2", "3", n), 0.1))
    random.Random(draw(st.integers(0, 1000))).shuffle(images)  # shards in any order
    return rows, images


@settings(max_examples=200, deadline=None)
@given(jobs())
def test_every_row_gets_the_outcome_the_reference_gives(job):
    rows, images = job
    result, _, csv_text, rerun = run(rows, images)
    outcome, failures, rerun_rows, subjects = reference(rows, images)
    assert (result.images_scored, result.images_failed, result.images_missing) == (
        outcome["scored"],
        outcome["failed"],
        outcome["missing"],
    )
    assert (
        result.images_sent == len(rows) == result.images_scored + result.images_failed + result.images_missing
    )
    assert result.images_likely_empty == outcome["likely_empty"]
    assert result.failures == failures
    known = {(r[0], r[1]) for r in rows}
    assert result.images_unknown == sum(1 for i in images if (i["file"], i["meta"]) not in known)
    # the re-run rows: exactly the failed and missing ones, byte for byte, in the manifest's order
    assert rerun == (json.dumps(rerun_rows).encode() if rerun_rows else b"")
    assert result.rerun_images == len(rerun_rows)
    # per subject, in manifest order
    table = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["subject_id"] for r in table] == list(subjects)
    assert result.subjects_sent == len(subjects)
    for line in table:
        s = subjects[line["subject_id"]]
        assert (int(line["frames_sent"]), int(line["frames_scored"])) == (s["sent"], s["scored"])
        assert (int(line["frames_failed"]), int(line["frames_missing"])) == (s["failed"], s["missing"])
        if s["scored"]:
            assert float(line["max_detection_conf"]) == s["conf"]
            for cid, name in CATEGORIES.items():
                assert float(line[f"max_conf_{name}"]) == s["best"][cid]
        else:
            assert line["max_detection_conf"] == "" and line["max_conf_animal"] == ""
        all_empty = s["empty"] and s["scored"] == s["sent"]
        assert line["all_frames_likely_empty"] == ("true" if all_empty else "false")
    assert result.subjects_all_likely_empty == sum(
        1 for s in subjects.values() if s["empty"] and s["scored"] == s["sent"]
    )
    assert result.subjects_incomplete == sum(1 for s in subjects.values() if s["failed"] or s["missing"])


def test_the_csv_header_follows_the_files_categories_in_id_order():
    rows = [["https://x/a.jpg", frame_meta("1", "2", "3", 0)]]
    categories = {"10": "bird", "2": "person", "1": "animal"}
    _, _, text, _ = run(
        rows, [scored(*rows[0], 0.7, [{"category": "10", "conf": 0.7}])], categories=categories
    )
    header, line = text.splitlines()
    assert header == (
        "subject_id,frames_sent,frames_scored,frames_failed,frames_missing,max_detection_conf,"
        "max_conf_animal,max_conf_person,max_conf_bird,all_frames_likely_empty"
    )
    assert line == "3,1,1,0,0,0.7,0,0,0.7,false"


def test_likely_empty_is_the_subject_assistants_comparison_and_never_a_failed_image():
    rows = [[f"https://x/{n}.jpg", frame_meta("1", "2", str(n), 0)] for n in range(5)]
    images = [
        scored(*rows[0], 0.5),  # (1 - 0.5) * 100 = 50 >= 50: likely empty
        scored(*rows[1], 0.51),  # 49.000000000000004: not
        scored(*rows[2], 0.0),
        failed(*rows[3]),  # max_detection_conf 0.0, shown as 100% empty by the Subject Assistant
    ]
    result, *_ = run(rows, images)
    assert result.images_likely_empty == 2 and result.images_failed == 1 and result.images_missing == 1
    assert result.subjects_all_likely_empty == 2 and result.subjects_incomplete == 2


def test_an_image_without_max_detection_conf_is_never_likely_empty():
    rows = [["https://x/a.jpg", frame_meta("1", "2", "3", 0)]]
    result, _, text, _ = run(rows, [{"file": rows[0][0], "meta": rows[0][1], "detections": []}])
    assert result.images_scored == 1 and result.images_likely_empty == 0
    assert text.splitlines()[1].split(",")[5] == ""  # no confidence to show


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"<Error/>",
        b'{"images": 5}',
        b'{"images": {"a": 1}}',
        b'{"info": {}}',
        b"[1, 2]",
        b'{"images": [1, 2',
        b'{"images": [{"file": "a"}, ',
        b'{"nested": {"images": [{"file": "a"}]}}',
        b"{" + b" " * (2 << 20) + b"}",  # over the head it keeps: not a detections file either
    ],
)
def test_a_file_that_is_not_a_detections_file_is_refused(body):
    with pytest.raises(accounting.NotADetectionsFile):
        accounting.read_detections(io.BytesIO(body))


def test_hostile_rows_are_counted_never_crash():
    rows = [["https://x/a.jpg", frame_meta("1", "2", "3", 0)]]
    images = [
        1,
        "x",
        None,
        {"file": 5, "meta": rows[0][1]},
        {
            "file": rows[0][0],
            "meta": rows[0][1],
            "max_detection_conf": "0.3",
            "detections": [1, {"category": 7}],
        },
        {"file": "y", "meta": "z", "failure": {"nested": True}},
    ]
    result, *_ = run(rows, images)
    assert result.images_scored == 1 and result.images_likely_empty == 1  # "0.3" as JavaScript reads it
    assert result.images_unknown == 5


def test_many_failure_texts_are_bounded():
    rows = [[f"https://x/{n}.jpg", frame_meta("1", "2", str(n), 0)] for n in range(60)]
    images = [failed(*row, reason=f"reason {n} " + "x" * 500) for n, row in enumerate(rows)]
    result, *_ = run(rows, images)
    assert len(result.failures) <= accounting.MAX_REASONS
    assert sum(result.failures.values()) == 60
    assert all(len(reason) <= accounting.MAX_REASON_LENGTH for reason in result.failures)


def test_an_empty_images_list_leaves_every_row_missing():
    rows = [["https://x/a.jpg", frame_meta("1", "2", "3", 0)]]
    result, *_ = run(rows, [])
    assert result.images_missing == 1 and result.rerun_images == 1


def test_the_c_backend_is_in_use():
    assert accounting.ijson.backend == "yajl2_c"


def test_confidences_print_as_the_file_wrote_them():
    assert (
        accounting._cell(0.93) == "0.93" and accounting._cell(0.0) == "0" and accounting._cell(math.nan) == ""
    )
