"""How settings are declared and read: each one is a dataclass field that carries its app-setting
name, default, parser and README text, so the code, the README table, the sample settings and the
Bicep template are all checked against one declaration (tests/unit/test_docs.py, tests/infra).

This module holds the machinery and the settings of the app's surroundings that any feature may
read (`AppSettings`: storage, Panoptes, browser origins). A feature declares its own settings in a
subclass (exports/settings.py) and reads them once with `load(cls, env)`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shared.names import STORAGE_CONNECTION
from shared.urls import UrlError, parse_url


class SettingsError(ValueError):
    """A setting is missing or malformed. The message names every offending setting."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a settings field declares (read back by `declared`)."""

    name: str  # the app setting
    field: str  # the attribute
    parse: Callable[[str], Any]
    default: str | None  # None: required
    doc: str
    secret: bool = False


def setting(
    name: str, parse: Callable[[str], Any], default: str | None, doc: str, secret: bool = False
) -> Any:
    """Declare a settings field: app setting `name`, parsed by `parse`, `default` (None: required;
    "" for an optional secret), `doc` for the README."""
    return dataclasses.field(repr=not secret, metadata={"setting": (name, parse, default, doc, secret)})


def declared(cls: type) -> tuple[Setting, ...]:
    """Every setting a settings class declares, in declaration order."""
    return tuple(
        Setting(meta[0], f.name, *meta[1:])
        for f in dataclasses.fields(cls)
        if (meta := f.metadata.get("setting"))
    )


# -- parsers ----------------------------------------------------------------------------------
def text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def http_url(value: str) -> str:
    """An http(s) URL that the one URL parser (shared/urls.py) accepts, without a trailing '/'."""
    value = value.strip().rstrip("/")
    try:
        url = parse_url(value)
    except UrlError as exc:
        raise ValueError(f"must be an http(s) URL: {exc}") from None
    if url.query is not None or url.fragment is not None:
        raise ValueError("must be an http(s) URL without a query string or fragment")
    return value


def is_loopback(url: str) -> bool:
    try:
        return parse_url(url).is_loopback
    except UrlError:
        return False


def service_url(value: str) -> str:
    """An https URL, or plain http on loopback only (local stand-ins): the service sends bearer
    tokens to Panoptes and SAS URLs to the ML service."""
    value = http_url(value)
    if parse_url(value).scheme != "https" and not is_loopback(value):
        raise ValueError("must be an https URL (plain http is allowed on loopback only)")
    return value


def link_prefix(value: str) -> str:
    """The prefix of a link that ends in an id appended verbatim (".../#/tasks/" + id): https, and
    ending in '/' or holding a '#', so that no id can change the link's host or port."""
    value = value.strip()  # not stripped of "/"
    try:
        url = parse_url(value, schemes=("https",))
    except UrlError as exc:
        raise ValueError(f"must be an https URL: {exc}") from None
    if not value.endswith("/") and url.fragment is None:
        raise ValueError(
            "must end in '/' or contain '#' (e.g. https://subject-assistant.zooniverse.org/#/tasks/), "
            "so that the appended ML task id can only extend its path"
        )
    return value


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError("must be true or false")
    return lowered == "true"


def number_range(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = kind(value.strip())
        except ValueError:
            raise ValueError("must be a whole number" if kind is int else "must be a number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return number

    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    return number_range(int, low, high)


def float_range(low: float, high: float) -> Callable[[str], float]:
    return number_range(float, low, high)


def ncrontab(value: str) -> str:
    fields = value.split()
    if len(fields) != 6:
        raise ValueError("must be an NCRONTAB expression with 6 fields (seconds first)")
    return " ".join(fields)


def origins(value: str) -> tuple[str, ...]:
    found = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if not found:
        raise ValueError("must list at least one origin")
    for origin in found:
        if origin == "*":
            raise ValueError("must not be '*': the API takes bearer tokens from browsers")
        if parse_url(http_url(origin)).path:
            raise ValueError(f"must list origins (scheme://host[:port]) without a path, not {origin[:80]!r}")
    return found


def host_patterns(value: str) -> tuple[str, ...]:
    """Comma-separated host names; `*.example.net` allows any host under example.net."""
    found = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    for host in found:
        if not re.fullmatch(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", host):
            raise ValueError(f"must be host names such as *.blob.core.windows.net, not {host!r}")
    return found


def random_key(value: str) -> bytes:
    """A random key of at least 32 bytes in URL-safe base64 (what Fernet.generate_key() prints)."""
    raw = value.strip()
    try:
        key = base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4))
        if not re.fullmatch(r"[A-Za-z0-9_-]+=*", raw):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeError):
        raise ValueError(
            'must be URL-safe base64 (make one with: python -c "from '
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        ) from None
    if len(key) < 32:
        raise ValueError(
            f"must hold at least 32 random bytes, not {len(key)} (make one with: python "
            '-c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        )
    return key


def optional_random_key(value: str) -> bytes | None:
    return random_key(value) if value.strip() else None


# -- storage: a connection string or the identity-based form ---------------------------------
# Identity-based connection (Azure): AzureWebJobsStorage__{blob,queue,table}ServiceUri etc.
STORAGE_IDENTITY_SUFFIXES = ("blobServiceUri", "queueServiceUri", "tableServiceUri", "credential", "clientId")


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    """Either a connection string or the three service URIs with an identity."""

    connection_string: str | None = None
    blob_uri: str | None = None
    queue_uri: str | None = None
    table_uri: str | None = None
    client_id: str | None = None  # user-assigned managed identity; None = default credential

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    def __repr__(self) -> str:  # never print account keys
        if self.connection_string is not None:
            return "StorageSettings(connection_string=<redacted>)"
        return f"StorageSettings(blob_uri={self.blob_uri!r}, client_id={self.client_id!r})"


def storage_from_env(env: Mapping[str, str]) -> StorageSettings:
    name = STORAGE_CONNECTION
    connection_string = (env.get(name) or "").strip()
    if connection_string:
        if connection_string != "UseDevelopmentStorage=true" and "AccountName=" not in connection_string:
            raise ValueError(
                f"{name} must be a storage connection string (or use the "
                f"identity-based {name}__*ServiceUri settings)."
            )
        return StorageSettings(connection_string=connection_string)
    prefix = name + "__"
    account = (env.get(prefix + "accountName") or "").strip()
    uris = {}
    for service in ("blob", "queue", "table"):
        uri = (env.get(f"{prefix}{service}ServiceUri") or "").strip()
        if not uri and account:
            uri = f"https://{account}.{service}.core.windows.net"
        if not uri:
            raise ValueError(
                f"{name} is required: a connection string, or {prefix}blobServiceUri, "
                f"{prefix}queueServiceUri and {prefix}tableServiceUri (identity-based)."
            )
        try:
            uris[service] = http_url(uri)
        except ValueError:
            raise ValueError(f"{prefix}{service}ServiceUri must be an http(s) URL.") from None
    credential = (env.get(prefix + "credential") or "").strip().lower()
    if credential and credential != "managedidentity":
        raise ValueError(f"{prefix}credential must be 'managedidentity' when set.")
    client_id = (env.get(prefix + "clientId") or "").strip() or None
    return StorageSettings(
        blob_uri=uris["blob"], queue_uri=uris["queue"], table_uri=uris["table"], client_id=client_id
    )


# -- the app's surroundings, and reading a settings class ------------------------------------
S = TypeVar("S", bound="AppSettings")


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """Settings of the app's surroundings, shared by every feature."""

    storage: StorageSettings
    panoptes_url: str = setting(
        "PANOPTES_URL",
        service_url,
        "https://www.zooniverse.org",
        "Panoptes base URL (API under /api, OAuth under /oauth); https except on loopback.",
    )
    allowed_origins: tuple[str, ...] = setting(
        "ALLOWED_ORIGINS",
        origins,
        "https://subject-assistant.zooniverse.org",
        "Comma-separated browser origins allowed by CORS (platform CORS in Azure, `Host.CORS` locally).",
    )

    def check(self) -> list[str]:
        """Rules across settings; a subclass adds its own. Problems, each naming its setting."""
        return []

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        """Read and validate every setting the class declares; SettingsError names each bad one."""
        return load(cls, env)


def load(cls: type[S], env: Mapping[str, str]) -> S:
    """Read and validate every setting `cls` declares; SettingsError names each bad one."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for item in declared(cls):
        raw = env.get(item.name)
        if raw is None or (raw.strip() == "" and item.default is not None):
            raw = item.default
        if raw is None or (raw.strip() == "" and not item.secret):
            problems.append(f"{item.name} is required: {item.doc}")
            continue
        try:
            values[item.field] = item.parse(raw)
        except ValueError as exc:
            problems.append(f"{item.name} {exc}.")
    try:
        values["storage"] = storage_from_env(env)
    except ValueError as exc:
        problems.append(str(exc))
    if not problems:
        loaded = cls(**values)
        problems = loaded.check()
        if not problems:
            return loaded
    raise SettingsError("Invalid settings: " + " ".join(problems))
