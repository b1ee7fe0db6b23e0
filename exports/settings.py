"""The export feature's settings, each declared once (see shared/settings.py for how)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re

from exports.results import ResultsPolicy
from shared.settings import (
    AppSettings,
    boolean,
    declared,
    float_range,
    host_patterns,
    http_url,
    int_range,
    is_loopback,
    link_prefix,
    load,
    ncrontab,
    optional_random_key,
    random_key,
    setting,
    text,
)
from shared.urls import parse_url


def container_name(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", value):
        raise ValueError("must be a valid blob container name (3-63 of a-z, 0-9, single '-')")
    return value


@dataclasses.dataclass(frozen=True)
class ExportSettings(AppSettings):
    ml_service_url: str = setting(
        "SUBJECT_ASSISTANT_ML_SERVICE_URL",
        http_url,
        None,
        "MegaDetector batch API base, e.g. https://host/v4/camera-trap/detection-batch; https "
        "except on loopback (or with ML_SERVICE_ALLOW_HTTP).",
    )
    ml_caller_id: str = setting(
        "SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID", text, None, "The `caller` on the ML service's allowlist."
    )
    ml_service_allow_http: bool = setting(
        "ML_SERVICE_ALLOW_HTTP",
        boolean,
        "false",
        "Opt-in for a plain-http ML service on a private network (the submit body carries the "
        "manifest SAS and the caller id). Leave false unless the host is reachable only privately.",
    )
    external_url: str = setting(
        "SUBJECT_ASSISTANT_EXTERNAL_URL",
        link_prefix,
        "https://subject-assistant.zooniverse.org/#/tasks/",
        "Prefix of the Subject Assistant link; the ML task id is appended.",
    )
    container_name: str = setting(
        "SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME",
        container_name,
        "subject-assistant-manifests",
        "Blob container for manifests.",
    )
    token_encryption_key: bytes = setting(
        "TOKEN_ENCRYPTION_KEY",
        random_key,
        None,
        "Random key (>= 32 bytes, URL-safe base64, as `Fernet.generate_key()` prints) that encrypts "
        "queued Panoptes tokens.",
        secret=True,
    )
    token_encryption_key_previous: bytes | None = setting(
        "TOKEN_ENCRYPTION_KEY_PREVIOUS",
        optional_random_key,
        "",
        "During a key rotation: the old TOKEN_ENCRYPTION_KEY, still accepted for decryption.",
        secret=True,
    )
    ml_poll_schedule: str = setting(
        "ML_POLL_SCHEDULE",
        ncrontab,
        "0 */10 * * * *",
        "NCRONTAB schedule of the ML poller (read by the timer binding as %ML_POLL_SCHEDULE%).",
    )
    panoptes_page_concurrency: int = setting(
        "PANOPTES_PAGE_CONCURRENCY",
        int_range(1, 32),
        "8",
        "Subject pages fetched from Panoptes at once during an export.",
    )
    panoptes_timeout_seconds: float = setting(
        "PANOPTES_TIMEOUT_SECONDS", float_range(1, 120), "30", "Timeout of one Panoptes request."
    )
    panoptes_retries: int = setting(
        "PANOPTES_RETRIES",
        int_range(0, 10),
        "4",
        "Retries of one Panoptes request after a 5xx, 429 or network error (backoff doubles).",
    )
    panoptes_retry_backoff_seconds: float = setting(
        "PANOPTES_RETRY_BACKOFF_SECONDS",
        float_range(0, 60),
        "0.5",
        "First backoff between Panoptes retries (a 429's Retry-After wins).",
    )
    auth_cache_seconds: int = setting(
        "AUTH_CACHE_SECONDS",
        int_range(0, 300),
        "60",
        "How long a token's user and role lookups are reused (keyed by a hash of the token).",
    )
    auth_retry_seconds: float = setting(
        "AUTH_RETRY_SECONDS",
        float_range(0, 30),
        "3",
        "The longest an API request waits, in total, for Panoptes retries (Retry-After included) "
        "while checking access; past it the request answers 502 panoptes_unavailable.",
    )
    unknown_token_lookups_per_second: float = setting(
        "UNKNOWN_TOKEN_LOOKUPS_PER_SECOND",
        float_range(0.1, 10_000),
        "20",
        "Per instance: how many access tokens in no cache may be checked with Panoptes a second on "
        "average (bursts of twice that). Beyond it a request answers 429 too_many_requests with "
        "Retry-After; tokens Panoptes accepted in the last 2 hours never wait.",
    )
    ml_timeout_seconds: float = setting(
        "ML_TIMEOUT_SECONDS", float_range(1, 300), "60", "Timeout of one ML service request."
    )
    manifest_sas_hours: int = setting(
        "MANIFEST_SAS_HOURS",
        int_range(1, 168),
        "4",
        "Lifetime of the manifest's read-only SAS (at most 7 days). The ML service reads the "
        "manifest once, when it accepts the job; each submission attempt signs a fresh SAS.",
    )
    transient_retry_hours: float = setting(
        "TRANSIENT_RETRY_HOURS",
        float_range(0, 168),
        "24",
        "How long an export keeps retrying Panoptes/ML outages and ML 'too many jobs' before failing.",
    )
    retry_delay_seconds: float = setting(
        "RETRY_DELAY_SECONDS",
        float_range(0, 3600),
        "30",
        "First delay before an export retries a transient fault; doubles each time (max 30 min).",
    )
    build_lease_seconds: int = setting(
        "BUILD_LEASE_SECONDS",
        int_range(2, 3600),
        "300",
        "How long a worker's claim on an export lasts without renewal; a duplicate message steps "
        "aside until then, and a crashed worker's export is taken over after it.",
    )
    ml_poll_concurrency: int = setting(
        "ML_POLL_CONCURRENCY",
        int_range(1, 256),
        "32",
        "ML task status requests in flight at once during a poll tick.",
    )
    ml_task_deadline_days: float = setting(
        "ML_TASK_DEADLINE_DAYS",
        float_range(0.00001, 365),
        "3",
        "An export whose ML status and message have not changed for this long fails with "
        "deadline_exceeded. The service rewrites a working job's message every 10 minutes, and its "
        "own 28-day cap counts from its last restart, so the clock starts at the last change.",
    )
    ml_problem_ticks: int = setting(
        "ML_PROBLEM_TICKS",
        int_range(1, 10_000),
        "3",
        "Poll ticks an ML task may stay in `problem` without `num_images` (its Batch submission "
        "failed: the service never restarts it) before the export fails with ml_failed. A `problem` "
        "with `num_images` is polled until ML_TASK_DEADLINE_DAYS, as the service restarts its "
        "monitoring.",
    )
    ml_not_found_ticks: int = setting(
        "ML_NOT_FOUND_TICKS",
        int_range(1, 100),
        "3",
        "Consecutive 404s from the ML service before an export fails with ml_task_not_found.",
    )
    stuck_export_minutes: float = setting(
        "STUCK_EXPORT_MINUTES",
        float_range(0.01, 1440),
        "30",
        "A queued/building export untouched this long is re-queued once, then failed.",
    )
    likely_empty_confidence: float = setting(
        "LIKELY_EMPTY_CONFIDENCE",
        float_range(0, 1),
        "0.5",
        "An image counts as likely empty when its max_detection_conf is at most this: the Subject "
        'Assistant\'s own default filter ("50% or more likely to be empty" at 0.5), computed as it '
        "computes it. Failed images never count.",
    )
    results_csv_minutes: int = setting(
        "RESULTS_CSV_MINUTES",
        int_range(1, 60),
        "60",
        "Lifetime of the read-only SAS in results_csv_url, minted each time the export is read "
        "(at most an hour).",
    )
    callback_allow_private: bool = setting(
        "CALLBACK_ALLOW_PRIVATE",
        boolean,
        "false",
        "Local runs and tests only: admit callback URLs on loopback or private addresses, and plain "
        "http. In Azure leave false: a callback goes only to https on public addresses.",
    )
    callback_retry_hours: float = setting(
        "CALLBACK_RETRY_HOURS",
        float_range(0, 168),
        "24",
        "How long a callback is retried (network errors, 408/425/429, 5xx) with backoff from 30 s "
        "to 1 h before it is given up; it is always tried at least once.",
    )
    callback_timeout_seconds: float = setting(
        "CALLBACK_TIMEOUT_SECONDS",
        float_range(1, 60),
        "10",
        "Timeout of one callback attempt (connecting, and each read of the answer).",
    )
    results_allowed_hosts: tuple[str, ...] = setting(
        "RESULTS_ALLOWED_HOSTS",
        host_patterns,
        "*.blob.core.windows.net",
        "Hosts the detections file may come from (https only; `*.` allows subdomains). The ML "
        "service's own origin is always allowed. Any other results URL is neither fetched nor shown.",
    )
    results_max_megabytes: int = setting(
        "RESULTS_MAX_MEGABYTES",
        int_range(1, 16_384),
        "2048",
        "Largest detections file the summary reads (MB, as sent); a larger one completes the export "
        "without a summary.",
    )
    results_download_seconds: float = setting(
        "RESULTS_DOWNLOAD_SECONDS",
        float_range(1, 1800),
        "300",
        "Total time allowed to download and summarise one detections file.",
    )

    def check(self) -> list[str]:
        problems = super().check()
        if (
            parse_url(self.ml_service_url).scheme != "https"
            and not is_loopback(self.ml_service_url)
            and not self.ml_service_allow_http
        ):
            problems.append(
                "SUBJECT_ASSISTANT_ML_SERVICE_URL must be an https URL: the submission "
                "carries the manifest SAS and the caller id. Plain http is allowed on "
                "loopback, or to a private host with ML_SERVICE_ALLOW_HTTP=true."
            )
        return problems

    @property
    def ml_origin(self) -> tuple[str, str, int]:
        """(scheme, host, port) of the ML service: its own results links are always followed."""
        return parse_url(self.ml_service_url).origin

    @property
    def results_policy(self) -> ResultsPolicy:
        """Which detections links are followed and shown (exports/results.py)."""
        return ResultsPolicy(self.results_allowed_hosts, self.ml_origin)

    @property
    def token_ttl_seconds(self) -> int:
        """How long a queued token stays decryptable: an export retries transient faults for
        TRANSIENT_RETRY_HOURS, re-queuing the same ciphertext; an hour more covers the last delay."""
        return int((self.transient_retry_hours + 1) * 3600)


SETTINGS = declared(ExportSettings)


@functools.lru_cache(maxsize=1)
def get_settings() -> ExportSettings:
    """The process-wide settings, read once. Raises SettingsError naming bad settings."""
    return load(ExportSettings, os.environ)
