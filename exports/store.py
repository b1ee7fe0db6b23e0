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
- `get(id)` reads the active row of the id's subject set first, then the finished row; callers
  hand the returned `Versioned` back to `update`, which knows which row its ETag belongs to.
One partition serves about 2,000 operations a second, far above this service's load.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (HttpResponseError, ResourceExistsError, ResourceModifiedError,
                                   ResourceNotFoundError)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from exports.model import Export, parse_export_id
from shared import table_batch

log = logging.getLogger(__name__)

PARTITION = "exports"
ACTIVE_PREFIX = "active-"
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
    """The export as a table entity: one JSON property, `doc`, is the record. Why: the SDK spends
    ~0.4 ms of CPU turning 22 typed properties back into a dict (datetimes through strptime),
    about 7x json.loads of the same data, and a poll tick reads every active export. Status
    and ids stay plain properties for people browsing the table (never read back; the row's
    Timestamp tells its last change). Every property is a string (see shared/table_batch.py)."""
    doc: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(export, name)
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.timezone.utc).isoformat()
        elif isinstance(value, str) and len(value) > _MAX_TEXT:
            value = value[:_MAX_TEXT]
        doc[name] = value
    return {"PartitionKey": PARTITION, "RowKey": export.id, "status": export.status,
            "project_id": export.project_id, "subject_set_id": export.subject_set_id,
            DOC: _doc_text(doc)}


def _doc_text(doc: dict[str, Any]) -> str:
    """JSON of the doc, its longest texts halved until it fits one property (escapes such as
    \u001b make JSON longer than the text)."""
    text = json.dumps(doc, ensure_ascii=False)
    while len(text.encode("utf-16-le")) // 2 > _MAX_DOC_UNITS:
        longest = max((n for n, v in doc.items() if isinstance(v, str)), key=lambda n: len(doc[n]))
        doc[longest] = doc[longest][:len(doc[longest]) // 2]
        text = json.dumps(doc, ensure_ascii=False)
    return text


def _from_entity(entity: dict[str, Any]) -> Export:
    if DOC not in entity:
        return _from_typed_entity(entity)
    doc = json.loads(entity[DOC])
    for name in _DATETIME_FIELDS.intersection(doc):
        doc[name] = dt.datetime.fromisoformat(doc[name])
    return Export(**{name: value for name, value in doc.items() if name in _FIELDS})


def _from_typed_entity(entity: dict[str, Any]) -> Export:
    """A row of the first release (one typed property per field; an active export had a mirror
    row `active-{p}-{s}` beside its own). Read as is; the next write stores it as a doc, and the
    stale copy under the export's id is overwritten when the export ends."""
    values: dict[str, Any] = {"id": entity.get("export_id") or entity["RowKey"]}
    for name in _FIELDS:
        if name in entity and name != "id":
            value = entity[name]
            if name == "summary" and isinstance(value, str):
                value = json.loads(value)
            elif isinstance(value, dt.datetime):
                value = value.astimezone(dt.timezone.utc)
            elif hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
                value = value.value  # EntityProperty (e.g. Int64)
            values[name] = value
    return Export(**values)


def _active_entity(export: Export) -> dict[str, Any]:
    entity = _to_entity(export)
    entity["RowKey"] = _active_key(export.project_id, export.subject_set_id)
    entity["export_id"] = export.id
    return entity


def _etag_check(etag: str) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _sdk_operation(kind: str, entity: dict[str, Any], etag: str | None) -> tuple:
    """A table_batch operation in submit_transaction's terms."""
    check = _etag_check(etag) if etag is not None else {}
    if kind == table_batch.DELETE:
        return ("delete", entity, check)
    return ("update" if kind == table_batch.REPLACE else "upsert", entity,
            {"mode": UpdateMode.REPLACE, **check})


def _active_key(project_id: str, subject_set_id: str) -> str:
    return f"{ACTIVE_PREFIX}{project_id}-{subject_set_id}"


def _prefix_filter(prefix: str) -> str:
    # Row keys of a prefix lie in [prefix, prefix with its last character incremented).
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"PartitionKey eq '{PARTITION}' and RowKey ge '{prefix}' and RowKey lt '{upper}'"


class ExportStore:
    def __init__(self, table: TableClient):
        self._table = table

    def ensure_table(self) -> None:
        try:
            self._table.create_table()
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
            return Versioned(_from_entity(active), active.metadata["etag"], active_row=True)
        finished = self._get_entity(export_id)
        return Versioned(_from_entity(finished), finished.metadata["etag"]) if finished else None

    def _get_entity(self, row_key: str, select: list[str] | None = READ):
        try:
            row = self._table.get_entity(PARTITION, row_key, select=select)
        except ResourceNotFoundError:
            return None
        return row if DOC in row or select is None else self._get_entity(row_key, select=None)

    def _query(self, prefix: str, page_size: int = 1000) -> Iterator:
        """Rows whose key starts with `prefix`, in key order (a first-release row without a doc
        is read again whole)."""
        for row in self._table.query_entities(_prefix_filter(prefix), select=READ,
                                              results_per_page=page_size):
            row = row if DOC in row else self._get_entity(row["RowKey"], select=None)
            if row is not None:
                yield row

    def active_export_id(self, project_id: str, subject_set_id: str) -> str | None:
        active = self._get_entity(_active_key(project_id, subject_set_id))
        return active.get("export_id") if active is not None else None

    def active_export_ids(self) -> list[str]:
        """Ids of every active export (one range query over the active rows)."""
        rows = self._table.query_entities(_prefix_filter(ACTIVE_PREFIX), select=["export_id"],
                                          results_per_page=1000)
        return [row["export_id"] for row in rows if row.get("export_id")]

    def active_exports(self, page_size: int = 1000) -> Iterator[Versioned]:
        """Every active export, in one range query, `page_size` rows a round trip (a caller can
        start on the first rows while the next page is read)."""
        for row in self._query(ACTIVE_PREFIX, page_size):
            if row.get("export_id"):
                yield Versioned(_from_entity(row), row.metadata["etag"], active_row=True)

    def exports_of_subject_set(self, project_id: str, subject_set_id: str) -> Iterator[Export]:
        """Newest first (an active export is always the newest of its set)."""
        active = self._get_entity(_active_key(project_id, subject_set_id))
        if active is not None and active.get("export_id"):
            yield _from_entity(active)
        for entity in self._query(f"{project_id}-{subject_set_id}-"):
            yield _from_entity(entity)

    def exports_of_project(self, project_id: str) -> Iterator[Export]:
        """Every active export of the project, then the finished ones grouped by subject set,
        newest first within each: for each set, its newest export comes first."""
        for row in self._query(f"{ACTIVE_PREFIX}{project_id}-"):
            if row.get("export_id"):
                yield _from_entity(row)
        for entity in self._query(f"{project_id}-"):
            yield _from_entity(entity)

    # -- writes ------------------------------------------------------------------------
    def create(self, export: Export) -> tuple[Versioned, bool]:
        """Insert a new active export, unless its subject set already has one.
        Returns (export, True) when created, or (the set's active export, False)."""
        if not export.is_active:
            raise ValueError("a new export must be active")
        for _ in range(5):
            try:
                result = self._table.create_entity(_active_entity(export))
                return Versioned(export, result["etag"], active_row=True), True
            except ResourceExistsError:
                pass
            existing = self._get_entity(_active_key(export.project_id, export.subject_set_id))
            if existing is not None:  # else it just finished: try again
                return Versioned(_from_entity(existing), existing.metadata["etag"],
                                 active_row=True), False
        raise ConcurrentUpdate("could not create the export: its subject set kept changing")

    def update(self, export: Export, current: Versioned) -> Versioned:
        """Write `export` over `current` (as read), if that row has not changed since. An active
        export that ends moves to its finished row in the same transaction."""
        if current.active_row and export.is_final:
            try:
                etags = self._transact(self._operations(export, current.etag))
            except TransactionRefused as exc:
                raise ConcurrentUpdate(f"export changed since it was read ({exc})") from exc
            return Versioned(export, etags[0])
        if not current.active_row and export.is_active:
            raise ValueError(f"export {export.id} has finished; it cannot become active again")
        entity = _active_entity(export) if current.active_row else _to_entity(export)
        try:
            result = self._table.update_entity(entity, mode=UpdateMode.REPLACE,
                                               **_etag_check(current.etag))
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentUpdate("export changed since it was read") from exc
        except HttpResponseError as exc:
            if exc.status_code in (404, 412):
                raise ConcurrentUpdate("export changed since it was read") from exc
            raise
        return Versioned(export, result["etag"], active_row=current.active_row)

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
            return len(batch)
        except TransactionRefused:
            pass
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
            key = {"PartitionKey": PARTITION,
                   "RowKey": _active_key(export.project_id, export.subject_set_id)}
            return [(table_batch.UPSERT, _to_entity(export), None),
                    (table_batch.DELETE, key, active_etag)]
        return [(table_batch.REPLACE, _active_entity(export), active_etag)]

    def _transact(self, operations: list) -> list[str]:
        """One entity-group transaction; the ETags of the rows it wrote (deletes have none).
        TransactionRefused when a row changed or vanished since it was read (nothing written);
        any other refusal is raised as the storage error it is."""
        try:
            return table_batch.submit(self._table, operations)
        except table_batch.BatchRejected as exc:
            if exc.status in _ROW_CONFLICT:
                raise TransactionRefused(exc.code) from None
            raise HttpResponseError(message=f"table transaction refused: {exc}") from None
        except table_batch.BatchUnsupported as exc:  # not applied: the SDK's own way
            log.warning("table batch fell back to the SDK's transaction: %s", exc)
        try:
            results = self._table.submit_transaction([_sdk_operation(*op) for op in operations])
        except TableTransactionError as exc:
            if exc.status_code in _ROW_CONFLICT:
                raise TransactionRefused(str(exc.error_code)) from None
            raise
        return [r["etag"] for r in results if r.get("etag")]

    def ping(self) -> None:
        """Cheap storage round trip for the health check."""
        next(iter(self._table.query_entities(f"PartitionKey eq '{PARTITION}' and RowKey eq 'health'",
                                             results_per_page=1)), None)
