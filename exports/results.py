"""The ML service's detections link: whether we may follow it (and show it).

The URL comes from the ML service's answer, so it is untrusted input: it is followed (and shown to
users as `results_url`) only when it is https on an allowed host (the Azure blob hosts by default,
where the real service writes its output) or on the ML service's own origin, scheme included (how
the local emulator serves it), parsed once by the one URL parser (shared/urls.py). Anything else
is neither fetched nor returned. The file itself is read by exports/accounting.py, through a
download bounded in bytes and in total time (shared/outbound.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.urls import Url, UrlError, parse_url


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class ResultsPolicy:
    allowed_hosts: tuple[str, ...]  # "host" or "*.domain"
    ml_origin: tuple[str, str, int]  # (scheme, host, port) of the ML service, always allowed


def describe(url: str) -> str:
    """The URL as it may be logged: no query string (a SAS signature lives there), no user info."""
    try:
        return parse_url(url).without_query[:200]
    except UrlError:
        pass
    try:  # for the log only: what a refused link looked like, without its secrets
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.netloc:
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"[:200]
    return f"{parts.scheme}: URL"[:200]


def checked_url(url: Any, policy: ResultsPolicy) -> Url:
    """The detections URL parsed once (shared/urls.py), or UrlProblem saying why it must not be
    followed. The download connects to exactly the parsed host and port."""
    if not isinstance(url, str):
        raise UrlProblem("The ML service reported no usable results link.")
    try:
        parsed = parse_url(url)
    except UrlError as exc:
        raise UrlProblem(f"The ML service reported a results link that is not followed: {exc}.") from None
    if parsed.origin == policy.ml_origin:
        return parsed  # the service's own origin, scheme included
    if parsed.scheme != "https":
        raise UrlProblem(
            f"The ML service reported a results link with scheme '{parsed.scheme}'; "
            "only https links are followed."
        )
    if parsed.effective_port != 443 or not any(_host_matches(parsed.host, p) for p in policy.allowed_hosts):
        raise UrlProblem(
            f"The ML service reported results on host '{parsed.netloc}', which is not an allowed "
            "results host (RESULTS_ALLOWED_HOSTS)."
        )
    return parsed


def url_problem(url: Any, policy: ResultsPolicy) -> str | None:
    """Why the detections URL must not be followed, or None when it may be."""
    try:
        checked_url(url, policy)
    except UrlProblem as exc:
        return str(exc)
    return None


class UrlProblem(ValueError):
    """The results link must not be followed (nor shown); the message says why, for people."""


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}
