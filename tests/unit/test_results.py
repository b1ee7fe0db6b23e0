"""The detections file's summary: one streaming pass, the same counts as reading it whole."""

import io
import json

import ijson
import pytest

from exports import results

IMAGES = [
    {"file": "a", "meta": "{}", "max_detection_conf": 0.9, "detections": [{"category": "1", "conf": 0.9}]},
    {"file": "b", "max_detection_conf": 0.05, "detections": []},
    {"file": "c", "failure": "Failure inference", "max_detection_conf": 0.0},  # failed, not empty
    {"file": "c", "detections": [{"conf": 0.1}, {"conf": 0.3}]},  # no max: taken from detections
    {"file": "d", "detections": [{"conf": True}]},  # not a number: no confidence
    "not an image",
]


def count(data: bytes, threshold=0.2):
    return results.count_images(io.BytesIO(data), threshold)


def test_counts_and_summary():
    data = json.dumps({"info": {}, "detection_categories": {}, "images": IMAGES}, indent=1).encode()
    counts = count(data)
    assert (counts.returned, counts.failed, counts.likely_empty) == (5, 1, 2)
    # The service's own count (num_images), not distinct URLs: a repeated URL is not "missing".
    assert results.summary(counts, 7, 0.2, 1) == {
        "available": True,
        "images_submitted": 7,
        "images_returned": 5,
        "images_failed": 1,
        "images_missing": 2,
        "images_likely_empty": 2,
        "likely_empty_threshold": 0.2,
        "failed_shards": 1,
    }
    assert results.summary(counts, None, 0.2, True)["images_submitted"] == 5
    assert results.summary(counts, None, 0.2, True)["failed_shards"] is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1, 2, 3]",
        b'{"info": {}}',
        b'{"images": {"a": 1}}',
        b'{"images": [',
        b'{"images": [{"file": "a"}, ',
        b'{"nested": {"images": [{"file": "a"}]}}',
        b"{" + b" " * (2 << 20) + b"}",
    ],
)
def test_anything_but_a_detections_file_is_refused(data):
    with pytest.raises(ValueError):
        count(data)


def test_an_empty_images_list_is_a_file_with_no_images():
    assert count(b'{"info": {"x": 1}, "images": []}').returned == 0


def test_the_c_backend_is_in_use():
    assert ijson.backend == "yajl2_c"


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("https://acct.blob.core.windows.net/c/detections.json?sig=x", True),
        ("https://ACCT.blob.core.windows.net/c/d.json", True),
        ("http://127.0.0.1:5050/results/x.json", True),  # the ML service's own origin
        ("https://127.0.0.1:5050/results/x.json", False),  # scheme is part of the origin
        ("http://127.0.0.1:5051/results/x.json", False),
        ("https://blob.core.windows.net/c/d.json", False),
        ("https://x.blob.core.windows.net.evil.example/d.json", False),
        ("ftp://acct.blob.core.windows.net/d.json", False),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("//acct.blob.core.windows.net/x", False),
        ("https://[::1]:99999/x", False),
        (None, False),
        (42, False),
    ],
)
def test_url_policy(url, allowed):
    policy = results.ResultsPolicy(("*.blob.core.windows.net",), ("http", "127.0.0.1", 5050))
    assert (results.url_problem(url, policy) is None) is allowed


def test_describe_never_shows_the_query_string():
    assert (
        results.describe("https://u:p@a.blob.core.windows.net/c/d.json?sig=SECRET")
        == "https://a.blob.core.windows.net/c/d.json"
    )
    assert results.describe("javascript:alert(document.cookie)") == "javascript: URL"
