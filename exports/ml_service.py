"""MlServiceClient: the MegaDetector batch API v4 calls (submit, status, cancel).

Errors are classified by what they mean for at-most-once submission:
- MlBusy / MlUnavailable: the service certainly did not accept the job (503 "too many active
  jobs", another 5xx, or the connection was never made): safe to retry later.
- MlRejected: a 4xx; retrying will not help.
- MlOutcomeUnknown: the request was sent but no answer came (read timeout, dropped
  connection): the job may exist, so it must not be sent again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exports.results import ByteStream
from shared.outbound import AnswerTooLarge, AnswerTooSlow, HttpAnswer, OutboundError, OutboundHttp
from shared.telemetry import traced
from shared.urls import Url

REQUEST_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,92}")
# A task id goes into URLs (the status path, the Subject Assistant link) and the cancel body: only
# ids of this shape are used (the real service's are 32 hex digits).
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


class MlUnusableTaskId(MlError):
    """The service accepted the job but answered a task id this service will not use in a URL."""


@dataclass(frozen=True)
class TaskStatus:
    status: str
    message: Any  # str, dict (completed) or None
    num_images: int | None = None  # images the service kept after its own filtering (once running)


class ResultsUnreadable(MlError):
    """The detections file could not be read; the message says why, for the user."""


def _error_text(response: HttpAnswer) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500].strip() or f"HTTP {response.status}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:500]
    return str(body)[:500]


class MlServiceClient:
    def __init__(self, base_url: str, caller: str, timeout: float = 60, http: OutboundHttp | None = None):
        self.base = base_url.rstrip("/")
        self.caller = caller
        self.timeout = timeout
        # Pool sized for the poller's concurrency (ML_POLL_CONCURRENCY is at most 256).
        self._http = traced(http or OutboundHttp(pool_size=256, timeout=timeout), "ML service")

    def submit(self, manifest_sas_url: str, request_name: str) -> str:
        """POST request_detections; returns the task id. Never retried here: see module doc."""
        if not REQUEST_NAME_PATTERN.fullmatch(request_name):
            raise ValueError("request_name must be 1-92 characters of [A-Za-z0-9_-]")
        body = {
            "images_requested_json_sas": manifest_sas_url,
            "use_url": "true",
            "request_name": request_name,
            "caller": self.caller,
        }
        try:
            response = self._http.request(
                "POST", f"{self.base}/request_detections", json_body=body, connect_timeout=10
            )
        except OutboundError as exc:
            if exc.never_connected:
                raise MlUnavailable(f"ML service unreachable ({exc.kind})") from None
            raise MlOutcomeUnknown(f"no answer from the ML service ({exc.kind})") from None
        if response.status == 200:
            try:
                task_id = response.json().get("request_id")
            except (ValueError, AttributeError):
                task_id = None
            if not isinstance(task_id, str) or not task_id:
                raise MlOutcomeUnknown("the ML service answered 200 without a request_id")
            if not TASK_ID_PATTERN.fullmatch(task_id):
                raise MlUnusableTaskId(
                    "the ML service answered a task id that is not 1-64 letters, digits, '-' or '_'"
                )
            return task_id
        message = _error_text(response)
        if response.status == 503:
            raise MlBusy(message)
        if response.status >= 500:
            raise MlUnavailable(f"ML service answered {response.status}: {message}")
        raise MlRejected(response.status, message)

    def status(self, task_id: str) -> TaskStatus:
        if not TASK_ID_PATTERN.fullmatch(task_id):
            raise MlTaskNotFound("not a task id this service uses")
        try:
            response = self._http.request("GET", f"{self.base}/task/{task_id}")
        except OutboundError as exc:
            raise MlUnavailable(f"ML service unreachable ({exc.kind})") from None
        if response.status == 404:
            raise MlTaskNotFound(_error_text(response))
        if response.status != 200:
            raise MlUnavailable(f"ML service answered {response.status}")
        try:
            status = response.json()["Status"]
            num_images = status.get("num_images")
            return TaskStatus(
                status=str(status["request_status"]),
                message=status.get("message"),
                num_images=num_images
                if isinstance(num_images, int) and not isinstance(num_images, bool) and num_images >= 0
                else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MlUnavailable("ML service answered a malformed task status") from None

    def cancel(self, task_id: str) -> str:
        if not TASK_ID_PATTERN.fullmatch(task_id):
            raise MlTaskNotFound("not a task id this service uses")
        try:
            response = self._http.request(
                "POST",
                f"{self.base}/cancel_request",
                json_body={"caller": self.caller, "request_id": task_id},
            )
        except OutboundError as exc:
            raise MlUnavailable(f"ML service unreachable ({exc.kind})") from None
        if response.status == 404:
            raise MlTaskNotFound(_error_text(response))
        if response.status >= 500:
            raise MlUnavailable(f"ML service answered {response.status}")
        if response.status >= 400:
            raise MlRejected(response.status, _error_text(response))
        return response.text[:500]

    @contextlib.contextmanager
    def results(self, url: Url, max_bytes: int, deadline_seconds: float) -> Iterator[ByteStream]:
        """The detections file as a bounded stream (its URL must have passed the results policy,
        exports/results.py). ResultsUnreadable says why it cannot be read, for the user."""
        megabytes = max_bytes // (1024 * 1024)
        try:
            with self._http.stream(url, max_bytes=max_bytes, deadline_seconds=deadline_seconds) as answer:
                if answer.status != 200:
                    raise ResultsUnreadable(
                        f"The detections file could not be downloaded (HTTP {answer.status})."
                    )
                yield answer.body
        except AnswerTooLarge:
            raise ResultsUnreadable(
                f"The detections file is larger than the {megabytes} MB this "
                "service reads (RESULTS_MAX_MEGABYTES)."
            ) from None
        except AnswerTooSlow:
            raise ResultsUnreadable(
                f"The detections file did not download within "
                f"{deadline_seconds:g} s (RESULTS_DOWNLOAD_SECONDS)."
            ) from None
        except OutboundError as exc:
            raise ResultsUnreadable(f"The detections file could not be downloaded ({exc.kind}).") from None
