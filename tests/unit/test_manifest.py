"""Manifest bytes must equal Hamlet's `json.dumps(rows)` exactly: the Subject Assistant parses
each row's meta string to find the subject."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.manifest import ManifestEncoder, build_manifest, is_image_url


def hamlet_bytes(subjects, project_id, subject_set_id):
    """The reference: what Hamlet wrote (but with its missing image filter applied)."""
    rows = []
    for subject in subjects:
        for index, location in enumerate(subject["locations"]):
            url = list(location.values())[0]
            if is_image_url(url):
                meta = json.dumps(
                    {
                        "project_id": project_id,
                        "subject_set_id": subject_set_id,
                        "subject_id": subject["id"],
                        "frame_id": str(index),
                    }
                )
                rows.append([url, meta])
    return json.dumps(rows).encode()


def subject(sid, *urls):
    return {"id": sid, "locations": [{"image/jpeg": u} for u in urls]}


def test_exact_bytes_of_the_contract_example():
    url = "https://panoptes-uploads.zooniverse.org/production/subject_location/abc.jpeg"
    data, counts = build_manifest([[subject("91011", url)]], "1234", "5678")
    assert data == (
        b'[["https://panoptes-uploads.zooniverse.org/production/subject_location/abc.jpeg", '
        b'"{\\"project_id\\": \\"1234\\", \\"subject_set_id\\": \\"5678\\", '
        b'\\"subject_id\\": \\"91011\\", \\"frame_id\\": \\"0\\"}"]]'
    )
    assert (counts.subjects, counts.images, counts.skipped_frames) == (1, 1, 0)
    meta = json.loads(json.loads(data)[0][1])
    assert meta["subject_id"] == "91011" and list(meta) == [
        "project_id",
        "subject_set_id",
        "subject_id",
        "frame_id",
    ]


def test_multi_frame_subjects_keep_frame_index_and_order_across_pages():
    pages = [
        [subject("1", "https://x/a.jpg", "https://x/b.JPG"), subject("2", "https://x/c.png")],
        [subject("3", "https://x/d.jpeg", "https://x/e.jpeg", "https://x/f.jpeg")],
    ]
    data, counts = build_manifest(pages, "7", "8")
    assert data == hamlet_bytes(pages[0] + pages[1], "7", "8")
    rows = json.loads(data)
    assert [json.loads(m)["frame_id"] for _, m in rows] == ["0", "1", "0", "0", "1", "2"]
    assert counts.images == 6


def test_non_image_frames_are_skipped_but_keep_their_index():
    s = {
        "id": "5",
        "locations": [
            {"video/mp4": "https://x/v.mp4"},
            {"image/jpeg": "https://x/a.jpg"},
            {"text/plain": "https://x/a.txt"},
            {"image/png": "https://x/p.PNG?sig=1"},
        ],
    }
    data, counts = build_manifest([[s]], "1", "2")
    rows = json.loads(data)
    assert [r[0] for r in rows] == ["https://x/a.jpg", "https://x/p.PNG?sig=1"]
    assert [json.loads(r[1])["frame_id"] for r in rows] == ["1", "3"]
    assert counts.skipped_frames == 2


def test_unicode_urls_are_escaped_like_json_dumps():
    pages = [[subject("1", "https://x/caméra/ñ.jpg")]]
    data, _ = build_manifest(pages, "1", "2")
    assert data == hamlet_bytes(pages[0], "1", "2")
    assert b"\\u00e9" in data and data.isascii()


def test_duplicate_subjects_across_pages_appear_once():
    pages = [
        [subject("1", "https://x/a.jpg")],
        [subject("1", "https://x/a.jpg"), subject("2", "https://x/b.jpg")],
    ]
    data, counts = build_manifest(pages, "1", "2")
    assert data == hamlet_bytes([pages[0][0], pages[1][1]], "1", "2")
    assert counts.duplicates == 1 and counts.subjects == 2


def test_malformed_subjects_do_not_crash():
    pages = [
        [
            {"id": "1", "locations": None},
            {"id": "2"},
            {"locations": [{"image/jpeg": "https://x/a.jpg"}]},
            "not a subject",
            {"id": "3", "locations": [{}, {"image/jpeg": 5}, "x", {"image/jpeg": "https://x/ok.jpg"}]},
            {"id": 4, "locations": [{"image/jpeg": "https://x/int-id.jpg"}]},
        ]
    ]
    data, counts = build_manifest(pages, "1", "2")
    rows = json.loads(data)
    assert [r[0] for r in rows] == ["https://x/ok.jpg", "https://x/int-id.jpg"]
    assert json.loads(rows[1][1])["subject_id"] == "4"
    assert counts.skipped_frames == 3


def test_empty_set_is_an_empty_array():
    data, counts = build_manifest([[]], "1", "2")
    assert data == b"[]" and counts.images == 0


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://x/a.jpg", True),
        ("https://x/a.JPEG", True),
        ("https://x/a.png?x=.mp4", True),
        ("https://x/a.mp4?name=a.jpg", False),
        ("https://x/a.jpg/", False),
        ("https://x/jpg", False),
        ("https://x/a.gif", False),
        (None, False),
        (12, False),
    ],
)
def test_image_filter_looks_at_the_path(url, expected):
    assert is_image_url(url) is expected


urls = st.builds(
    lambda name, ext: f"https://x/{name}.{ext}",
    st.text(min_size=1, max_size=12),
    st.sampled_from(["jpg", "jpeg", "png", "PNG", "mp4", "txt"]),
)


@given(st.lists(st.lists(st.lists(urls, max_size=4), max_size=6), max_size=5))
def test_streamed_pages_equal_json_dumps_of_all_rows(pages_of_frames):
    next_id = iter(range(1, 10**6))
    pages = [[subject(str(next(next_id)), *frames) for frames in page] for page in pages_of_frames]
    encoder = ManifestEncoder("11", "22")
    streamed = b"".join(encoder.encode_page(p) for p in pages) + encoder.finish()
    assert streamed == hamlet_bytes([s for p in pages for s in p], "11", "22")


def _slow_is_image(url):
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).path.lower().endswith((".jpg", ".jpeg", ".png"))
    except ValueError:
        return False


@settings(max_examples=400)
@given(
    st.text(max_size=40).map(lambda t: "https://h" + t)
    | st.text(max_size=40)
    | st.builds(lambda a, b: f"{a}://{b}.JPG", st.text(max_size=8), st.text(max_size=12))
)
def test_fast_url_check_agrees_with_urlsplit(url):
    assert is_image_url(url) == _slow_is_image(url)


def test_non_ascii_digit_ids_are_not_subjects():
    data, counts = build_manifest(
        [
            [
                subject("²", "https://x/a.jpg"),
                subject("١٢", "https://x/b.jpg"),
                subject("7", "https://x/c.jpg"),
            ]
        ],
        "1",
        "2",
    )
    assert [r[0] for r in json.loads(data)] == ["https://x/c.jpg"] and counts.subjects == 1


def test_meta_matches_frame_meta():
    from exports.manifest import frame_meta

    data, _ = build_manifest([[subject("91011", "https://x/a.jpg", "https://x/b.jpg")]], "1234", "5678")
    assert [m for _, m in json.loads(data)] == [
        frame_meta("1234", "5678", "91011", 0),
        frame_meta("1234", "5678", "91011", 1),
    ]
