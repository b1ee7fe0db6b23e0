"""Callbacks end to end (CONTRACT.md "Callbacks"): a receiver on 127.0.0.1 (under the opt-in
CALLBACK_ALLOW_PRIVATE) gets the Export, signed, when it completes, fails or is cancelled; retries
and giving up; and every kind of bad callback refused at the POST, with nothing sent."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading

import pytest

from standins.server import Response, StandInServer

TOKEN = "a-receivers-secret-0123456789"
ALLOW = {"CALLBACK_ALLOW_PRIVATE": "true"}


class Receiver(StandInServer):
    """Records every callback; answers the statuses queued in `answers` (then 200)."""

    def __init__(self):
        super().__init__()
        self.received: list = []
        self.answers: list[int] = []
        self.lock = threading.Lock()

    def handle(self, req):
        with self.lock:
            self.received.append(req)
            status = self.answers.pop(0) if self.answers else 200
        return Response(status, {"ok": status < 300})


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def start_with_callback(stack, receiver, subject_set="5678", token=TOKEN, path="/hooks/exports?key=x"):
    body = {"callback_url": f"{receiver.root_url}{path}", "callback_token": token}
    response = stack.call("POST", f"/api/projects/1234/subject-sets/{subject_set}/exports", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def verify(request, token=TOKEN) -> dict:
    assert request.method == "POST" and request.path == "/hooks/exports" and request.query == {"key": "x"}
    assert request.headers.get("Content-Type") == "application/json"
    expected = "sha256=" + hmac.new(token.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers.get("X-Signature-256"), expected)
    return json.loads(request.body)


def later(stack, monkeypatch, seconds: float) -> None:
    """Move the service's clock on (a retry's backoff passes without waiting for it)."""
    clock = stack.services.clock
    monkeypatch.setattr(stack.services, "clock", lambda: clock() + dt.timedelta(seconds=seconds))


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_completed_export_is_posted_once_signed(stack, receiver):
    export = start_with_callback(stack, receiver)
    assert export["callback"] == {
        "url": f"{receiver.root_url}/hooks/exports",  # no query string: it may hold a secret
        "state": None,
        "attempts": 0,
        "last_status": None,
        "last_error": None,
        "delivered_at": None,
    }
    stack.settle()
    stack.tick(), stack.tick()
    stack.settle()  # the delivery queued when the export ended
    assert len(receiver.received) == 1
    sent = verify(receiver.received[0])
    assert sent["id"] == export["id"] and sent["status"] == "completed"
    assert sent["results_summary"]["available"] is True
    done = stack.get(export["id"]).json()
    assert done["callback"]["state"] == "delivered" and done["callback"]["attempts"] == 1
    assert done["callback"]["last_status"] == 200 and done["callback"]["delivered_at"]
    # Never twice once a 2xx came back: more ticks, a duplicate message.
    stack.services.enqueue_callback(export["id"])
    stack.tick()
    stack.settle()
    assert len(receiver.received) == 1
    listing = stack.call("GET", "/api/projects/1234/exports").json()
    entry = next(s for s in listing["subject_sets"] if s["id"] == "5678")
    assert entry["latest_export"]["callback"]["state"] == "delivered"  # the listing is not stale


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_failed_and_a_cancelled_export_are_posted_too(stack, receiver):
    failed = start_with_callback(stack, receiver, subject_set="5679")  # no images: subject_set_empty
    stack.settle()
    cancelled = start_with_callback(stack, receiver)
    stack.settle()
    stack.tick()  # running at the ML service: the cancel is accepted there
    assert stack.call("POST", f"/api/exports/{cancelled['id']}/cancel").status_code == 200
    stack.settle()
    sent = {verify(r)["id"]: verify(r) for r in receiver.received}
    assert sent[failed["id"]]["status"] == "failed"
    assert sent[failed["id"]]["error"]["code"] == "subject_set_empty"
    assert sent[cancelled["id"]]["status"] == "cancelled"
    assert len(receiver.received) == 2


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_5xx_and_network_errors_are_retried_with_backoff_then_delivered(stack, receiver, monkeypatch):
    receiver.answers = [503, 500]
    export = start_with_callback(stack, receiver, subject_set="5679")
    stack.settle()
    state = stack.get(export["id"]).json()["callback"]
    assert (state["state"], state["attempts"], state["last_status"]) == ("pending", 1, 503)
    stack.tick()  # not due yet: nothing sent
    assert len(receiver.received) == 1
    later(stack, monkeypatch, 31)
    stack.tick()  # due: 500, then due again after 60 s
    assert len(receiver.received) == 2
    later(stack, monkeypatch, 61)
    stack.tick()
    assert len(receiver.received) == 3
    state = stack.get(export["id"]).json()["callback"]
    assert (state["state"], state["attempts"], state["last_status"]) == ("delivered", 3, 200)
    assert [verify(r)["id"] for r in receiver.received] == [export["id"]] * 3


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_receiver_that_is_down_is_retried(stack, receiver):
    export = start_with_callback(stack, receiver, subject_set="5679")
    receiver.stop()  # connection refused from now on
    stack.settle()
    state = stack.get(export["id"]).json()["callback"]
    assert state["state"] == "pending" and state["last_status"] is None
    assert state["last_error"].startswith("no answer")


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_4xx_gives_up_at_once(stack, receiver, monkeypatch):
    receiver.answers = [410]
    export = start_with_callback(stack, receiver, subject_set="5679")
    stack.settle()
    later(stack, monkeypatch, 7200)
    stack.tick()
    state = stack.get(export["id"]).json()["callback"]
    assert (state["state"], state["attempts"], state["last_status"]) == ("gave_up", 1, 410)
    assert len(receiver.received) == 1


@pytest.mark.parametrize("settings_overrides", [{**ALLOW, "CALLBACK_RETRY_HOURS": "0.02"}])
def test_retries_stop_after_the_retry_window(stack, receiver, monkeypatch):
    receiver.answers = [503] * 100
    export = start_with_callback(stack, receiver, subject_set="5679")
    stack.settle()
    for _ in range(5):  # 30 s, 60 s, ... : the 72 s window closes after the second retry
        later(stack, monkeypatch, 3600)
        stack.tick()
    state = stack.get(export["id"]).json()["callback"]
    assert state["state"] == "gave_up" and state["attempts"] == 2
    assert len(receiver.received) == 2


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_repost_while_active_keeps_the_first_callback(stack, receiver):
    first = start_with_callback(stack, receiver)
    body = {"callback_url": f"{receiver.root_url}/another/hook", "callback_token": "x" * 20}
    again = stack.call("POST", "/api/projects/1234/subject-sets/5678/exports", json=body)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.json()["callback"]["url"] == f"{receiver.root_url}/hooks/exports"


def test_the_token_is_stored_encrypted(stack, receiver):
    body = {"callback_url": "https://pipeline.example.org/hook", "callback_token": TOKEN}
    stack.services.callback_sender.resolve = lambda host, port: ["93.184.216.34"]  # a public address
    response = stack.call("POST", "/api/projects/1234/subject-sets/5678/exports", json=body)
    assert response.status_code == 202, response.text
    rows = stack.services.storage.table("SubjectAssistantExports").list_entities()
    assert all(TOKEN not in json.dumps(dict(row), default=str) for row in rows)
    assert TOKEN not in response.text


BAD = [
    ({"callback_url": "https://pipeline.example.org/hook"}, "both"),
    ({"callback_token": TOKEN}, "both"),
    ({"callback_url": "https://pipeline.example.org/hook", "callback_token": "short"}, "16 to 256"),
    ({"callback_url": "https://pipeline.example.org/hook", "callback_token": "x" * 257}, "16 to 256"),
    (
        {"callback_url": "https://pipeline.example.org/hook", "callback_token": "tab\there-is-long"},
        "printable",
    ),
    ({"callback_url": "https://pipeline.example.org/hook", "callback_token": 12345678901234567}, "16 to 256"),
    ({"callback_url": 5, "callback_token": TOKEN}, "https URL"),
    ({"callback_url": "http://pipeline.example.org/hook", "callback_token": TOKEN}, "https"),
    ({"callback_url": "ftp://pipeline.example.org/hook", "callback_token": TOKEN}, "https"),
    ({"callback_url": "https://user:pw@pipeline.example.org/hook", "callback_token": TOKEN}, "https URL"),
    ({"callback_url": "https://pipeline.example.org\\@127.0.0.1/", "callback_token": TOKEN}, "https URL"),
    ({"callback_url": "https://127.0.0.1/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://10.1.2.3/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://192.168.0.1/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://169.254.169.254/latest", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://100.64.0.1/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://0.0.0.0/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://[::1]/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://[::ffff:127.0.0.1]/hook", "callback_token": TOKEN}, "https URL"),
    ({"callback_url": "https://[::ffff:7f00:1]/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://[fe80::1]/hook", "callback_token": TOKEN}, "public"),
    ({"callback_url": "https://localhost/hook", "callback_token": TOKEN}, "resolves to a private"),
    ({"callback_url": "https://nowhere.invalid/hook", "callback_token": TOKEN}, "does not resolve"),
]


@pytest.mark.parametrize("body,why", BAD)
def test_a_bad_callback_is_refused_with_nothing_created_or_sent(stack, receiver, body, why):
    response = stack.call("POST", "/api/projects/1234/subject-sets/5678/exports", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_callback" and why in error["message"], error
    assert stack.table_rows() == [] and stack.queued_messages() == []
    assert receiver.received == []


def test_a_host_that_resolves_elsewhere_when_sending_is_not_sent_to(stack, receiver):
    """Checked on the address actually connected to: a name that resolved to a public address at
    the POST and resolves to 127.0.0.1 when the callback is sent (DNS rebinding) gets nothing."""
    answers = {"at": ["93.184.216.34"]}
    stack.services.callback_sender.resolve = lambda host, port: answers["at"]
    body = {"callback_url": f"https://rebinding.example.org:{receiver.port}/hook", "callback_token": TOKEN}
    response = stack.call("POST", "/api/projects/1234/subject-sets/5679/exports", json=body)
    assert response.status_code == 202, response.text
    answers["at"] = ["127.0.0.1"]
    stack.settle()
    state = stack.get(response.json()["id"]).json()["callback"]
    assert state["state"] == "gave_up" and "private" in state["last_error"]
    assert receiver.received == []


class Redirecting(Receiver):
    """Answers every callback with a redirect to `target` (another receiver)."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def handle(self, req):
        with self.lock:
            self.received.append(req)
        return Response(307, {"moved": True}, headers={"Location": self.target})


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_a_redirect_is_not_followed(stack, receiver):
    """The receiver's redirect could point anywhere (a private address): it is an answer, not a
    way on. Not worth retrying either: the attempt gives up with its status."""
    with Redirecting(f"{receiver.root_url}/hooks/exports?key=x") as redirecting:
        export = start_with_callback(stack, redirecting, subject_set="5679")
        stack.settle()
        state = stack.get(export["id"]).json()["callback"]
    assert len(redirecting.received) == 1 and receiver.received == []
    assert (state["state"], state["attempts"], state["last_status"]) == ("gave_up", 1, 307)


class Silent(Receiver):
    """Takes the callback and answers nothing until `release` is set."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def handle(self, req):
        with self.lock:
            self.received.append(req)
        self.release.wait(60)
        return Response(200, {"late": True})


@pytest.mark.parametrize("settings_overrides", [{**ALLOW, "CALLBACK_TIMEOUT_SECONDS": "1"}])
def test_a_receiver_that_never_answers_is_left_after_the_timeout_and_retried(stack):
    with Silent() as silent:
        try:
            export = start_with_callback(stack, silent, subject_set="5679")
            stack.settle()  # the attempt ended on its own while the receiver still holds it
            state = stack.get(export["id"]).json()["callback"]
            assert len(silent.received) == 1 and not silent.release.is_set()
            assert (state["state"], state["attempts"], state["last_status"]) == ("pending", 1, None)
            assert "Timeout" in state["last_error"], state
        finally:
            silent.release.set()


class Endless(Receiver):
    """Answers 200 with a body that never ends (chunked), counting what it could send."""

    def __init__(self):
        super().__init__()
        self.sent = 0

    def handle(self, req):
        with self.lock:
            self.received.append(req)

        def forever():
            while True:
                self.sent += 65536
                yield b"x" * 65536

        return Response(200, forever(), content_type="text/plain")


@pytest.mark.parametrize("settings_overrides", [ALLOW])
def test_an_endless_answer_is_read_only_to_its_bound(stack):
    """The answer is not used: at most a few KiB of it are read, so an endless one cannot hold
    the delivery (it would never finish) nor fill the worker's memory."""
    with Endless() as endless:
        export = start_with_callback(stack, endless, subject_set="5679")
        stack.settle()
        state = stack.get(export["id"]).json()["callback"]
        assert (state["state"], state["last_status"]) == ("delivered", 200)
        sent_when_delivered = endless.sent
    assert sent_when_delivered < 64 * 2**20, sent_when_delivered  # socket buffers, not the body
