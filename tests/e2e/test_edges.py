"""The edges a security review found answering 500 or doing work before refusing, through the local
host: ids of any length, static paths of any length, bodies refused before they are read and before
the token is checked, and a budget on Panoptes lookups of unknown tokens."""

from __future__ import annotations

import socket
import time
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.test_hostile_input import _wire, send

EDGES = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("digits", [20, 4300, 4301, 5000, 20000])
def test_an_id_of_any_number_of_digits_is_400_invalid_id(stack, digits):
    for path in (
        f"/api/projects/{'9' * digits}/exports",
        f"/api/projects/1234/subject-sets/{'1' * digits}/exports",
    ):
        method = "POST" if path.endswith("subject-sets/" + "1" * digits + "/exports") else "GET"
        response = stack.call(method, path)
        assert response.status_code == 400, (digits, response.status_code, response.text[:200])
        error = response.json()["error"]
        assert error["code"] == "invalid_id" and "too large for a Panoptes id" in error["message"]


@pytest.mark.parametrize("length", [256, 300, 4096])
def test_a_static_path_of_any_length_is_a_404_page_with_the_headers(stack, length):
    response = stack.call("GET", "/static/" + "a" * length + ".js", token=None)
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# Any character, any length: digits long enough for int()'s limit, names too long for a file system,
# escapes, dots, NULs, non-ASCII.
SEGMENTS = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789", min_size=1, max_size=6000),
    st.text(alphabet="a./%\\\x00é", min_size=200, max_size=3000),
    st.sampled_from(["..", ".", "%2e%2e", "%00", "a" * 255, "a" * 256]),
)
PATHS = [
    "/api/projects/{s}/subject-sets/{t}/exports",
    "/api/projects/{s}/exports",
    "/api/exports/{s}",
    "/api/exports/{s}/cancel",
    "/static/{s}",
    "/static/{s}.js",
    "/static/{s}/{t}.css",
    "/subject-assistant/{s}",
    "/{s}",
    "/api/{s}",
]


@EDGES
@given(path=st.sampled_from(PATHS), s=SEGMENTS, t=SEGMENTS, method=st.sampled_from(["GET", "POST", "HEAD"]))
def test_no_path_segment_of_any_length_or_character_answers_5xx(stack, path, s, t, method):
    wire = _wire(path.format(s=quote(s, safe="./%\\"), t=quote(t, safe="./%\\")))
    if len(wire) > 60_000:  # past the request-line limit the host itself answers 414
        return
    status, headers, _ = send(stack, method, wire, {"Authorization": "Bearer demo-outsider-token"})
    assert status < 500, (status, wire[:200])
    if status != 414:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered.get("x-content-type-options") == "nosniff", wire[:200]


def _raw_post_headers_only(stack, path: str, length: int, token: str | None) -> tuple[int, bytes]:
    """POST with a Content-Length but send no body at all: only an answer that does not wait for
    the body can arrive. Returns (status, the whole answer)."""
    target = urlsplit(stack.host.url)
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        lines = [f"POST {path} HTTP/1.1", f"Host: {target.netloc}", f"Content-Length: {length}"]
        lines += ["Content-Type: application/json"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while True:
            chunk = sock.recv(65536)  # a server waiting for the body times out here
            if not chunk:
                break
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize(
    "path",
    ["/api/projects/1234/subject-sets/5678/exports", "/api/exports/1234-5678-0000000000000deadbeef/cancel"],
)
def test_an_anonymous_post_is_refused_before_its_body_is_read(stack, path):
    # Over the limit: refused on its Content-Length alone (cheaper than asking Panoptes).
    status, answer = _raw_post_headers_only(stack, path, 60_000_000, token=None)
    assert status == 413 and b'"body_too_large"' in answer, answer[:300]
    # Under it: the token is checked first, and the body is never read for a caller without one.
    for token in (None, "not-a-real-token"):
        status, answer = _raw_post_headers_only(stack, path, 60_000, token=token)
        assert status == 401 and b'"unauthenticated"' in answer, answer[:300]
    assert stack.table_rows() == []


def test_a_declared_body_over_the_limit_is_413_unread(stack):
    status, answer = _raw_post_headers_only(
        stack, "/api/projects/1234/subject-sets/5678/exports", 60_000_000, token="demo-owner-token"
    )
    assert status == 413 and b"body_too_large" in answer and b"60,000,000 bytes" in answer
    assert stack.table_rows() == []


@pytest.mark.parametrize("settings_overrides", [{"UNKNOWN_TOKEN_LOOKUPS_PER_SECOND": "0.5"}])
def test_lookups_of_unknown_tokens_are_bounded_but_known_tokens_and_health_are_not(stack):
    assert stack.call("GET", "/api/projects").status_code == 200  # demo-owner-token: now known
    time.sleep(2.1)  # its lookup took the budget's one token: let it refill (0.5 a second)
    calls_before = stack.panoptes.count("/api/me")
    answers = [stack.call("GET", "/api/projects", token=f"made-up-{n}") for n in range(6)]
    statuses = [a.status_code for a in answers]
    # A burst of twice the rate (1 lookup) is allowed; every later one waits for the budget.
    assert statuses[0] == 401 and statuses.count(429) >= 4, statuses
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["error"]["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) >= 1
    assert stack.panoptes.count("/api/me") - calls_before <= 2
    for _ in range(5):  # a known good token and the anonymous health check never wait
        assert stack.call("GET", "/api/projects").status_code == 200
        assert stack.call("GET", "/api/health", token=None).status_code == 200
    time.sleep(2.1)  # the budget refills at its rate
    assert stack.call("GET", "/api/projects", token="made-up-later").status_code == 401


@pytest.mark.parametrize(
    "task_id",
    ["../../admin", "a/b", "x" * 65, "a b", "%2e%2e", "https://evil.example/", "täsk", "id?x=1", "id#frag"],
)
def test_an_ml_task_id_that_could_change_a_url_is_never_used(stack, task_id):
    """The task id goes into the status path, the cancel body and the Subject Assistant link."""
    stack.ml.faults.add(r"/request_detections", "status", status=200, body={"request_id": task_id}, times=1)
    export = stack.start_export().json()
    stack.settle()
    done = stack.get(export["id"]).json()
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "ml_rejected" and "task id" in done["error"]["message"]
    assert done["ml_task_id"] is None and done["subject_assistant_url"] is None
    assert task_id not in str(done)
    stack.tick()
    assert stack.ml.count(f"{stack.ml.base_path}/task/") == 0  # never polled
