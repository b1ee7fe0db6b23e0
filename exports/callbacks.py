"""Callbacks: what a caller may ask for, how the delivery is signed, and when it is tried again.
Pure functions; the sending is exports/callback_sender.py, the delivering exports/delivery.py.

A start POST may carry `{"callback_url": "https://…", "callback_token": "<16-256 printable
characters>"}` (both or neither). When the export becomes completed, failed or cancelled, the
Export resource is POSTed to the URL as JSON with `X-Signature-256: sha256=<hex HMAC-SHA256 of
the exact body bytes, keyed with the token>`. The URL is untrusted: https only, parsed by the one
URL parser (shared/urls.py), and its host must resolve only to public addresses, checked again on
the address actually connected to. CALLBACK_ALLOW_PRIVATE=true (local runs and tests) admits
loopback, private addresses and plain http.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
from typing import Any

from shared.urls import Url, UrlError, parse_url

SIGNATURE_HEADER = "X-Signature-256"
MIN_TOKEN, MAX_TOKEN = 16, 256
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(hours=1)


class InvalidCallback(ValueError):
    """The callback asked for cannot be used; the message says why, for the caller."""


@dataclasses.dataclass(frozen=True)
class CallbackRequest:
    url: Url
    token: str


def requested(body: dict[str, Any], allow_private: bool) -> CallbackRequest | None:
    """The callback a start POST's body asks for (None when it asks for none)."""
    url, token = body.get("callback_url"), body.get("callback_token")
    if url is None and token is None:
        return None
    if url is None or token is None:
        raise InvalidCallback("Give both callback_url and callback_token, or neither.")
    if not isinstance(token, str) or not MIN_TOKEN <= len(token) <= MAX_TOKEN:
        raise InvalidCallback(
            f"callback_token must be a string of {MIN_TOKEN} to {MAX_TOKEN} printable characters."
        )
    if not all(0x20 <= ord(c) < 0x7F for c in token):
        raise InvalidCallback("callback_token may hold only printable ASCII characters.")
    schemes = ("https", "http") if allow_private else ("https",)
    try:
        parsed = parse_url(url, schemes=schemes)
    except UrlError as exc:
        raise InvalidCallback(f"callback_url is not a usable https URL: {exc}.") from None
    literal = _address(parsed.host)
    if literal is not None and not allow_private and not is_public(literal):
        raise InvalidCallback("callback_url must be on a public host, not a private or loopback address.")
    return CallbackRequest(parsed, token)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a receiver may be at this address: globally routable unicast, IPv4 seen through
    an IPv4-mapped or 6to4 IPv6 address included (loopback, private, link-local, shared, reserved,
    multicast and unspecified addresses are not)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
    return address.is_global and not address.is_multicast


def addresses_problem(addresses: list[str], allow_private: bool) -> str | None:
    """Why a host that resolved to `addresses` may not receive a callback (None: it may)."""
    if not addresses:
        return "its host name does not resolve"
    if allow_private:
        return None
    for text in addresses:
        address = _address(text.split("%", 1)[0])
        if address is None or not is_public(address):
            return "its host resolves to a private, loopback or otherwise non-public address"
    return None


def signature(body: bytes, token: str) -> str:
    """The X-Signature-256 value: sha256=<hex HMAC-SHA256 of the exact body, keyed with the token>."""
    return "sha256=" + hmac.new(token.encode("utf-8"), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int) -> dt.timedelta:
    """Backoff after the `attempts`-th failed attempt: 30 s, doubling, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


def worth_retrying(status: int | None) -> bool:
    """A network error, 408, 425, 429 or 5xx may pass; any other answer will not change."""
    return status is None or status in (408, 425, 429) or status >= 500
