"""The local Functions host against Azurite (the session `azurite` fixture): HTTP routing, HEAD and
CORS (under routePrefix "api" and ""), queue and timer triggers, the command line."""

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient, TextBase64EncodePolicy

from devtools.azurite import ROOT, free_port
from devtools.host import LocalHost
from devtools.localhost import queues as queue_module
from tests.devhost import root_app, sample_app

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

ORIGIN = "http://localhost:3000"
NEVER = "0 0 0 1 1 *"  # a valid schedule that won't fire during the tests


@pytest.fixture(scope="module")
def host_json(tmp_path_factory):
    # Like the real host.json, but fast to retry: 1 s visibility timeout, 3 dequeues.
    path = tmp_path_factory.mktemp("host") / "host.json"
    path.write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "http": {"routePrefix": "api"},
                    "queues": {
                        "messageEncoding": "base64",
                        "batchSize": 4,
                        "newBatchThreshold": 2,
                        "maxPollingInterval": "00:00:01",
                        "visibilityTimeout": "00:00:01",
                        "maxDequeueCount": 3,
                    },
                },
            }
        )
    )
    return path


def _env(azurite, queue="http-tests", schedule=NEVER):
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_QUEUE": queue,
        "SAMPLE_SCHEDULE": schedule,
    }


@pytest.fixture(scope="module")
def http_host(azurite, host_json):
    with LocalHost(
        sample_app.app, env=_env(azurite), host_json=host_json, cors_origins=[ORIGIN], timers=False
    ) as host:
        yield host


@pytest.fixture()
def queue_host(azurite, host_json):
    queue = f"q{uuid.uuid4().hex[:16]}"
    with LocalHost(
        sample_app.app, env=_env(azurite, queue), host_json=host_json, timers=False, queue_poll_interval=0.05
    ) as host:
        yield host, queue


def _client(azurite, queue, policy=None):
    return QueueClient.from_connection_string(azurite.connection_string, queue, message_encode_policy=policy)


def _raw_messages(azurite, queue):
    try:
        return [m.content for m in _client(azurite, queue).peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def _calls(message_id):
    return [c for c in sample_app.QUEUE_CALLS if c["id"] == message_id]


# --- HTTP ------------------------------------------------------------------------------------


def _get(host, path, **kw):
    return requests.get(host.url + path, timeout=10, **kw)


def test_routes_are_tried_in_function_name_order_like_the_functions_host(http_host):
    # item_a_new_form < item_by_id < item_by_name, and docs_readme < files (catch-all).
    assert _get(http_host, "/api/items/new").json() == {"fn": "item_a_new_form"}
    assert _get(http_host, "/api/ITEMS/New").json() == {"fn": "item_a_new_form"}  # case-insensitive
    readme = _get(http_host, "/api/files/readme")
    assert readme.text == "read me" and readme.headers["X-Doc"] == "readme"
    assert readme.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_same_template_goes_to_the_first_name_whose_methods_match(http_host):
    # items/{id} (item_by_id) and items/{name} (item_by_name) overlap: the name decides.
    assert _get(http_host, "/api/items/5").json() == {"fn": "item_by_id", "route": {"id": "5"}}
    assert _get(http_host, "/api/items/abc").json() == {"fn": "item_by_id", "route": {"id": "abc"}}
    assert _get(http_host, "/api/items/a%20b").json()["route"] == {"id": "a b"}
    deleted = requests.delete(http_host.url + "/api/items/abc", timeout=10)  # item_by_id has no DELETE
    assert deleted.json() == {"fn": "item_by_name", "route": {"name": "abc"}}


def test_catch_all_takes_the_rest_of_the_path_or_nothing(http_host):
    assert _get(http_host, "/api/files/a/b/c.txt").json()["route"] == {"path": "a/b/c.txt"}
    assert _get(http_host, "/api/files").json() == {"fn": "files", "route": {}}


def test_request_and_response_are_passed_through(http_host):
    r = requests.post(
        http_host.url + "/api/echo/hi?x=1&y=",
        data=b"payload",
        timeout=10,
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {
        "fn": "echo",
        "route": {"word": "hi"},
        "params": {"x": "1", "y": ""},
        "body": "payload",
        "method": "POST",
        "content_type": "text/plain",
        "url": f"{http_host.url}/api/echo/hi?x=1&y=",
    }
    assert requests.post(http_host.url + "/api/echo", timeout=10).json()["route"] == {}  # optional


def test_async_functions_run(http_host):
    assert _get(http_host, "/api/slow/5").json() == {"fn": "slow"}


@pytest.mark.parametrize("path", ["/api/nope", "/api/items/1/2", "/elsewhere", "/"])
def test_unmatched_route_is_404_json(http_host, path):
    r = _get(http_host, path)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_json_with_allow(http_host):
    r = requests.post(http_host.url + "/api/items/5", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "DELETE, GET, PUT"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert requests.post(http_host.url + "/api/files/readme", timeout=10).headers["Allow"] == "GET, HEAD"


def test_exception_is_500_json_without_the_traceback(http_host):
    r = _get(http_host, "/api/boom")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "secret" not in r.text and "Traceback" not in r.text
    assert http_host.errors[-1] == ("boom", "RuntimeError('secret internals')")


def _head_then_get(host, path):
    """HEAD and GET `path` on one keep-alive connection: a body wrongly sent after the HEAD
    answer would be read as the start of the GET's answer and break it."""
    conn = http.client.HTTPConnection("127.0.0.1", int(host.url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("HEAD", path)
        head = conn.getresponse()
        head_body, head_headers = head.read(), dict(head.getheaders())
        conn.request("GET", path)
        get = conn.getresponse()
        return (head.status, head_headers, head_body), (get.status, dict(get.getheaders()), get.read())
    finally:
        conn.close()


def _without_date(headers):
    return {k: v for k, v in headers.items() if k.lower() not in ("date", "server")}


def test_head_gets_the_headers_of_get_and_no_body(http_host):
    (status, headers, body), (get_status, get_headers, get_body) = _head_then_get(
        http_host, "/api/files/readme"
    )
    assert (status, body) == (200, b"") and (get_status, get_body) == (200, b"read me")
    assert _without_date(headers) == _without_date(get_headers)
    assert headers["Content-Length"] == "7" and headers["X-Doc"] == "readme"
    # Routed like any other method: a function that doesn't list HEAD doesn't get it (as in Azure).
    (status, headers, body), _ = _head_then_get(http_host, "/api/slow/1")
    assert status == 405 and body == b"" and headers["Allow"] == "GET"
    assert int(headers["Content-Length"]) > 0


def test_cors_for_listed_origin(http_host):
    r = _get(http_host, "/api/items/5", headers={"Origin": ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN and r.headers["Vary"] == "Origin"
    not_found = _get(http_host, "/api/nope", headers={"Origin": ORIGIN})
    assert not_found.headers["Access-Control-Allow-Origin"] == ORIGIN  # errors are readable too
    pre = requests.options(
        http_host.url + "/api/items/5",
        timeout=10,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,x-trace",
        },
    )
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in pre.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in pre.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-trace"} <= allowed


def test_cors_refused_for_other_origins(http_host):
    evil = "http://evil.example"
    r = _get(http_host, "/api/items/5", headers={"Origin": evil})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    pre = requests.options(
        http_host.url + "/api/items/5",
        timeout=10,
        headers={"Origin": evil, "Access-Control-Request-Method": "GET"},
    )
    assert pre.status_code == 405 and "Access-Control-Allow-Origin" not in pre.headers


# --- routePrefix "" --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root_host(tmp_path_factory):
    # The function app's layout: the page at /, the API under api/. No queues: no storage needed.
    path = tmp_path_factory.mktemp("root") / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    with LocalHost(root_app.app, host_json=path, cors_origins=[ORIGIN], timers=False) as host:
        yield host


def test_empty_prefix_serves_the_page_at_the_root_through_the_catch_all(root_host):
    for path in ("/", "/?utm=x", ""):
        r = requests.get(root_host.url + path, timeout=10)
        assert r.status_code == 200 and r.text.startswith("<!doctype html>"), path
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "path, status, expected",
    [
        ("/api/items/5", 200, {"fn": "api_item", "route": {"id": "5"}}),
        ("/API/Items/5", 200, {"fn": "api_item", "route": {"id": "5"}}),
        ("/api/items", 404, {"fn": "zz_site", "route": {"path": "api/items"}}),
        ("/api/items/5/extra", 404, {"fn": "zz_site", "route": {"path": "api/items/5/extra"}}),
        ("/subject-assistant/12/", 404, {"fn": "zz_site", "route": {"path": "subject-assistant/12"}}),
    ],
)
def test_empty_prefix_routes_api_paths_and_leaves_the_rest_to_the_catch_all(
    root_host, path, status, expected
):
    r = _get(root_host, path)
    assert r.status_code == status and r.json() == expected


def test_empty_prefix_catch_all_under_a_literal(root_host):
    assert _get(root_host, "/static/css/site.css").text == "/* css/site.css */"
    assert _get(root_host, "/static").text == "/* None */"  # an empty catch-all has no value


def test_empty_prefix_method_mismatch_falls_through_to_405(root_host):
    # api_item takes only GET and zz_site no DELETE: the union of their methods is allowed.
    r = requests.delete(root_host.url + "/api/items/5", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST"
    assert requests.post(root_host.url + "/api/items/5", timeout=10).json()["fn"] == "zz_site"


def test_empty_prefix_head_of_the_page(root_host):
    (status, headers, body), (_, get_headers, get_body) = _head_then_get(root_host, "/")
    assert status == 200 and body == b"" and get_body.startswith(b"<!doctype html>")
    assert headers["X-Method"] == "HEAD" and get_headers["X-Method"] == "GET"  # the function sees HEAD
    assert headers["Content-Length"] == str(len(get_body)) and headers["Cache-Control"] == "no-cache"


def test_empty_prefix_cors_and_routes(root_host):
    r = _get(root_host, "/api/items/5", headers={"Origin": ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    pre = requests.options(
        root_host.url + "/", timeout=10, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert root_host.describe_routes() == [
        "GET          /api/items/{id}  (api_item)",
        "GET,HEAD     /static/{*file}  (static_file)",
        "GET,HEAD,POST /{*path}  (zz_site)",
    ]


# --- queue triggers --------------------------------------------------------------------------


def test_base64_messages_are_decoded_and_deleted_on_success(azurite, queue_host):
    host, queue = queue_host
    text = _client(azurite, queue, TextBase64EncodePolicy()).send_message("héllo wörld")
    binary = _client(azurite, queue, BinaryBase64EncodePolicy()).send_message(b"\x00\xffraw")
    assert host.wait_idle(10)
    (text_call,), (binary_call,) = _calls(text.id), _calls(binary.id)
    assert text_call["body"] == "héllo wörld".encode() and binary_call["body"] == b"\x00\xffraw"
    msg = text_call["msg"]
    assert isinstance(msg, QueueMessage) and msg.dequeue_count == 1 and msg.pop_receipt
    assert msg.insertion_time and msg.expiration_time and msg.time_next_visible
    assert _raw_messages(azurite, queue) == [] and host.invocations["work"] == 2 and host.errors == []


@pytest.mark.parametrize(
    "message, visible_in",
    [("sent", 0), ("sent invisible", 1), ("fail-until:2", 0)],  # the last fails once, then retries
)
def test_a_message_sent_here_wakes_its_poller_when_it_turns_visible(
    azurite, host_json, monkeypatch, message, visible_in
):
    """A poller that found its queue empty waits out its backoff (here a minute) before it polls
    again, unless a message sent from this process turns visible first, or a failed message
    turns visible again for its retry (host.json: visibilityTimeout 1 s)."""
    queue = f"q{uuid.uuid4().hex[:16]}"
    _client(azurite, queue).create_queue()
    polled = threading.Event()
    receive = queue_module.QueuePoller._receive

    def receive_and_say(poller):
        try:
            return receive(poller)
        finally:
            if poller.queue_name == queue:  # not another host's (this module's http_host)
                polled.set()

    monkeypatch.setattr(queue_module.QueuePoller, "_receive", receive_and_say)
    other = f"q{uuid.uuid4().hex[:16]}"
    with LocalHost(
        sample_app.app, env=_env(azurite, queue), host_json=host_json, timers=False, queue_poll_interval=60
    ) as host:
        assert polled.wait(30)  # the first poll found nothing: the next is a minute away
        polled.clear()
        _client(azurite, other).create_queue()
        _client(azurite, other, TextBase64EncodePolicy()).send_message("elsewhere")
        assert not polled.wait(0.5), "a message to another queue woke the poller"
        sent = _client(azurite, queue, TextBase64EncodePolicy()).send_message(
            message, visibility_timeout=visible_in
        )
        runs = 2 if message.startswith("fail") else 1  # a failure, then its retry
        deadline = time.monotonic() + 30
        while len(_calls(sent.id)) < runs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_calls(sent.id)) == runs, "it waited for the backoff"
        assert host.wait_idle(10)


def test_failures_retry_with_rising_dequeue_count_then_succeed_or_go_to_poison(azurite, queue_host):
    host, queue = queue_host
    sender = _client(azurite, queue, TextBase64EncodePolicy())
    recovers, poisoned = sender.send_message("fail-until:3"), sender.send_message("fail")
    assert host.wait_idle(20)
    assert [c["dequeue_count"] for c in _calls(recovers.id)] == [1, 2, 3]
    assert [c["dequeue_count"] for c in _calls(poisoned.id)] == [1, 2, 3]  # maxDequeueCount
    assert _raw_messages(azurite, queue) == []
    # The poison copy is the original message, still base64 as it was sent.
    assert _raw_messages(azurite, f"{queue}-poison") == [base64.b64encode(b"fail").decode()]
    assert len(host.errors) == 5 and host.invocations["work"] == 6


def test_message_that_is_not_base64_goes_to_poison_without_running(azurite, queue_host):
    host, queue = queue_host
    _client(azurite, queue).send_message("not base64!")
    assert host.wait_idle(10)
    assert _raw_messages(azurite, f"{queue}-poison") == ["not base64!"]
    assert host.invocations["work"] == 0


def test_long_invocation_keeps_its_message_invisible(azurite, host_json, monkeypatch):
    monkeypatch.setattr(queue_module, "LEASE_SECONDS", 1.0)
    queue = f"q{uuid.uuid4().hex[:16]}"
    with LocalHost(sample_app.app, env=_env(azurite, queue), host_json=host_json, timers=False) as host:
        sent = _client(azurite, queue, TextBase64EncodePolicy()).send_message("sleep:2.2")
        assert host.wait_idle(10)
    assert [c["dequeue_count"] for c in _calls(sent.id)] == [1] and host.errors == []


# --- timers ----------------------------------------------------------------------------------


def test_run_timer_invokes_once_now(http_host):
    before = len(sample_app.TIMER_CALLS)
    http_host.run_timer("tick")
    (call,) = sample_app.TIMER_CALLS[before:]
    assert call["past_due"] is False and {"Last", "Next", "LastUpdated"} <= call["status"].keys()
    assert http_host.invocations["tick"] == 1
    with pytest.raises(ValueError):
        http_host.run_timer("boom")


def test_scheduled_timer_fires_each_second_without_overlap(azurite, host_json):
    before = len(sample_app.TIMER_CALLS)
    env = _env(azurite, f"q{uuid.uuid4().hex[:16]}", "*/1 * * * * *")
    with LocalHost(sample_app.app, env=env, host_json=host_json) as host:
        time.sleep(2.6)
    calls = sample_app.TIMER_CALLS[before:]
    assert len(calls) >= 2 and not any(c["overlapped"] for c in calls)
    assert all(b["at"] - a["at"] > 0.8 for a, b in zip(calls, calls[1:]))
    assert host.invocations["tick"] == len(calls)


def test_overrunning_timer_gets_one_past_due_catch_up_run(azurite, host_json):
    before = len(sample_app.TIMER_CALLS)
    env = _env(azurite, f"q{uuid.uuid4().hex[:16]}", "*/1 * * * * *") | {"SAMPLE_TIMER_SECONDS": "1.3"}
    with LocalHost(sample_app.app, env=env, host_json=host_json):
        time.sleep(2.8)  # on time at <=1 s, overruns the next occurrence, caught up <=2.3 s
    calls = sample_app.TIMER_CALLS[before:]
    assert [c["past_due"] for c in calls] == [False, True]
    assert not any(c["overlapped"] for c in calls)


def test_unresolved_schedule_setting_fails_start(azurite, host_json, monkeypatch):
    monkeypatch.delenv("SAMPLE_SCHEDULE", raising=False)
    env = {k: v for k, v in _env(azurite).items() if k != "SAMPLE_SCHEDULE"}
    host = LocalHost(sample_app.app, env=env, host_json=host_json)
    with pytest.raises(KeyError, match="%SAMPLE_SCHEDULE%"):
        host.start()
    assert "AzureWebJobsStorage" in os.environ  # restored to the module host's value, not dropped


# --- command line ----------------------------------------------------------------------------


def test_cli_runs_the_app_in_a_subprocess(azurite, host_json):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.host",
            "--port",
            str(port),
            "--app",
            "tests.devhost.sample_app",
            "--host-json",
            str(host_json),
        ],
        cwd=ROOT,
        env={**os.environ, **_env(azurite)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, response = time.monotonic() + 20, None
        while response is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/items/7", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
        assert response is not None and response.json()["route"] == {"id": "7"}
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert f"listening on http://127.0.0.1:{port}" in output and "/api/items/{id}" in output
    assert "queueTrigger" in output and "(work)" in output and "timerTrigger" in output


def test_a_client_that_went_away_is_one_log_line_and_other_errors_a_traceback(capsys, caplog):
    from http.server import BaseHTTPRequestHandler

    from devtools.localhost.http_server import _Server

    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        with caplog.at_level("INFO", logger="devtools.host"):
            for gone in (
                BrokenPipeError(32, "Broken pipe"),
                ConnectionResetError(104, "reset"),
                ConnectionAbortedError(103, "aborted"),
            ):
                try:
                    raise gone
                except OSError:
                    server.handle_error(None, ("127.0.0.1", 5555))
        assert capsys.readouterr().err == ""
        assert caplog.text.count("went away before its answer was written") == 3
        try:
            raise ValueError("a bug in the host")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 5555))
        assert "ValueError: a bug in the host" in capsys.readouterr().err
    finally:
        server.server_close()
