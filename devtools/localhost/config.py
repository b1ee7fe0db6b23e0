"""host.json and app-setting expressions: what the real host reads before any function runs.

The router needs `extensions.http.routePrefix`, the queue poller `extensions.queues`, and queue
names and timer schedules may be `%APP_SETTING%` expressions. Reading them here, with the
host's defaults for anything left out, lets the other modules take plain values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# host.json's default when `extensions.http.routePrefix` is absent.
DEFAULT_ROUTE_PREFIX = "api"


def timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan string: "hh:mm:ss[.fff]" or "d.hh:mm:ss"."""
    m = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", str(text).strip())
    if not m:
        raise ValueError(f"not a TimeSpan (hh:mm:ss): {text!r}")
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's defaults for anything left out."""

    encoding: str = "base64"
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> QueueOptions:
        encoding = str(raw.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"queues.messageEncoding must be base64 or none, not {encoding!r}")
        batch_size = int(raw.get("batchSize", 16))
        return cls(
            encoding=encoding,
            batch_size=batch_size,
            new_batch_threshold=int(raw.get("newBatchThreshold", batch_size // 2)),
            max_polling_interval=timespan(raw.get("maxPollingInterval", "00:01:00")),
            visibility_timeout=timespan(raw.get("visibilityTimeout", "00:00:00")),
            max_dequeue_count=int(raw.get("maxDequeueCount", 5)),
        )


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the local host honours."""

    route_prefix: str  # without slashes; "" serves routes from the site root
    queues: QueueOptions


def load_host_json(path: str | os.PathLike | None) -> HostConfig:
    """Read host.json; a missing file (or `path=None`) gives the host's defaults."""
    raw: dict = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    extensions = raw.get("extensions", {})
    prefix = extensions.get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return HostConfig(
        route_prefix=str(prefix).strip("/"), queues=QueueOptions.from_json(extensions.get("queues", {}))
    )


def resolve(text: str) -> str:
    """Resolve %APP_SETTING% binding expressions from os.environ, failing as the host does."""

    def setting(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise KeyError(f"{m.group(0)} does not resolve to an app setting")
        return os.environ[m.group(1)]

    return re.sub(r"%([^%]+)%", setting, text)
