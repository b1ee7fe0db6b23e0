"""Outbound HTTP for the Panoptes and ML service adapters, on urllib3 (what requests is built on).

Why not requests here: its session layer roughly doubles the CPU of a call (docs/DECISIONS.md),
and the hot paths are many calls: a 100,000-subject export reads 1,000 pages, a poll tick asks
about every active task. What requests adds beyond urllib3 (cookies, proxies and .netrc from
the environment, redirects) is what one pool shared by every user must not have anyway.
requests stays for the dev tools and tests.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError

from shared.urls import Url, UrlError, parse_url

USER_AGENT = "zooniverse-subject-assistant-export/1"
# The largest answer `request` reads (decoded): a Panoptes page is about 60 kB. Answers come from
# outside, so a huge or endlessly inflating one must not exhaust the worker's memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_READ = 64 * 1024


class OutboundError(Exception):
    """No (usable) HTTP answer arrived. `never_connected`: the request certainly never reached the
    server (connection refused, name not resolved, connect timeout), so it had no effect there."""

    def __init__(self, kind: str, never_connected: bool = False):
        super().__init__(kind)
        self.kind = kind
        self.never_connected = never_connected


class AnswerTooLarge(OutboundError):
    """The answer went past its byte limit; reading stopped there."""


class AnswerTooSlow(OutboundError):
    """The answer did not arrive whole within its total time limit; reading stopped there."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    data: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.data)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _checked(url: str | Url) -> Url:
    if isinstance(url, Url):
        return url
    try:
        return parse_url(url)
    except UrlError as exc:
        raise OutboundError(f"refused URL: {exc}", never_connected=True) from None


class OutboundHttp:
    """Connection pools for one service (one per origin): no retries, no redirects, no state
    between calls. The pools are urllib3's own, kept here by origin rather than in a
    PoolManager, whose per-call URL parsing and pool lookup showed in the poll tick's CPU.

    A URL is parsed once (shared/urls.py) and a pool is opened on exactly the scheme, host and port
    that parse found: nothing here reads the URL's text again, so what was checked is what is
    connected to."""

    def __init__(self, pool_size: int, timeout: float):
        self.timeout = timeout
        self._pool_size = pool_size
        self._default_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pools: dict[tuple[str, str, int], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, url: Url) -> urllib3.HTTPConnectionPool:
        origin = url.origin
        pool = self._pools.get(origin)
        if pool is None:
            with self._lock:
                pool = self._pools.get(origin)
                if pool is None:
                    scheme, host, port = origin
                    kind = urllib3.HTTPSConnectionPool if scheme == "https" else urllib3.HTTPConnectionPool
                    pool = kind(host, port, maxsize=self._pool_size, block=False, retries=False)
                    self._pools[origin] = pool
        return pool

    def request(
        self,
        method: str,
        url: str | Url,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        connect_timeout: float | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> HttpAnswer:
        """One request, its answer read whole (decoded, at most `max_bytes`)."""
        checked = _checked(url)
        target = checked.target
        if params:
            target += ("&" if checked.query is not None else "?") + urlencode(params)
        all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        timeout = (
            self._default_timeout
            if connect_timeout is None
            else urllib3.Timeout(connect=min(connect_timeout, self.timeout), read=self.timeout)
        )
        try:
            response = self._pool(checked).urlopen(
                method,
                target,
                body=body,
                headers=all_headers,
                timeout=timeout,
                redirect=False,
                retries=False,
                preload_content=False,
            )
            try:
                data = _read_bounded(response, max_bytes)
            except BaseException:
                response.close()  # half read: not reusable
                raise
            response.release_conn()
        except (HTTPError, OSError, ValueError) as exc:
            raise OutboundError(type(exc).__name__, isinstance(exc, ConnectTimeoutError)) from None
        return HttpAnswer(response.status, response.headers, data)

    @contextlib.contextmanager
    def stream(self, url: str | Url, *, max_bytes: int, deadline_seconds: float) -> Iterator[StreamedAnswer]:
        """GET `url` for reading as a stream: its body is read as sent (no decompression; a
        compressed answer is refused), stops past `max_bytes`, and the whole answer must arrive
        within `deadline_seconds` (each socket read also waits at most that long)."""
        checked = _checked(url)
        started = time.monotonic()
        wait = urllib3.Timeout(connect=min(10.0, deadline_seconds), read=min(self.timeout, deadline_seconds))
        try:
            response = self._pool(checked).urlopen(
                "GET",
                checked.target,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                timeout=wait,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
            )
        except (HTTPError, OSError, ValueError) as exc:
            raise OutboundError(type(exc).__name__, isinstance(exc, ConnectTimeoutError)) from None
        try:
            encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding != "identity":
                raise OutboundError(f"compressed answer (Content-Encoding: {encoding[:40]})")
            yield StreamedAnswer(
                response.status,
                response.headers,
                _BoundedBody(response, max_bytes, started + deadline_seconds),
            )
        finally:
            response.close()  # not returned to the pool: a connection left halfway is not reusable


@dataclass(frozen=True)
class StreamedAnswer:
    status: int
    headers: Mapping[str, str]
    body: _BoundedBody


class _BoundedBody:
    """File-like view of a streamed answer: `read` returns at most one socket read's worth of
    bytes, so the total deadline is checked between reads however slowly the bytes come."""

    def __init__(self, response: Any, max_bytes: int, deadline: float):
        self._response = response
        self._max_bytes = max_bytes
        self._deadline = deadline
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise AnswerTooSlow("the answer did not arrive within its time limit")
        try:
            data = self._response.read1(_READ if size is None or size < 0 else min(size, _READ))
        except (HTTPError, OSError, ValueError) as exc:
            if time.monotonic() > self._deadline:
                raise AnswerTooSlow("the answer did not arrive within its time limit") from None
            raise OutboundError(type(exc).__name__) from None
        self.bytes_read += len(data)
        if self.bytes_read > self._max_bytes:
            raise AnswerTooLarge(f"the answer is larger than {self._max_bytes} bytes")
        return data


def _read_bounded(response: Any, max_bytes: int) -> bytes:
    """The decoded body, at most `max_bytes` (urllib3 2.x inflates at most what each read asks,
    so a small compressed answer cannot balloon before the check)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(_READ)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge(f"the answer is larger than {max_bytes} bytes")
        chunks.append(chunk)
