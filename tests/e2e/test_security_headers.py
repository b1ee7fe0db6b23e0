"""Every answer carries the security headers the contract promises (CONTRACT.md "Answers, whatever
they are"): walked over every route and every status the OpenAPI document lists, each produced for
real through the local host, plus the page, static files and every kind of 404/405/500."""

from __future__ import annotations

import pytest
import requests

from exports import api, openapi
from exports.store import ConcurrentUpdate
from shared.rate_limit import TokenBucket

UNKNOWN_EXPORT = "1234-5678-0000000000000deadbeef"


def assert_secure(response: requests.Response, what: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "no-referrer", what
    assert headers.get("Strict-Transport-Security") == "max-age=31536000", what
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, what
    if headers.get("Content-Type", "").startswith("application/json"):
        assert csp.startswith("default-src 'none'"), what


def _boom(*args, **kwargs):
    raise RuntimeError("injected fault")


def _broken_queue(*args, **kwargs):
    raise ConnectionError("injected: the queue is down")


def _busy(*args, **kwargs):
    raise ConcurrentUpdate("injected: the export kept changing")


class Walk:
    """Produces, for one operation, the answer with a given status."""

    def __init__(self, stack, monkeypatch):
        self.stack, self.monkeypatch = stack, monkeypatch

    def send(self, method, path, token="demo-owner-token", **kwargs):
        return self.stack.call(method, path, token=token, **kwargs)

    def active_export(self) -> str:
        return self.stack.start_export().json()["id"]

    def running_export(self) -> str:
        export = self.stack.submitted_export()
        self.stack.tick()
        return export["id"]

    def completed_with_failures(self) -> str:
        export = self.stack.submitted_export()
        self.stack.ml.configure(export["ml_task_id"], failed_rows=[0])
        self.stack.tick(), self.stack.tick()
        return export["id"]

    def path_for(self, template: str) -> str:
        return "/" + (
            template.replace("{project_id}", "1234")
            .replace("{subject_set_id}", "5678")
            .replace("{export_id}", UNKNOWN_EXPORT)
        )

    def answer(self, method: str, template: str, status: int) -> requests.Response:
        path = self.path_for(template)
        stack, patch = self.stack, self.monkeypatch
        is_start = template.endswith("/subject-sets/{subject_set_id}/exports")
        is_cancel = template.endswith("/cancel")
        is_rerun = template.endswith("/rerun")
        if is_rerun and status in (200, 202, 503):
            rerun = path.replace(UNKNOWN_EXPORT, self.completed_with_failures())
            if status == 200:
                self.send(method, rerun)  # now active: the same POST answers it
            if status == 503:
                patch.setattr(stack.services, "enqueue", _broken_queue)
            return self.send(method, rerun)
        if is_rerun and status in (400, 409):
            active = path.replace(UNKNOWN_EXPORT, self.active_export())
            return self.send(method, active, data=b"[1]" if status == 400 else b"")  # 409: not completed
        if status in (200, 202) and is_cancel:
            # A running task: a queued one may be submitted (and still listing its images, when
            # the ML service refuses to cancel) before the POST arrives, or not.
            export_id = self.running_export()
            return self.send(method, path.replace(UNKNOWN_EXPORT, export_id))
        if status in (200, 202) and "{export_id}" in template:
            export_id = self.active_export()
            return self.send(method, path.replace(UNKNOWN_EXPORT, export_id))
        if status == 200 and is_start:
            self.active_export()
        if status in (200, 202):
            return self.send(method, path)
        if status == 400:
            if is_cancel:
                return self.send(method, path.replace(UNKNOWN_EXPORT, self.active_export()), data=b"[1]")
            return self.send(method, path.replace("1234", "0"))
        if status == 401:
            return self.send(method, path, token=None)
        if status == 403:
            return self.send(method, path, token="demo-outsider-token")
        if status == 404:
            return self.send(method, path.replace("5678", "7777") if is_start else path)
        if status == 409:
            if is_cancel:
                export_id = self.active_export()
                self.send("POST", path.replace(UNKNOWN_EXPORT, export_id))
                return self.send(method, path.replace(UNKNOWN_EXPORT, export_id))  # export_final
            patch.setattr(stack.services.store, "create", _busy)
            return self.send(method, path)
        if status == 413:
            return self.send(method, path, data=b"{" + b" " * (64 * 1024) + b"}")
        if status == 429:
            patch.setattr(stack.services, "token_lookups", TokenBucket(0.001, 1))
            stack.services.token_lookups.take()  # empty
            return self.send(method, path, token="never-seen-before")
        if status == 500:
            patch.setattr(api, "_caller", _boom)
            return self.send(method, path)
        if status == 502:
            stack.panoptes.faults.add(r".*", "status", status=500)
            return self.send(method, path)
        if status == 503:
            if template == "api/health":
                patch.setattr(stack.services.store, "ping", _broken_queue)
            else:
                patch.setattr(stack.services, "enqueue", _broken_queue)
            return self.send(method, path)
        raise AssertionError(f"no way to produce {status} for {method} /{template}: add one here")


def documented_answers():
    """(method, template, status) for every answer the OpenAPI document lists."""
    document = openapi.document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status in operation["responses"]:
                yield method.upper(), path.lstrip("/"), int(status)


@pytest.mark.parametrize("method,template,status", sorted(documented_answers()))
def test_every_documented_answer_carries_the_security_headers(stack, monkeypatch, method, template, status):
    assert stack.services is not None  # the host's services, wired once: faults are injected into them
    response = Walk(stack, monkeypatch).answer(method, template, status)
    what = f"{method} /{template} -> {status}"
    assert response.status_code == status, (what, response.status_code, response.text[:300])
    assert_secure(response, what)


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/subject-assistant/1234/", 200),
        ("GET", "/static/app.js", 200),
        ("GET", "/static/styles.css", 200),
        ("GET", "/static/nope.js", 404),
        ("GET", "/static/" + "x" * 300 + ".js", 404),
        ("GET", "/nope/../x", 404),
        ("POST", "/", 404),
        ("GET", "/api/nope", 404),
        ("DELETE", "/api/exports/" + UNKNOWN_EXPORT, 405),
        ("PUT", "/api/health", 405),
    ],
)
def test_the_page_static_files_and_unmatched_paths_carry_them_too(stack, method, path, status):
    response = stack.call(method, path, token=None)
    assert response.status_code == status, (method, path, response.status_code)
    assert_secure(response, f"{method} {path}")


def test_a_function_that_fails_answers_json_500_with_them(stack, monkeypatch):
    import page.blueprint

    monkeypatch.setattr(page.blueprint, "page", _boom)
    response = stack.call("GET", "/", token=None)
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "injected" not in response.text
    assert_secure(response, "GET / failing")
