"""One URL parser for every URL that comes from outside (the ML service's answers, callers) or
from settings: parsed once, strictly, and then used only through its parts.

Why: a URL checked by one parser and fetched by another can reach a different host. urlsplit
reads `https://127.0.0.1\\.x.blob.core.windows.net/` as a host under blob.core.windows.net;
urllib3 (and browsers) end the host at the backslash and connect to 127.0.0.1. So the check and
the connection must use the same parsed host and port (shared/outbound.py opens its pools from a
`Url`'s parts, never by re-parsing text), and anything two parsers could read differently is
refused outright:
- only the characters RFC 3986 allows, in printable ASCII (no whitespace, control characters,
  backslashes or non-ASCII; an international name must be given in its xn-- form), and `%` only
  as a well-formed escape, and never in the host;
- no user info (`user@`), no empty port, a port without leading zeros;
- a host is a DNS name of letters, digits and hyphens without a trailing dot, a canonical dotted
  IPv4 address, or a bracketed IPv6 address without a zone; a name whose last label looks
  numeric must be a canonical IPv4 address (`0x7f.1`, `127.1` and `1.2.3.4.5` are refused:
  resolvers and browsers read such names as addresses);
- finally urllib.parse and urllib3 must both read the same scheme, host, port, path and query.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

_ALLOWED = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SHAPE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?P<path>/[^?#]*)?"
    r"(?:\?(?P<query>[^#]*))?"
    r"(?:#(?P<fragment>.*))?"
)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class UrlError(ValueError):
    """Why a URL is refused, in words for a person (never the URL itself: it may hold a SAS)."""


@dataclasses.dataclass(frozen=True)
class Url:
    """A URL as parsed once. `host` is lower case, IPv6 without brackets."""

    text: str
    scheme: str
    host: str
    port: int | None  # as written; None when the scheme's default
    path: str
    query: str | None
    fragment: str | None

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        """What a connection goes to: (scheme, host, port)."""
        return self.scheme, self.host, self.effective_port

    @property
    def target(self) -> str:
        """The request target sent to `origin`: path and query."""
        return (self.path or "/") + (f"?{self.query}" if self.query is not None else "")

    @property
    def without_query(self) -> str:
        """Safe to log or show: no query string (a SAS signature lives there), no fragment."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return self.text


def parse_url(value: object, schemes: tuple[str, ...] = ("http", "https")) -> Url:
    """`value` parsed strictly (module doc), or UrlError saying why not."""
    if not isinstance(value, str) or not value:
        raise UrlError("it is not a URL")
    if len(value) > MAX_URL_LENGTH:
        raise UrlError(f"it is longer than {MAX_URL_LENGTH} characters")
    if not _ALLOWED.fullmatch(value):
        raise UrlError(
            "it contains characters a URL may not hold (spaces, control characters, backslashes, "
            "quotes or non-ASCII letters)"
        )
    if _BAD_ESCAPE.search(value):
        raise UrlError("it contains a malformed %-escape")
    shape = _SHAPE.fullmatch(value)
    if shape is None:
        raise UrlError(
            "it is not of the form scheme://host[:port]/path (user names, passwords and empty ports "
            "are not accepted)"
        )
    scheme = shape["scheme"].lower()
    if scheme not in schemes:
        raise UrlError(f"its scheme must be {' or '.join(schemes)}, not {scheme[:20]}")
    host = _host(shape["host"])
    port = int(shape["port"]) if shape["port"] else None
    if port is not None and port > 65535:
        raise UrlError("its port is out of range")
    url = Url(
        text=value,
        scheme=scheme,
        host=host,
        port=port,
        path=shape["path"] or "",
        query=shape["query"],
        fragment=shape["fragment"],
    )
    _same_for_other_parsers(url)
    return url


def _host(raw: str) -> str:
    host = raw.lower()
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlError("its host is not a valid IPv6 address") from None
        return str(address)
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlError("its host is not a valid host name (letters, digits, hyphens and dots only)")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            canonical = str(ipaddress.IPv4Address(host))
        except ValueError:
            canonical = None
        if canonical != host:
            raise UrlError("its host looks like an IP address but is not a plain dotted IPv4 address")
    return host


def _same_for_other_parsers(url: Url) -> None:
    """Belt and braces: the standard library and urllib3 must read exactly what we read."""
    # Imported here, not at the top: settings are declared with this module, and importing
    # function_app for indexing must not load urllib3 (cold start, tests/unit/test_cold_start.py).
    from urllib3.util import parse_url as urllib3_parse_url

    try:
        split = urlsplit(url.text)
        theirs = urllib3_parse_url(url.text)
        split_port = split.port
    except ValueError:
        raise UrlError("it is read differently by different URL parsers") from None
    ours_host = url.host
    urllib3_host = (theirs.host or "").lower().strip("[]")
    if (
        split.scheme != url.scheme
        or (split.hostname or "") != ours_host
        or split_port != url.port
        or split.path != url.path
        or (split.query or None) != (url.query or None)
        or (theirs.scheme or "").lower() != url.scheme
        or urllib3_host != ours_host
        or theirs.port != url.port
        or (theirs.path or "") != url.path
        or (theirs.query or None) != (url.query or None)
    ):
        raise UrlError("it is read differently by different URL parsers")
