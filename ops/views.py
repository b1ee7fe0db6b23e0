"""`list` and `show`: exports by status and age, and one export with what is known of its history
(its record's milestones, its subject set's other exports, messages that name it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from exports import model
from exports.messages import ExportMessage
from exports.store import Versioned
from ops.connect import Storage

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> dt.timedelta:
    """`90s`, `30m`, `2h`, `1d` (or a sum such as `1h30m`)."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 1d)")
    return dt.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def ago(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def select(
    exports: Iterable[model.Export],
    now: dt.datetime,
    statuses: set[str] | None = None,
    older_than: dt.timedelta | None = None,
    project_id: str | None = None,
) -> list[model.Export]:
    """The exports that match, oldest first."""
    found = [
        e
        for e in exports
        if (not statuses or e.status in statuses)
        and (older_than is None or now - e.created_at >= older_than)
        and (project_id is None or e.project_id == project_id)
    ]
    return sorted(found, key=lambda e: e.created_at)


def exports_to_list(storage: Storage, finished: bool, project_id: str | None) -> Iterator[model.Export]:
    for current in storage.store.active_exports():
        yield current.export
    if finished:
        prefix = f"{project_id}-" if project_id else ""
        for current in storage.store.finished_exports(prefix):
            yield current.export


def table(exports: list[model.Export], now: dt.datetime) -> str:
    header = ("export id", "status", "age", "idle", "retries", "ML task", "error")
    rows = [
        (
            e.id,
            e.status,
            ago(now - e.created_at),
            ago(now - e.updated_at),
            str(e.retries),
            e.ml_task_id or "-",
            e.error_code or "-",
        )
        for e in exports
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines + [f"{len(rows)} export(s)"])


def record(export: model.Export) -> dict[str, Any]:
    """Every field of the stored record, the sealed token shown only as present or not."""
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(export):
        value = getattr(export, field.name)
        if field.name == "token_ciphertext":
            value = "(sealed token kept)" if value else None
        elif isinstance(value, dt.datetime):
            value = model.iso(value)
        fields[field.name] = value
    return fields


def timeline(export: model.Export) -> list[tuple[dt.datetime, str]]:
    """What the record's timestamps say happened, in time order."""
    moments = [
        (export.created_at, "created (queued)"),
        (export.submit_started_at, "submission to the ML service started"),
        (export.submitted_at, f"ML task {export.ml_task_id} accepted"),
        (export.ml_changed_at, f"ML status or message last changed (now {export.ml_status})"),
        (export.lease_until, "build lease runs until"),
        (export.next_attempt_at, f"retry due (after {export.retries} transient fault(s))"),
        (
            export.updated_at,
            f"last change: {export.status}" + (f" {export.error_code}" if export.error_code else ""),
        ),
    ]
    found = [(at, what) for at, what in moments if at is not None]
    return sorted(found, key=lambda moment: moment[0])


def messages_naming(storage: Storage, export_id: str) -> list[tuple[str, str, int]]:
    """(queue, message id, dequeue count) of the messages that name the export (first 32 each)."""
    found = []
    for name, queue in (("work queue", storage.queue), ("poison queue", storage.poison)):
        try:
            peeked = queue.peek_messages(max_messages=32)
        except Exception:
            continue
        for message in peeked:
            parsed = ExportMessage.parse(message.content)
            if parsed is not None and parsed.export_id == export_id:
                found.append((name, message.id, message.dequeue_count or 0))
    return found


def show(storage: Storage, current: Versioned, now: dt.datetime) -> str:
    export = current.export
    lines = [
        f"export {export.id}: {export.status}" + (f" ({export.error_code})" if export.error_code else "")
    ]
    lines += ["", "record:"] + [f"  {k}: {json.dumps(v)}" for k, v in record(export).items()]
    lines += ["", "timeline (from the record):"]
    lines += [f"  {model.iso(at)}  {what}" for at, what in timeline(export)]
    if export.requeued:
        lines.append("  (re-queued once by the stuck-export sweep or an operator)")
    others = [
        v.export
        for v in storage.store.finished_exports(f"{export.project_id}-{export.subject_set_id}-")
        if v.export.id != export.id
    ][:10]
    lines += ["", f"other exports of subject set {export.subject_set_id} (newest first):"]
    lines += [
        f"  {e.id}  {e.status} {e.error_code or ''}  {model.iso(e.created_at)}".rstrip() for e in others
    ]
    if not others:
        lines.append("  none")
    queued = messages_naming(storage, export.id)
    lines += ["", "messages naming it:"]
    lines += [f"  {q}: message {mid} (dequeued {n} times)" for q, mid, n in queued] or ["  none"]
    lines += [
        "",
        "its whole story in Application Insights: docs/OPERATIONS.md, query 'One export's whole story',",
        f'with let export_id = "{export.id}";',
    ]
    return "\n".join(lines)
