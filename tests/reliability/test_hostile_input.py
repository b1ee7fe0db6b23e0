"""Hostile input: every route answers a 4xx JSON error (or 2xx when the request is valid),
never 5xx or HTML, and creates nothing; malformed Panoptes answers give a correct manifest or a
clear failure, never a crash loop into the poison queue.

Requests are sent with http.client so paths reach the host byte for byte (requests/urllib3
would normalise `..` and re-encode). One stack serves all examples of a test function.
"""

from __future__ import annotations

import http.client
import itertools
import json
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exports.manifest import build_manifest
from tests.harness import FIGURES, poison_messages

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"]

# Ids: valid-looking, boundary, negative, huge, non-ASCII, path tricks, encoded NUL and slashes.
SPECIAL_IDS = [
    "0",
    "-1",
    "00",
    "01234",
    "1e3",
    "1.0",
    "+1",
    " 1",
    "9223372036854775807",
    "9223372036854775808",
    "9" * 40,
    "١٢٣",
    "¹",
    "１２３４",
    "..",
    ".",
    "%2F",
    "%2e%2e",
    "%00",
    "1234%00",
    "1234%2F5678",
    "%C0%AE",
    "%",
    "%%",
    "%ZZ",
    "nonsense",
    "null",
    "undefined",
    "1234-5678-0000000000000deadbeef",
    "<script>",
    "' or 1=1 --",
    "RowKey ge 'a'",
    "active-1234-5678",
    "a" * 3000,
]
ids = st.one_of(
    st.sampled_from(SPECIAL_IDS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(min_size=0, max_size=40).map(lambda t: quote(t, safe="")),
    st.text(alphabet="0123456789-abcdef./%", max_size=60),
)
ROUTES = [
    "/api/projects/{a}/subject-sets/{b}/exports",
    "/api/projects/{a}/exports",
    "/api/exports/{a}",
    "/api/exports/{a}/cancel",
    "/api/health",
    "/api/{a}",
    "/api/projects/{a}",
    "/api/exports/{a}/{b}",
    "/{a}",
    "/api/projects/{a}/subject-sets/{b}",
    "/api/../api/exports/{a}",
    "/api//exports//{a}",
    "/API/Exports/{a}",
]


def _wire(path: str) -> str:
    """Percent-encode what cannot go on a request line (non-ASCII, spaces, controls) and
    nothing else, so `..`, `%2F` and `%00` arrive exactly as written."""
    return "".join(c if 0x21 <= ord(c) < 0x7F else quote(c, safe="") for c in path)


def send(stack, method, path, headers=None, body=None):
    path = _wire(path)
    target = urlsplit(stack.host.url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            try:  # the app may answer (and stop reading) before the body is sent: refused unread
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def assert_json_answer(method, status, headers, payload):
    """4xx JSON error in the contract's shape, or a 2xx JSON document; never 5xx, never HTML."""
    FIGURES["requests_hostile"] += 1
    if status >= 500:
        FIGURES["5xx_seen"] += 1
    assert status < 500, (status, payload[:500])
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert "html" not in content_type.lower() and b"<html" not in payload.lower()
    if method == "HEAD":
        return None
    assert content_type.startswith("application/json"), (status, content_type, payload[:200])
    body = json.loads(payload)
    if status >= 400:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
        assert body["error"]["code"].replace("_", "").isalpha() and body["error"]["message"]
    return body


def assert_nothing_created(stack):
    assert stack.table_rows() == []
    assert stack.queued_messages() == []


def may_create(method, route, a):
    """A POST that could legitimately create an export (the owner on project 1234)."""
    return method == "POST" and route.endswith("/subject-sets/{b}/exports") and unquote(a) == "1234"


@HYPOTHESIS
@given(
    route=st.sampled_from(ROUTES),
    a=ids,
    b=ids,
    method=st.sampled_from(METHODS),
    query=st.sampled_from(["", "?page=-1", "?project_id=9999", "?%00=%00", "?a=" + "x" * 2000]),
)
def test_hostile_paths_ids_and_methods(stack, route, a, b, method, query):
    """Breaks if an id/path/method combination reaches a 5xx (e.g. an id parsed without the
    64-bit bound, an unencoded NUL reaching Table Storage), an HTML page, or creates a row."""
    path = route.format(a=a, b=b) + query
    assume(not may_create(method, route, a))
    status, headers, payload = send(stack, method, path, {"Authorization": "Bearer demo-owner-token"})
    if (route == "/api/health" and method == "GET") or (
        method == "GET" and route == "/api/projects/{a}/exports" and a == "1234"
    ):
        assert status == 200
    elif not (method == "OPTIONS" and status == 204):
        assert 400 <= status < 500 or status == 200, (method, path, status)
    if outside_the_api(path):
        assert_site_answer(status, headers)
    else:
        assert_json_answer(method, status, headers, payload)
    assert_nothing_created(stack)


def outside_the_api(path: str) -> bool:
    """A path the site, not the API, answers (the `/{a}` route): shared/fallback.py gives it the
    small HTML 404 page, as the contract allows outside /api/."""
    first = unquote(path.split("?", 1)[0]).lstrip("/").split("/", 1)[0]
    return first.lower() != "api"


def assert_site_answer(status, headers):
    """Never 5xx; an HTML answer carries the site's security headers."""
    FIGURES["requests_hostile"] += 1
    assert status < 500, status
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered.get("x-content-type-options") == "nosniff"
    assert "frame-ancestors 'none'" in lowered.get("content-security-policy", "")


bodies = st.one_of(
    st.none(),
    st.just(b""),
    st.just(b"   "),
    st.binary(max_size=300),
    st.integers(1000, 60000).map(lambda n: b"[" * n),  # deep nesting, under the size cap
    st.integers(1000, 30000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from(
        [
            b"{not json",
            b"null",
            b"[]",
            b"123",
            b'"text"',
            b"true",
            b"\xff\xfe{}",
            b'{"a": NaN}',
            b"{}" * 2,
            b'{"project_id": "9999"}',
            b"\x00" * 100,
        ]
    ),
    st.just(b"x" * (64 * 1024 + 1)),
    st.just(b"{" + b" " * (2 * 1024 * 1024) + b"}"),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
    ]
)


@HYPOTHESIS
@given(
    body=bodies,
    content_type=content_types,
    target=st.sampled_from(
        [
            ("POST", "/api/projects/1234/subject-sets/5678/exports", "demo-outsider-token"),
            ("POST", "/api/projects/1234/subject-sets/5678/exports", "not-a-token"),
            ("POST", "/api/exports/1234-5678-0000000000000deadbeef/cancel", "demo-owner-token"),
            ("GET", "/api/exports/1234-5678-0000000000000deadbeef", "demo-owner-token"),
            ("GET", "/api/projects/1234/exports", "demo-outsider-token"),
            ("PUT", "/api/exports/x", "demo-owner-token"),
        ]
    ),
)
def test_hostile_bodies(stack, body, content_type, target):
    """Breaks if a body (deeply nested JSON, invalid UTF-8, 2 MB, wrong JSON type) makes a
    handler raise (5xx) instead of 400 invalid_body / 413 body_too_large / the route's 4xx."""
    method, path, token = target
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    status, response_headers, payload = send(stack, method, path, headers, body)
    error = assert_json_answer(method, status, response_headers, payload)
    assert 400 <= status < 500, (status, error)
    if method == "POST" and body is not None and len(body) > 64 * 1024:
        assert error["error"]["code"] == "body_too_large"
    assert_nothing_created(stack)


header_values = st.one_of(
    st.sampled_from(
        [
            "",
            "Bearer",
            "Bearer ",
            "Bearer\tdemo-owner-token",
            "bearer  demo-owner-token x",
            "Bearer demo-owner-token, Bearer demo-outsider-token",
            "Basic ZGVtbzpkZW1v",
            "Bearer " + "A" * 4097,
            "Bearer " + "A" * 60000,
            "Bearer dëmo-owner-token",
            "Bearer ÿÿÿÿ",
            "Bearer %00",
            "Digest x",
            "Bearer null",
        ]
    ),
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
        max_size=200,
    ),
)


@HYPOTHESIS
@given(
    authorization=header_values,
    extra=st.dictionaries(
        st.sampled_from(
            [
                "X-Forwarded-For",
                "Origin",
                "Cookie",
                "X-Ms-Client-Principal",
                "Accept",
                "Host",
                "Content-Type",
                "X-Functions-Key",
                "Referer",
            ]
        ),
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=100),
            st.integers(1000, 60000).map(lambda n: "v" * n),
        ),
        max_size=3,
    ),
    route=st.sampled_from(
        [
            ("POST", "/api/projects/1234/subject-sets/5678/exports"),
            ("GET", "/api/projects/1234/exports"),
            ("GET", "/api/exports/1234-5678-0000000000000deadbeef"),
            ("POST", "/api/exports/1234-5678-0000000000000deadbeef/cancel"),
            ("GET", "/api/health"),
        ]
    ),
)
def test_hostile_headers(stack, authorization, extra, route):
    """Malformed or enormous Authorization (and other) headers: 401 unauthenticated on the
    authenticated routes, 200 on health. Breaks if a malformed header is forwarded to Panoptes
    and its failure surfaces as 5xx, or if an X-Ms-Client-Principal/Cookie header grants access."""
    method, path = route
    headers = {**extra, "Authorization": authorization}
    status, response_headers, payload = send(stack, method, path, headers)
    assert_json_answer(method, status, response_headers, payload)
    if path == "/api/health":
        assert status == 200
    else:
        assert status == 401, (authorization[:80], status, payload[:200])
    assert_nothing_created(stack)


# -- malformed Panoptes answers ------------------------------------------------------------------
def reference_manifest(subjects, project_id, subject_set_id):
    """An independent model of the contract's manifest rules (not the production encoder)."""
    rows, seen = [], set()
    for subject in subjects:
        sid = str(subject.get("id", "")) if isinstance(subject, dict) else ""
        if not (sid.isascii() and sid.isdigit()) or int(sid) in seen:
            continue
        seen.add(int(sid))
        locations = subject.get("locations")
        for index, location in enumerate(locations if isinstance(locations, list) else []):
            url = next(iter(location.values()), None) if isinstance(location, dict) and location else None
            try:
                path = urlsplit(url).path if isinstance(url, str) else ""
            except ValueError:
                path = ""
            if path.lower().endswith((".jpg", ".jpeg", ".png")):
                meta = json.dumps(
                    {
                        "project_id": project_id,
                        "subject_set_id": subject_set_id,
                        "subject_id": sid,
                        "frame_id": str(index),
                    }
                )
                rows.append([url, meta])
    return json.dumps(rows).encode("ascii") if rows else None


IMG = "https://panoptes-uploads.zooniverse.org/production/subject_location/"
locations = st.one_of(
    st.builds(
        lambda n, ext: {"image/jpeg": f"{IMG}{n}.{ext}"},
        st.integers(0, 10**6),
        st.sampled_from(["jpg", "jpeg", "png", "JPG", "PnG", "mp4", "txt", "jpg.exe", "gif"]),
    ),
    st.sampled_from(
        [
            {},
            {"image/jpeg": None},
            {"image/jpeg": 12},
            {"image/jpeg": ["x.jpg"]},
            {"image/jpeg": "x.jpg"},
            {"image/jpeg": "http://[::1/a.jpg"},
            {"image/png": f"{IMG}a.png?x=.mp4"},
            {"video/mp4": f"{IMG}v.mp4?x=.jpg"},
            {"image/jpeg": "javascript:alert(1)//.jpg"},
            {"image/jpeg": f"{IMG}é.jpg"},
            "https://x/y.jpg",
            None,
            7,
            ["https://x/y.jpg"],
        ]
    ),
)
subject_ids = st.one_of(
    st.integers(1, 400).map(str), st.sampled_from(["abc", "-5", "1.5", "", "٣", "0x10", "  7"])
)
subjects_strategy = st.lists(
    st.fixed_dictionaries(
        {"id": subject_ids},
        optional={
            "locations": st.one_of(
                st.lists(locations, max_size=4),
                st.none(),
                st.just("https://x/y.jpg"),
                st.just({"a": "b.jpg"}),
            ),
            "metadata": st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
        },
    ),
    min_size=0,
    max_size=160,
)


SET_IDS = itertools.count(66000)


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(subjects=subjects_strategy)
def test_malformed_subjects_give_a_correct_manifest_or_a_clear_failure(stack, subjects):
    """Missing keys, wrong types, non-image frames, empty `locations`, duplicate subjects across
    pages (ids 1-400 repeat across 100-subject pages). Breaks if the manifest differs from the
    contract's rules, if a malformed subject crashes the worker (poison queue, host.errors), or
    if an imageless set is submitted instead of failing subject_set_empty."""
    set_id = str(next(SET_IDS))  # a fresh set each example: the last one may still be active
    stack.panoptes.add_subject_set(set_id, "1234", "Malformed", subjects)
    stack.ml.submissions.clear()
    stack.ml.accepted_count = 0
    response = stack.start_export(subject_set=set_id)
    assert response.status_code == 202, response.text
    export = wait_final_or_submitted(stack, response.json()["id"])
    expected = reference_manifest(subjects, "1234", set_id)
    if expected is None:
        assert (export.status, export.error_code) == ("failed", "subject_set_empty"), export
        assert stack.ml.accepted_count == 0
    else:
        assert export.status == "submitted", export
        assert stack.ml.wait_for_downloads(10)
        [submission] = stack.ml.submissions
        assert submission.manifest_bytes == expected
        blob = stack.services.container.get_blob_client(export.manifest_blob).download_blob().readall()
        assert blob == expected
    assert poison_messages(stack.services) == []
    assert stack.host.errors == []
    FIGURES["exports_run"] += 1


def wait_final_or_submitted(stack, export_id):
    from tests.harness import wait_for

    return wait_for(
        lambda: (e := stack.export(export_id)).status in ("submitted", "failed", "cancelled") and e,
        30,
        message="export to finish building",
    )


MALFORMED_PAGES = [
    {"subjects": "oops"},
    {"subjects": None},
    {"subjects": [1, "x", None, []]},
    {},
    {"subjects": [], "meta": "x"},
    {"subjects": [], "meta": {"subjects": "x"}},
    {
        "subjects": [{"id": "1", "locations": [{"image/jpeg": IMG + "a.jpg"}]}],
        "meta": {"subjects": {"page_count": "many", "count": None, "next_page": "two"}},
    },
    {
        "subjects": [{"id": "1", "locations": [{"image/jpeg": IMG + "a.jpg"}]}],
        "meta": {"subjects": {"page_count": -3, "count": -1, "next_page": 1}},
    },
    [],
    "not json at all",
    None,
]


@pytest.mark.parametrize("settings_overrides", [{"TRANSIENT_RETRY_HOURS": "0.0005"}])
@pytest.mark.slow
def test_malformed_panoptes_pages_fail_clearly_without_poison(stack):
    """Whole /subjects answers of the wrong shape (status 200). Each export must end in a
    manifest or a clear failed state (panoptes_unavailable after the retry window, or
    subject_set_empty), with nothing in the poison queue and no failed invocation. Breaks if
    e.g. a non-object `meta` raises AttributeError in the worker (crash loop into poison).
    The exports run at once, each on its own subject set: most of them wait out the retry
    window, which one after the other took half a minute."""
    started = []
    for i, page in enumerate(MALFORMED_PAGES):
        set_id = str(6700 + i)
        stack.panoptes.add_subject_set(
            set_id, "1234", f"Bad page {i}", [{"id": "1", "locations": [{"image/jpeg": IMG + "a.jpg"}]}]
        )
        fault = stack.panoptes.faults.add(
            rf"/api/subjects\?subject_set_id={set_id}&",
            "status",
            status=200,
            body=page if page is not None else "",
        )
        started.append((i, page, set_id, fault, stack.start_export(subject_set=set_id).json()["id"]))
    outcomes = []
    for i, page, set_id, fault, export_id in started:
        export = wait_final_or_submitted(stack, export_id)
        fault.remove()
        FIGURES["faults_injected"] += fault.hits
        outcomes.append((i, export.status, export.error_code))
        assert export.status in ("submitted", "failed"), (i, export)
        if export.status == "failed":
            assert export.error_code in ("panoptes_unavailable", "subject_set_empty", "panoptes_error"), (
                i,
                export,
            )
        else:
            assert stack.ml.wait_for_downloads(10)
            [submission] = [s for s in stack.ml.submissions if s.request_id == export.ml_task_id]
            assert submission.manifest_bytes == build_manifest([page["subjects"]], "1234", set_id)[0]
    stack.settle(30)
    assert poison_messages(stack.services) == [], outcomes
    assert stack.host.errors == [], outcomes
    FIGURES["exports_run"] += len(MALFORMED_PAGES)
