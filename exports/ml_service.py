"""MlServiceClient: the MegaDetector batch API v4 calls (submit, status, cancel).

Errors are classified by what they mean for at-most-once submission:
- MlBusy / MlUnavailable: the service certainly did not accept the job (503 "too many active
  jobs", another 5xx, or the connection was never made): safe to retry later.
- MlRejected: a 4xx; retrying will not help.
- MlOutcomeUnknown: the request was sent but no answer came (read timeout, dropped
  connection): the job may exist, so it must not be sent again.
"""
from __future__ import annotations

import http.cookiejar
import re
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

REQUEST_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,92}")


class MlError(Exception):
    pass


class MlBusy(MlError):
    """503: too many active jobs. Back off and retry: not a failure."""


class MlUnavailable(MlError):
    """The service was unreachable or answered 5xx before accepting anything."""


class MlRejected(MlError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class MlOutcomeUnknown(MlError):
    """The request may have been accepted: no answer arrived."""


class MlTaskNotFound(MlError):
    pass


@dataclass(frozen=True)
class TaskStatus:
    status: str
    message: Any  # str, dict (completed) or None


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500].strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:500]
    return str(body)[:500]


def _never_connected(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


class MlServiceClient:
    def __init__(self, base_url: str, caller: str, timeout: float = 60,
                 session: requests.Session | None = None):
        self.base = base_url.rstrip("/")
        self.caller = caller
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            session.trust_env = False  # as in exports/panoptes.py: no per-request env lookups
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=256, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session

    def submit(self, manifest_sas_url: str, request_name: str) -> str:
        """POST request_detections; returns the task id. Never retried here: see module doc."""
        if not REQUEST_NAME_PATTERN.fullmatch(request_name):
            raise ValueError("request_name must be 1-92 characters of [A-Za-z0-9_-]")
        body = {"images_requested_json_sas": manifest_sas_url, "use_url": "true",
                "request_name": request_name, "caller": self.caller}
        try:
            response = self._session.post(f"{self.base}/request_detections", json=body,
                                          timeout=(min(self.timeout, 10), self.timeout))
        except requests.RequestException as exc:
            if _never_connected(exc):
                raise MlUnavailable(f"ML service unreachable ({type(exc).__name__})") from None
            raise MlOutcomeUnknown(f"no answer from the ML service ({type(exc).__name__})") from None
        if response.status_code == 200:
            try:
                task_id = response.json().get("request_id")
            except (ValueError, AttributeError):
                task_id = None
            if not isinstance(task_id, str) or not task_id:
                raise MlOutcomeUnknown("the ML service answered 200 without a request_id")
            return task_id
        message = _error_text(response)
        if response.status_code == 503:
            raise MlBusy(message)
        if response.status_code >= 500:
            raise MlUnavailable(f"ML service answered {response.status_code}: {message}")
        raise MlRejected(response.status_code, message)

    def status(self, task_id: str) -> TaskStatus:
        try:
            response = self._session.get(f"{self.base}/task/{task_id}", timeout=self.timeout)
        except requests.RequestException as exc:
            raise MlUnavailable(f"ML service unreachable ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise MlTaskNotFound(_error_text(response))
        if response.status_code != 200:
            raise MlUnavailable(f"ML service answered {response.status_code}")
        try:
            status = response.json()["Status"]
            return TaskStatus(status=str(status["request_status"]), message=status.get("message"))
        except (ValueError, KeyError, TypeError):
            raise MlUnavailable("ML service answered a malformed task status") from None

    def cancel(self, task_id: str) -> str:
        try:
            response = self._session.post(f"{self.base}/cancel_request", timeout=self.timeout,
                                          json={"caller": self.caller, "request_id": task_id})
        except requests.RequestException as exc:
            raise MlUnavailable(f"ML service unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500:
            raise MlUnavailable(f"ML service answered {response.status_code}")
        if response.status_code >= 400:
            raise MlRejected(response.status_code, _error_text(response))
        return response.text[:500]

    def download_json(self, url: str) -> Any:
        """The detections file (served by Azure Blob with its own SAS)."""
        response = self._session.get(url, timeout=self.timeout)
        response.raise_for_status()
        return response.json()
