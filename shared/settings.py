"""The service's settings: one object, read from the environment once and validated.

Every setting the code reads is declared in `SETTINGS` below (name, default, parser), so the
README, `local.settings.sample.json` and the Bicep template can be checked against one list.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from shared.names import STORAGE_CONNECTION


class SettingsError(ValueError):
    """A setting is missing or malformed. The message names every offending setting."""


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _http_url(value: str) -> str:
    value = value.strip().rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return value


def _link_prefix(value: str) -> str:
    # Not stripped of "/": the task id is appended verbatim (".../#/tasks/" + id).
    value = value.strip()
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return value


def _container(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", value):
        raise ValueError("must be a valid blob container name (3-63 of a-z, 0-9, single '-')")
    return value


def _secret(value: str) -> str:
    if len(value.strip()) < 32:
        raise ValueError("must be at least 32 characters of random text")
    return value.strip()


def _optional_secret(value: str) -> str | None:
    return _secret(value) if value.strip() else None


def _ncrontab(value: str) -> str:
    fields = value.split()
    if len(fields) != 6:
        raise ValueError("must be an NCRONTAB expression with 6 fields (seconds first)")
    return " ".join(fields)


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    if not origins:
        raise ValueError("must list at least one origin")
    for origin in origins:
        if origin == "*":
            raise ValueError("must not be '*': the API takes bearer tokens from browsers")
        _http_url(origin)
    return origins


def _number_range(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def parse(value: str):
        try:
            number = kind(value.strip())
        except ValueError:
            raise ValueError("must be a whole number" if kind is int else "must be a number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    return _number_range(int, low, high)


def _float_range(low: float, high: float) -> Callable[[str], float]:
    return _number_range(float, low, high)


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    field: str
    parse: Callable[[str], Any]
    default: str | None  # None: required
    doc: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("PANOPTES_URL", "panoptes_url", _http_url, "https://www.zooniverse.org",
            "Panoptes base URL (API under /api)."),
    Setting("SUBJECT_ASSISTANT_ML_SERVICE_URL", "ml_service_url", _http_url, None,
            "MegaDetector batch API base, e.g. http://host/v4/camera-trap/detection-batch."),
    Setting("SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID", "ml_caller_id", _text, None,
            "The `caller` on the ML service's allowlist."),
    Setting("SUBJECT_ASSISTANT_EXTERNAL_URL", "external_url", _link_prefix,
            "https://subject-assistant.zooniverse.org/#/tasks/",
            "Prefix of the Subject Assistant link; the ML task id is appended."),
    Setting("SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME", "container_name", _container,
            "subject-assistant-manifests", "Blob container for manifests."),
    Setting("TOKEN_ENCRYPTION_KEY", "token_encryption_key", _secret, None,
            "Secret (>= 32 chars) from which the key that encrypts queued Panoptes tokens is derived.",
            secret=True),
    Setting("TOKEN_ENCRYPTION_KEY_PREVIOUS", "token_encryption_key_previous", _optional_secret, "",
            "During a key rotation: the old TOKEN_ENCRYPTION_KEY, still accepted for decryption.",
            secret=True),
    Setting("ML_POLL_SCHEDULE", "ml_poll_schedule", _ncrontab, "0 */10 * * * *",
            "NCRONTAB schedule of the ML poller (read by the timer binding as %ML_POLL_SCHEDULE%)."),
    Setting("ALLOWED_ORIGINS", "allowed_origins", _origins,
            "https://subject-assistant.zooniverse.org",
            "Comma-separated browser origins allowed by CORS."),
    # Tunables of this service (documented in the README).
    Setting("PANOPTES_PAGE_CONCURRENCY", "panoptes_page_concurrency", _int_range(1, 32), "8",
            "Subject pages fetched from Panoptes at once during an export."),
    Setting("PANOPTES_TIMEOUT_SECONDS", "panoptes_timeout_seconds", _float_range(1, 120), "30",
            "Timeout of one Panoptes request."),
    Setting("PANOPTES_RETRIES", "panoptes_retries", _int_range(0, 10), "4",
            "Retries of one Panoptes request after a 5xx, 429 or network error (backoff doubles)."),
    Setting("PANOPTES_RETRY_BACKOFF_SECONDS", "panoptes_retry_backoff_seconds", _float_range(0, 60), "0.5",
            "First backoff between Panoptes retries (a 429's Retry-After wins)."),
    Setting("AUTH_CACHE_SECONDS", "auth_cache_seconds", _int_range(0, 300), "60",
            "How long a token's user and role lookups are reused (keyed by a hash of the token)."),
    Setting("ML_TIMEOUT_SECONDS", "ml_timeout_seconds", _float_range(1, 300), "60",
            "Timeout of one ML service request."),
    Setting("MANIFEST_SAS_HOURS", "manifest_sas_hours", _int_range(1, 168), "72",
            "Lifetime of the manifest's read-only SAS (at most 7 days). The ML service reads the "
            "manifest when it accepts the job; the SAS is made just before submitting."),
    Setting("TRANSIENT_RETRY_HOURS", "transient_retry_hours", _float_range(0, 168), "24",
            "How long an export keeps retrying Panoptes/ML outages and ML 'too many jobs' before failing."),
    Setting("RETRY_DELAY_SECONDS", "retry_delay_seconds", _float_range(0, 3600), "30",
            "First delay before an export retries a transient fault; doubles each time (max 30 min)."),
    Setting("BUILD_LEASE_SECONDS", "build_lease_seconds", _int_range(2, 3600), "300",
            "How long a worker's claim on an export lasts without renewal; a duplicate message "
            "steps aside until then, and a crashed worker's export is taken over after it."),
    Setting("ML_POLL_CONCURRENCY", "ml_poll_concurrency", _int_range(1, 256), "32",
            "ML task status requests in flight at once during a poll tick."),
    Setting("ML_TASK_DEADLINE_DAYS", "ml_task_deadline_days", _float_range(0.00001, 365), "28",
            "An export not final this long after submission fails with deadline_exceeded."),
    Setting("ML_NOT_FOUND_TICKS", "ml_not_found_ticks", _int_range(1, 100), "3",
            "Consecutive 404s from the ML service before an export fails with ml_task_not_found."),
    Setting("STUCK_EXPORT_MINUTES", "stuck_export_minutes", _float_range(0.01, 1440), "30",
            "A queued/building export untouched this long is re-queued once, then failed."),
    Setting("LIKELY_EMPTY_CONFIDENCE", "likely_empty_confidence", _float_range(0, 1), "0.2",
            "Images whose max_detection_conf is below this count as likely empty in the summary."),
)

# Identity-based connection (Azure): AzureWebJobsStorage__{blob,queue,table}ServiceUri etc.
STORAGE_IDENTITY_SUFFIXES = ("blobServiceUri", "queueServiceUri", "tableServiceUri", "credential",
                             "clientId")


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


@dataclasses.dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    panoptes_url: str
    ml_service_url: str
    ml_caller_id: str
    external_url: str
    container_name: str
    token_encryption_key: str = dataclasses.field(repr=False)
    token_encryption_key_previous: str | None = dataclasses.field(repr=False)
    ml_poll_schedule: str
    allowed_origins: tuple[str, ...]
    panoptes_page_concurrency: int
    panoptes_timeout_seconds: float
    panoptes_retries: int
    panoptes_retry_backoff_seconds: float
    auth_cache_seconds: int
    ml_timeout_seconds: float
    manifest_sas_hours: int
    transient_retry_hours: float
    retry_delay_seconds: float
    build_lease_seconds: int
    ml_poll_concurrency: int
    ml_task_deadline_days: float
    ml_not_found_ticks: int
    stuck_export_minutes: float
    likely_empty_confidence: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        problems: list[str] = []
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.name)
            if raw is None or (raw.strip() == "" and setting.default is not None):
                raw = setting.default
            if raw is None or (raw.strip() == "" and not setting.secret):
                problems.append(f"{setting.name} is required: {setting.doc}")
                continue
            try:
                values[setting.field] = setting.parse(raw)
            except ValueError as exc:
                problems.append(f"{setting.name} {exc}.")
        try:
            values["storage"] = _storage_from_env(env)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsError("Invalid settings: " + " ".join(problems))
        return cls(**values)


def _storage_from_env(env: Mapping[str, str]) -> StorageSettings:
    name = STORAGE_CONNECTION
    connection_string = (env.get(name) or "").strip()
    if connection_string:
        if connection_string != "UseDevelopmentStorage=true" and "AccountName=" not in connection_string:
            raise ValueError(f"{name} must be a storage connection string (or use the "
                             f"identity-based {name}__*ServiceUri settings).")
        return StorageSettings(connection_string=connection_string)
    prefix = name + "__"
    account = (env.get(prefix + "accountName") or "").strip()
    uris = {}
    for service in ("blob", "queue", "table"):
        uri = (env.get(f"{prefix}{service}ServiceUri") or "").strip()
        if not uri and account:
            uri = f"https://{account}.{service}.core.windows.net"
        if not uri:
            raise ValueError(f"{name} is required: a connection string, or {prefix}blobServiceUri, "
                             f"{prefix}queueServiceUri and {prefix}tableServiceUri (identity-based).")
        try:
            uris[service] = _http_url(uri)
        except ValueError:
            raise ValueError(f"{prefix}{service}ServiceUri must be an http(s) URL.") from None
    credential = (env.get(prefix + "credential") or "").strip().lower()
    if credential and credential != "managedidentity":
        raise ValueError(f"{prefix}credential must be 'managedidentity' when set.")
    client_id = (env.get(prefix + "clientId") or "").strip() or None
    return StorageSettings(blob_uri=uris["blob"], queue_uri=uris["queue"], table_uri=uris["table"],
                           client_id=client_id)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Raises SettingsError naming bad settings."""
    return Settings.from_env(os.environ)
