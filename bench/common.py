"""Helpers shared by the benchmark driver and its child processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
from typing import Any

from exports import model
from exports.messages import ExportMessage
from exports.services import Services

PROJECT_ID = "4321"
OWNER_TOKEN = "bench-owner-token"
OWNER_ID = "900"
TOKEN_KEY = "YmVuY2gtdG9rZW4tZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc4OWFiY2RlZg=="  # base64 of a readable test key


def rss_kb(field: str = "VmRSS") -> int:
    """A /proc/self/status memory field in kB (VmRSS now, VmHWM the peak so far)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def create_export(
    services: Services, project_id: str, subject_set_id: str, token: str | None = OWNER_TOKEN, **changes: Any
) -> tuple[model.Export, str]:
    """An export record created exactly as the HTTP handler does, and its queue message body."""
    now = services.clock()
    export_id = model.new_export_id(project_id, subject_set_id, now)
    ciphertext = services.cipher.encrypt(token, bound_to=export_id) if token else None
    # The handler records the set's size from its Panoptes lookup (the worker's page hint).
    found = services.panoptes.subject_set(token, subject_set_id) if token else None
    export = model.new_export(
        export_id,
        project_id,
        subject_set_id,
        OWNER_ID,
        now,
        dt.timedelta(hours=services.settings.transient_retry_hours),
        ciphertext,
        subjects_total=(found or {}).get("set_member_subjects_count"),
    )
    if changes:
        export = dataclasses.replace(export, **changes)
    current, created = services.store.create(export)
    if not created:
        raise RuntimeError(f"subject set {subject_set_id} already has an active export")
    # The same body Services.enqueue sends (the worker is handed it directly, not via the queue).
    return current.export, ExportMessage(export.id, ciphertext).encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values)
