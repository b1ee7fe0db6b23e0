"""shared/outbound.py against a real HTTP server on 127.0.0.1: what one pool shared by every
user must (not) do, and how a missing answer is classified for at-most-once submission."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exports.ml_service import MlOutcomeUnknown, MlServiceClient, MlUnavailable
from shared.outbound import OutboundError, OutboundHttp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/cookie"):
            return self._answer(200, b"{}", {"Set-Cookie": "session=abc; Path=/"})
        if self.path.startswith("/redirect"):
            return self._answer(302, b"", {"Location": "/elsewhere"})
        if self.path.startswith("/gzip"):
            return self._answer(200, gzip.compress(b'{"zipped": true}'), {"Content-Encoding": "gzip"})
        if self.path.startswith("/hang"):
            time.sleep(1.5)
            self.close_connection = True
            return None
        if self.path.startswith("/drop"):
            self.close_connection = True  # hang up without answering
            return None
        return self._answer(200, json.dumps({"path": self.path}).encode())

    do_POST = do_GET

    def _answer(self, status, body, headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_cookie_is_kept_between_calls(server):
    http = OutboundHttp(pool_size=2, timeout=5)
    http.request("GET", server + "/cookie", headers={"Authorization": "Bearer user-a"})
    http.request("GET", server + "/next", headers={"Authorization": "Bearer user-b"})
    second = _Handler.seen[-1]["headers"]
    assert "Cookie" not in second and second["Authorization"] == "Bearer user-b"


def test_redirects_are_not_followed(server):
    answer = OutboundHttp(pool_size=2, timeout=5).request("GET", server + "/redirect")
    assert answer.status == 302 and [s["path"] for s in _Handler.seen] == ["/redirect"]


def test_environment_proxy_is_ignored(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{_closed_port()}")
    answer = OutboundHttp(pool_size=2, timeout=5).request("GET", server + "/x", params={"a": "1 2"})
    assert answer.status == 200 and answer.json() == {"path": "/x?a=1+2"}


def test_gzip_answers_are_decoded(server):
    answer = OutboundHttp(pool_size=2, timeout=5).request("GET", server + "/gzip")
    assert answer.json() == {"zipped": True}
    assert "gzip" in _Handler.seen[-1]["headers"]["Accept-Encoding"]


def test_refused_connection_never_connected():
    with pytest.raises(OutboundError) as info:
        OutboundHttp(pool_size=2, timeout=5).request("GET", f"http://127.0.0.1:{_closed_port()}/")
    assert info.value.never_connected


@pytest.mark.parametrize("path", ["/hang", "/drop"])
def test_missing_answer_after_sending_is_not_never_connected(server, path):
    with pytest.raises(OutboundError) as info:
        OutboundHttp(pool_size=2, timeout=0.5).request("POST", server + path, json_body={"a": 1})
    assert not info.value.never_connected


def test_ml_submission_classification(server):
    refused = MlServiceClient(f"http://127.0.0.1:{_closed_port()}", "zooniverse", timeout=5)
    with pytest.raises(MlUnavailable):  # certainly not accepted: safe to retry
        refused.submit("https://x/manifest.json", "name")
    hanging = MlServiceClient(server + "/hang", "zooniverse", timeout=0.5)
    with pytest.raises(MlOutcomeUnknown):  # sent, no answer: may exist, never re-sent
        hanging.submit("https://x/manifest.json", "name")
