"""ExportStore: export state in Azure Table Storage, with optimistic concurrency (ETags).

Layout, all in one partition (so that a move between rows is one entity-group transaction):
- An *active* export (queued to running) lives in one row, RowKey `active-{project}-{set}`, which
  also holds its id. The key makes "one active export per subject set" atomic (a second POST's
  insert conflicts and gets the existing export); every change is one conditional replace of
  that row; the poller reads every active export with one range query over `active-` (its cost
  grows with the active work, not with history) and writes each change back as one operation.
- When the export ends it *moves* to RowKey = its id (`{project}-{set}-{inverted time}{random}`):
  one transaction inserts that row and deletes the active row, checked against the active row's
  ETag. Range queries over `{project}-` or `{project}-{set}-` list finished exports, newest first.
- The same transaction also writes the subject set's `latest-{project}-{set}` row (its newest
  finished export) and, for a completed export, its `completed-{project}-{set}` row, so a project's
  listing reads three range queries whose size follows the number of subject sets, never the
  history of finished exports.
- `get(id)` reads the active row of the id's subject set first, then the finished row; callers
  hand the returned `Versioned` back to `update` (or use `apply`), which knows which row its ETag
  belongs to. A finished export is changed only for its callback's delivery; its set's index
  rows that repeat it are rewritten in the same transaction, so the listing never shows a stale
  copy.
- An export that ends with a callback to deliver also gets a `callback-{id}` row in the
  transaction that ends it, deleted when the delivery is over: the poll tick's sweep reads those
  (exports/delivery.py), so a callback whose queue message was lost is still delivered. The
  store's `on_finished` hook (set once by exports/services.py) is told of every such export it
  ends, to queue the delivery at once.
One partition serves about 2,000 operations a second, far above this service's load.
Every write that changes an export's status is logged here, once (exports/events.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from exports import events
from exports.contract import CallbackState, Status
from exports.model import Export, parse_export_id

log = logging.getLogger(__name__)

PARTITION = "exports"
ACTIVE_PREFIX = "active-"
LATEST_PREFIX = "latest-"  # a subject set's newest finished export
COMPLETED_PREFIX = "completed-"  # a subject set's newest completed export
SET_INDEX_PREFIXES = (LATEST_PREFIX, COMPLETED_PREFIX)  # rows that repeat an export of a set
CALLBACK_PREFIX = "callback-"  # a finished export whose callback is still to be delivered
MAX_ATTEMPTS = 10  # writes tried against newer versions before giving up (see `apply`)
MAX_TRANSACTION_OPERATIONS = 100  # an entity-group transaction's limit
_ROW_CONFLICT = (404, 409, 412)  # a transaction refused because a row changed, vanished or exists
_FIELDS = {f.name: f for f in dataclasses.fields(Export)}
_DATETIME_FIELDS = {f.name for f in dataclasses.fields(Export) if "datetime" in str(f.type)}
DOC = "doc"
READ = [DOC, "export_id", "RowKey"]  # the properties a read needs ($select)
_MAX_TEXT = 8_000  # per text field, a first cut
_MAX_DOC_UNITS = 30_000  # a string property holds 64 KiB = 32,768 UTF-16 units


class ConcurrentUpdate(Exception):
    """The export changed since it was read (ETag mismatch): re-read and decide again."""


class TransactionRefused(Exception):
    """The service refused one operation of a transaction (its error code), so none applied."""


@dataclasses.dataclass(frozen=True)
class Versioned:
    export: Export
    etag: str
    active_row: bool = False  # etag is the active row's (`active-{p}-{s}`), not a finished row's


def _to_entity(export: Export) -> dict[str, Any]:
    """The export as a table entity: one JSON property, `doc`, is the record (reading typed
    properties back costs the SDK several times json.loads, and a tick reads every active
    export: docs/DECISIONS.md). Status and ids stay plain properties for people browsing the
    table (never read back; the row's Timestamp tells its last change)."""
    doc: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(export, name)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat()
        elif isinstance(value, str) and len(value) > _MAX_TEXT:
            value = value[:_MAX_TEXT]
        doc[name] = value
    return {
        "PartitionKey": PARTITION,
        "RowKey": export.id,
        "status": export.status,
        "project_id": export.project_id,
        "subject_set_id": export.subject_set_id,
        DOC: _doc_text(doc),
    }


def _doc_text(doc: dict[str, Any]) -> str:
    """JSON of the doc, its longest texts halved until it fits one property (escapes such as
    \u001b make JSON longer than the text)."""
    text = json.dumps(doc, ensure_ascii=False)
    while len(text.encode("utf-16-le")) // 2 > _MAX_DOC_UNITS:
        longest = max((n for n, v in doc.items() if isinstance(v, str)), key=lambda n: len(doc[n]))
        doc[longest] = doc[longest][: len(doc[longest]) // 2]
        text = json.dumps(doc, ensure_ascii=False)
    return text


def export_from_row(entity: dict[str, Any]) -> Export:
    """The export a table row holds (any row of this table: active, finished or a set's index)."""
    doc = json.loads(entity[DOC])
    for name in _DATETIME_FIELDS.intersection(doc):
        doc[name] = dt.datetime.fromisoformat(doc[name])
    return Export(**{name: value for name, value in doc.items() if name in _FIELDS})


def _set_entity(prefix: str, export: Export) -> dict[str, Any]:
    """The export as its subject set's `latest-` or `completed-` row."""
    entity = _to_entity(export)
    entity["RowKey"] = f"{prefix}{export.project_id}-{export.subject_set_id}"
    entity["export_id"] = export.id
    return entity


def _active_entity(export: Export) -> dict[str, Any]:
    entity = _to_entity(export)
    entity["RowKey"] = _active_key(export.project_id, export.subject_set_id)
    entity["export_id"] = export.id
    return entity


def _etag_check(etag: str) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


REPLACE, UPSERT, DELETE = "replace", "upsert", "delete"


def _sdk_operation(
    kind: str, entity: dict[str, Any], etag: str | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """One operation of an entity-group transaction, in submit_transaction's terms."""
    check = _etag_check(etag) if etag is not None else {}
    if kind == DELETE:
        return ("delete", entity, check)
    return ("update" if kind == REPLACE else "upsert", entity, {"mode": UpdateMode.REPLACE, **check})


def _active_key(project_id: str, subject_set_id: str) -> str:
    return f"{ACTIVE_PREFIX}{project_id}-{subject_set_id}"


def _prefix_filter(prefix: str) -> str:
    # Row keys of a prefix lie in [prefix, prefix with its last character incremented).
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"PartitionKey eq '{PARTITION}' and RowKey ge '{prefix}' and RowKey lt '{upper}'"


class ExportStore:
    def __init__(self, table: TableClient, on_finished: Callable[[Export], None] | None = None):
        self.table = table
        # Told of every export this store ended with a callback still to deliver.
        self.on_finished = on_finished

    def _finished(self, exports: list[Export]) -> None:
        if self.on_finished is None:
            return
        for export in exports:
            if export.is_final and export.callback_state == CallbackState.PENDING:
                try:
                    self.on_finished(export)
                except Exception:  # the poll tick's sweep delivers it anyway
                    log.exception("export %s: could not queue its callback", export.id)

    def ensure_table(self) -> None:
        try:
            self.table.create_table()
        except ResourceExistsError:
            pass

    # -- reads -------------------------------------------------------------------------
    def get(self, export_id: str) -> Versioned | None:
        parsed = parse_export_id(export_id)
        if parsed is None:
            return None
        # Active row first: an export that ends between the two reads is then found moved.
        active = self._get_entity(_active_key(*parsed))
        if active is not None and active.get("export_id") == export_id:
            return Versioned(export_from_row(active), active.metadata["etag"], active_row=True)
        finished = self._get_entity(export_id)
        return Versioned(export_from_row(finished), finished.metadata["etag"]) if finished else None

    def _get_entity(self, row_key: str):
        try:
            return self.table.get_entity(PARTITION, row_key, select=READ)
        except ResourceNotFoundError:
            return None

    def _query(self, prefix: str, page_size: int = 1000) -> Iterator:
        """Rows whose key starts with `prefix`, in key order."""
        return iter(
            self.table.query_entities(_prefix_filter(prefix), select=READ, results_per_page=page_size)
        )

    def active_export_ids(self) -> list[str]:
        """Ids of every active export (one range query over the active rows)."""
        rows = self.table.query_entities(
            _prefix_filter(ACTIVE_PREFIX), select=["export_id"], results_per_page=1000
        )
        return [row["export_id"] for row in rows if row.get("export_id")]

    def active_exports(self, page_size: int = 1000) -> Iterator[Versioned]:
        """Every active export, in one range query, `page_size` rows a round trip (a caller can
        start on the first rows while the next page is read)."""
        for row in self._query(ACTIVE_PREFIX, page_size):
            if row.get("export_id"):
                yield Versioned(export_from_row(row), row.metadata["etag"], active_row=True)

    def finished_exports(self, prefix: str = "", page_size: int = 1000) -> Iterator[Versioned]:
        """Finished exports (rows keyed by their id) whose id starts with `prefix`: `{project}-`
        or `{project}-{set}-` (a set's newest first), or every one (a scan: for operators)."""
        if prefix:
            rows = self._query(prefix, page_size)
        else:  # export ids start with a digit from 1 to 9; ':' sorts right after '9'
            rows = iter(
                self.table.query_entities(
                    f"PartitionKey eq '{PARTITION}' and RowKey ge '1' and RowKey lt ':'",
                    select=READ,
                    results_per_page=page_size,
                )
            )
        for row in rows:
            yield Versioned(export_from_row(row), row.metadata["etag"])

    def latest_of_project(self, project_id: str) -> dict[str, tuple[Export, Export | None]]:
        """For each subject set of the project with an export: (its newest export, its newest
        completed export or None). Three range queries, one row per set each.

        The queries are not one snapshot, so the active rows are read first: an export that ends
        meanwhile leaves its active row and enters the latest row in one transaction, so it is
        in one or the other (read in the other order, an export ending between the two queries
        was in neither, and the page, seeing no active export, stopped refreshing)."""
        active: dict[str, Export] = {}
        latest: dict[str, Export] = {}
        completed: dict[str, Export] = {}
        for prefix, found in (
            (f"{ACTIVE_PREFIX}{project_id}-", active),
            (f"{LATEST_PREFIX}{project_id}-", latest),
            (f"{COMPLETED_PREFIX}{project_id}-", completed),
        ):
            for row in self._query(prefix):
                if row.get("export_id"):
                    export = export_from_row(row)
                    found[export.subject_set_id] = export
        for set_id, export in active.items():  # active is newest, unless it has ended since
            if set_id not in latest or latest[set_id].id != export.id:
                latest[set_id] = export
        return {set_id: (export, completed.get(set_id)) for set_id, export in latest.items()}

    # -- writes ------------------------------------------------------------------------
    def create(self, export: Export) -> tuple[Versioned, bool]:
        """Insert a new active export, unless its subject set already has one.
        Returns (export, True) when created, or (the set's active export, False)."""
        if not export.is_active:
            raise ValueError("a new export must be active")
        connection_lost = False
        for _ in range(MAX_ATTEMPTS):
            try:
                result = self.table.create_entity(_active_entity(export))
                events.recorded(None, export)
                return Versioned(export, result["etag"], active_row=True), True
            except ResourceExistsError:
                pass
            except ServiceResponseError:
                # The connection went while the insert was on it (the SDK retries no insert), so
                # it may or may not have reached the table. The insert is conditional: it is
                # tried once more, and a conflict with this very export means the first try made it.
                if connection_lost:
                    raise
                connection_lost = True
                continue
            existing = self._get_entity(_active_key(export.project_id, export.subject_set_id))
            if existing is None:  # it just finished: try again
                continue
            found = Versioned(export_from_row(existing), existing.metadata["etag"], active_row=True)
            if connection_lost and found.export.id == export.id:
                events.recorded(None, export)
                return found, True
            return found, False
        raise ConcurrentUpdate("could not create the export: its subject set kept changing")

    def update(self, export: Export, current: Versioned) -> Versioned:
        """Write `export` over `current` (as read), if that row has not changed since. An active
        export that ends moves to its finished row in the same transaction."""
        if current.active_row and export.is_final:
            try:
                etags = self._transact(self._operations(export, current.etag))
            except TransactionRefused as exc:
                raise ConcurrentUpdate(f"export changed since it was read ({exc})") from exc
            events.recorded(current.export, export)
            self._finished([export])
            return Versioned(export, etags[0])
        if not current.active_row and export.is_active:
            raise ValueError(f"export {export.id} has finished; it cannot become active again")
        if not current.active_row:
            return self._update_finished(export, current)
        entity = _active_entity(export)
        try:
            result = self.table.update_entity(entity, mode=UpdateMode.REPLACE, **_etag_check(current.etag))
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentUpdate("export changed since it was read") from exc
        except HttpResponseError as exc:
            if exc.status_code in (404, 412):
                raise ConcurrentUpdate("export changed since it was read") from exc
            raise
        events.recorded(current.export, export)
        return Versioned(export, result["etag"], active_row=current.active_row)

    def _update_finished(self, export: Export, current: Versioned) -> Versioned:
        """A finished export rewritten, with its set's index rows that repeat it and its callback
        row (deleted once the delivery is over), in one transaction."""
        operations: list = [(REPLACE, _to_entity(export), current.etag)]
        for prefix in SET_INDEX_PREFIXES:
            row = self._get_entity(f"{prefix}{export.project_id}-{export.subject_set_id}")
            if row is not None and row.get("export_id") == export.id:
                operations.append((REPLACE, _set_entity(prefix, export), row.metadata["etag"]))
        if export.callback_state != CallbackState.PENDING:
            row = self._get_entity(CALLBACK_PREFIX + export.id)
            if row is not None:
                operations.append(
                    (DELETE, {"PartitionKey": PARTITION, "RowKey": row["RowKey"]}, row.metadata["etag"])
                )
        try:
            etags = self._transact(operations)
        except TransactionRefused as exc:
            raise ConcurrentUpdate(f"export changed since it was read ({exc})") from exc
        return Versioned(export, etags[0])

    def pending_callback_ids(self) -> list[str]:
        """Finished exports whose callback is still to be delivered (one range query)."""
        rows = self.table.query_entities(
            _prefix_filter(CALLBACK_PREFIX), select=["export_id"], results_per_page=1000
        )
        return [row["export_id"] for row in rows if row.get("export_id")]

    def apply(self, current: Versioned, change: Callable[[Export], Export | None]) -> Versioned:
        """The one way to change an export: apply `change` to the version last read and write the
        result with an ETag check; on a conflict, re-read and apply `change` again to the newer
        version. `change` returns the new export, or None (or the export itself) to write nothing;
        whatever it raises propagates. Returns the version written (or left as it was)."""
        for _ in range(MAX_ATTEMPTS):
            updated = change(current.export)
            if updated is None or updated == current.export:
                return current
            try:
                return self.update(updated, current)
            except ConcurrentUpdate:
                reread = self.get(current.export.id)
                if reread is None:
                    raise ConcurrentUpdate(f"export {current.export.id} vanished") from None
                current = reread
        raise ConcurrentUpdate(f"export {current.export.id} kept changing")

    def update_many(self, items: list[tuple[Versioned, Export]]) -> int:
        """The poller's writes (active exports as read by active_exports): up to 100 operations
        a transaction. A transaction that fails (an export changed meanwhile) is retried export
        by export, skipping the changed ones. Returns how many were written."""
        written = 0
        batch: list[tuple[Versioned, Export]] = []
        operations: list = []
        for current, export in items:
            if not current.active_row:
                raise ValueError("update_many writes exports read from their active rows")
            ops = self._operations(export, current.etag)
            if len(operations) + len(ops) > MAX_TRANSACTION_OPERATIONS:
                written += self._submit_batch(batch, operations)
                batch, operations = [], []
            batch.append((current, export))
            operations += ops
        if batch:
            written += self._submit_batch(batch, operations)
        return written

    def _submit_batch(self, batch: list[tuple[Versioned, Export]], operations: list) -> int:
        try:
            self._transact(operations)
        except TransactionRefused:
            pass
        else:
            for current, export in batch:
                events.recorded(current.export, export)
            self._finished([export for _, export in batch])
            return len(batch)
        written = 0
        for current, export in batch:
            try:
                self.update(export, current)
                written += 1
            except ConcurrentUpdate:
                pass
            except Exception:  # one export's failure must not hold up the others
                log.exception("export %s: the poller's write failed", export.id)
        return written

    def _operations(self, export: Export, active_etag: str) -> list:
        """The operations writing an export read from its active row: (kind, entity, etag)."""
        if export.is_final:
            key = {"PartitionKey": PARTITION, "RowKey": _active_key(export.project_id, export.subject_set_id)}
            operations = [
                (UPSERT, _to_entity(export), None),
                (DELETE, key, active_etag),
                (UPSERT, _set_entity(LATEST_PREFIX, export), None),
            ]
            if export.status == Status.COMPLETED:
                operations.append((UPSERT, _set_entity(COMPLETED_PREFIX, export), None))
            if export.callback_state == CallbackState.PENDING:
                row = {
                    "PartitionKey": PARTITION,
                    "RowKey": CALLBACK_PREFIX + export.id,
                    "export_id": export.id,
                }
                operations.append((UPSERT, row, None))
            return operations
        return [(REPLACE, _active_entity(export), active_etag)]

    def _transact(self, operations: list) -> list[str]:
        """One entity-group transaction; the ETags of the rows it wrote (deletes have none).
        TransactionRefused when a row changed or vanished since it was read (nothing written);
        any other refusal is raised as the storage error it is."""
        try:
            results = self.table.submit_transaction([_sdk_operation(*op) for op in operations])
        except TableTransactionError as exc:
            if exc.status_code in _ROW_CONFLICT:
                raise TransactionRefused(f"HTTP {exc.status_code}") from None
            raise
        return [r["etag"] for r in results if r.get("etag")]

    def ping(self) -> None:
        """Cheap storage round trip for the health check."""
        next(
            iter(
                self.table.query_entities(
                    f"PartitionKey eq '{PARTITION}' and RowKey eq 'health'", results_per_page=1
                )
            ),
            None,
        )
