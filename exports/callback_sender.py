"""Sends one callback: resolves the receiver's host once, checks every address it resolved to
(exports/callbacks.py), and connects to exactly one of those addresses, so a name that resolves
to a public address when checked and to a private one when connected (DNS rebinding) cannot reach
inside. TLS still verifies the certificate against the host name. No redirects, a short timeout,
and at most a few KiB of the answer are read.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable

import urllib3
from urllib3.exceptions import HTTPError

from exports.callbacks import addresses_problem
from shared.outbound import USER_AGENT
from shared.urls import Url

Resolve = Callable[[str, int], list[str]]
ANSWER_LIMIT = 4096


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclasses.dataclass(frozen=True)
class Sent:
    status: int | None  # the receiver's HTTP status, None when none came back
    error: str | None  # why not, in words for the Export resource (no URL, no token)
    refused: bool = False  # not sent at all: the host is not one a callback may go to


class CallbackSender:
    def __init__(self, allow_private: bool, timeout: float, resolve: Resolve = resolve_host):
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolve = resolve

    def check_host(self, url: Url) -> str | None:
        """Why `url`'s host may not receive a callback now (None: it may)."""
        return addresses_problem(self.resolve(url.host, url.effective_port), self.allow_private)

    def post(self, url: Url, body: bytes, headers: dict[str, str]) -> Sent:
        addresses = self.resolve(url.host, url.effective_port)
        problem = addresses_problem(addresses, self.allow_private)
        if problem is not None:
            return Sent(None, f"not sent: {problem}", refused=True)
        address = addresses[0]
        timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        if url.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                address,
                url.effective_port,
                server_hostname=url.host,
                assert_hostname=url.host,
                retries=False,
                timeout=timeout,
                maxsize=1,
            )
        else:  # plain http: only with CALLBACK_ALLOW_PRIVATE (exports/callbacks.py)
            pool = urllib3.HTTPConnectionPool(
                address, url.effective_port, retries=False, timeout=timeout, maxsize=1
            )
        all_headers = {
            "Host": url.netloc,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            **headers,
        }
        try:
            with pool:
                response = pool.urlopen(
                    "POST",
                    url.target,
                    body=body,
                    headers=all_headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                )
                try:
                    response.read(ANSWER_LIMIT, decode_content=False)  # the answer is not used
                finally:
                    response.release_conn()
                return Sent(response.status, None)
        except (HTTPError, OSError, ValueError) as exc:
            return Sent(None, f"no answer ({type(exc).__name__})")
