"""The local Functions host against Azurite (the session `azurite` fixture): HTTP routing and CORS,
queue and timer triggers."""
import base64
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessage
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient, TextBase64EncodePolicy

from devtools import host as host_module
from devtools.azurite import ROOT, free_port
from devtools.host import LocalHost
from tests.devhost import sample_app

ORIGIN = "http://localhost:3000"
NEVER = "0 0 0 1 1 *"  # a valid schedule that won't fire during the tests


@pytest.fixture(scope="module")
def host_json(tmp_path_factory):
    # Like the real host.json, but fast to retry: 1 s visibility timeout, 3 dequeues.
    path = tmp_path_factory.mktemp("host") / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {
        "http": {"routePrefix": "api"},
        "queues": {"messageEncoding": "base64", "batchSize": 4, "newBatchThreshold": 2,
                   "maxPollingInterval": "00:00:01", "visibilityTimeout": "00:00:01",
                   "maxDequeueCount": 3}}}))
    return path


def _env(azurite, queue="http-tests", schedule=NEVER):
    return {"AzureWebJobsStorage": azurite.connection_string, "SAMPLE_QUEUE": queue,
            "SAMPLE_SCHEDULE": schedule}


@pytest.fixture(scope="module")
def http_host(azurite, host_json):
    with LocalHost(sample_app.app, env=_env(azurite), host_json=host_json,
                   cors_origins=[ORIGIN], timers=False) as host:
        yield host


@pytest.fixture()
def queue_host(azurite, host_json):
    queue = f"q{uuid.uuid4().hex[:16]}"
    with LocalHost(sample_app.app, env=_env(azurite, queue), host_json=host_json,
                   timers=False, queue_poll_interval=0.05) as host:
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

@pytest.mark.parametrize("template, path, expected", [
    ("a/{id:int:min(10)}", "a/10", {"id": "10"}),
    ("a/{id:int:min(10)}", "a/9", None),
    ("a/{id:range(1,5)}", "a/6", None),
    ("a/{code:length(3)}", "a/abc", {"code": "abc"}),
    ("a/{code:regex(^[a-f]+$)}", "a/BEEF", {"code": "BEEF"}),  # case-insensitive, like ASP.NET
    ("a/{code:regex(^[a-f]+$)}", "a/xyz", None),
    ("a/{g:guid}", "a/" + "0" * 32, {"g": "0" * 32}),
    ("a/{page=1}", "a", {"page": "1"}),
    ("a/{x?}/{y?}", "a", {}),
    ("a/{x?}", "a/b/c", None),
    ("a/{x}", "a", None),
])
def test_route_templates(template, path, expected):
    route = host_module._Route(None, template, None)
    assert route.match(path.split("/")) == expected


def _get(host, path, **kw):
    return requests.get(host.url + path, timeout=10, **kw)


def test_routes_are_tried_in_function_name_order_like_the_functions_host(http_host):
    # item_a_new_form < item_by_id < item_by_name, and docs_readme < files (catch-all).
    assert _get(http_host, "/api/items/new").json() == {"fn": "item_a_new_form"}
    assert _get(http_host, "/api/ITEMS/New").json() == {"fn": "item_a_new_form"}  # case-insensitive
    readme = _get(http_host, "/api/files/readme")
    assert readme.text == "read me" and readme.headers["X-Doc"] == "readme"
    assert readme.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_constrained_parameter_beats_plain_parameter(http_host):
    assert _get(http_host, "/api/items/5").json() == {"fn": "item_by_id", "route": {"id": "5"}}
    assert _get(http_host, "/api/items/abc").json() == {"fn": "item_by_name", "route": {"name": "abc"}}
    assert _get(http_host, "/api/items/a%20b").json()["route"] == {"name": "a b"}


def test_catch_all_takes_the_rest_of_the_path_or_nothing(http_host):
    assert _get(http_host, "/api/files/a/b/c.txt").json()["route"] == {"path": "a/b/c.txt"}
    assert _get(http_host, "/api/files").json() == {"fn": "files", "route": {}}


def test_request_and_response_are_passed_through(http_host):
    r = requests.post(http_host.url + "/api/echo/hi?x=1&y=", data=b"payload", timeout=10,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"fn": "echo", "route": {"word": "hi"}, "params": {"x": "1", "y": ""},
                        "body": "payload", "method": "POST", "content_type": "text/plain",
                        "url": f"{http_host.url}/api/echo/hi?x=1&y="}
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
    # "abc" fails {id:int}, so only item_by_name's methods are allowed.
    assert requests.put(http_host.url + "/api/items/abc", timeout=10).headers["Allow"] == "DELETE, GET"


def test_exception_is_500_json_without_the_traceback(http_host):
    r = _get(http_host, "/api/boom")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "secret" not in r.text and "Traceback" not in r.text
    assert http_host.errors[-1] == ("boom", "RuntimeError('secret internals')")


def test_cors_for_listed_origin(http_host):
    r = _get(http_host, "/api/items/5", headers={"Origin": ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN and r.headers["Vary"] == "Origin"
    not_found = _get(http_host, "/api/nope", headers={"Origin": ORIGIN})
    assert not_found.headers["Access-Control-Allow-Origin"] == ORIGIN  # errors are readable too
    pre = requests.options(http_host.url + "/api/items/5", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization,x-trace"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in pre.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in pre.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-trace"} <= allowed


def test_cors_refused_for_other_origins(http_host):
    evil = "http://evil.example"
    r = _get(http_host, "/api/items/5", headers={"Origin": evil})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    pre = requests.options(http_host.url + "/api/items/5", timeout=10, headers={
        "Origin": evil, "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 405 and "Access-Control-Allow-Origin" not in pre.headers


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
    monkeypatch.setattr(host_module, "_LEASE_SECONDS", 1.0)
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

def test_cli_runs_the_app_in_a_subprocess(azurite):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.host", "--port", str(port), "--app", "tests.devhost.sample_app"],
        cwd=ROOT, env={**os.environ, **_env(azurite)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
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
    assert f"listening on http://127.0.0.1:{port}" in output and "/api/items/{id:int}" in output
