"""ExportStore: export state in Azure Table Storage, with optimistic concurrency (ETags).

Layout, all in one partition so that a state change and its index entry commit atomically in
one entity-group transaction:
- RowKey `{project_id}-{subject_set_id}-{inverted time}{random}` (= the export id): the export.
  A range query on the `{project}-` or `{project}-{set}-` prefix lists a project's or a subject
  set's exports, newest first, without scanning other projects.
- RowKey `active-{project_id}-{subject_set_id}`: the *active index* row of a subject set. It
  holds a mirror of the subject set's active export (plus `export_id`) and is written in the
  same transaction as every write of that export: created with it (so a second concurrent POST
  conflicts and gets the existing export), rewritten with each change, deleted with its final
  transition. The poller reads all active exports with one range query over `active-` (cost
  grows with active work, not history) and may write back using the index row's ETag, which
  changes exactly when the export does.
One partition serves about 2,000 operations a second, far above this service's load.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (HttpResponseError, ResourceExistsError, ResourceModifiedError,
                                   ResourceNotFoundError)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from exports.model import Export, parse_export_id

PARTITION = "exports"
ACTIVE_PREFIX = "active-"
_FIELDS = {f.name: f for f in dataclasses.fields(Export)}
_MAX_TEXT = 16_000  # table string properties hold 32K UTF-16 chars; keep well under


class ConcurrentUpdate(Exception):
    """The export changed since it was read (ETag mismatch): re-read and decide again."""


@dataclasses.dataclass(frozen=True)
class Versioned:
    export: Export
    etag: str
    from_index: bool = False  # etag is the active index row's, not the export row's


def _to_entity(export: Export) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": export.id}
    for name in _FIELDS:
        if name == "id":
            continue
        value = getattr(export, name)
        if value is None:
            continue
        if name == "summary":
            value = json.dumps(value)
        elif isinstance(value, str) and len(value) > _MAX_TEXT:
            value = value[:_MAX_TEXT]
        entity[name] = value
    return entity


def _from_entity(entity: dict[str, Any]) -> Export:
    values: dict[str, Any] = {"id": entity["RowKey"]}
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


def _index_entity(export: Export) -> dict[str, Any]:
    entity = _to_entity(export)
    entity["RowKey"] = _active_key(export.project_id, export.subject_set_id)
    entity["export_id"] = export.id
    return entity


def _from_index_entity(entity: dict[str, Any]) -> Export:
    return _from_entity({**entity, "RowKey": entity["export_id"]})


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
        if parse_export_id(export_id) is None:
            return None
        try:
            entity = self._table.get_entity(PARTITION, export_id)
        except ResourceNotFoundError:
            return None
        return Versioned(_from_entity(entity), entity.metadata["etag"])

    def active_export_id(self, project_id: str, subject_set_id: str) -> str | None:
        try:
            marker = self._table.get_entity(PARTITION, _active_key(project_id, subject_set_id))
        except ResourceNotFoundError:
            return None
        return marker.get("export_id")

    def active_export_ids(self) -> list[str]:
        """Ids of every active export, read from the active index (not the history)."""
        markers = self._table.query_entities(_prefix_filter(ACTIVE_PREFIX), select=["export_id"],
                                             results_per_page=1000)
        return [m["export_id"] for m in markers if m.get("export_id")]

    def active_exports(self) -> list[Versioned]:
        """Every active export from its index row, in one range query. The ETags returned are
        the index rows': pass them back with `index_etag=True` (see update)."""
        rows = self._table.query_entities(_prefix_filter(ACTIVE_PREFIX), results_per_page=1000)
        return [Versioned(_from_index_entity(row), row.metadata["etag"], from_index=True)
                for row in rows if row.get("export_id")]

    def exports_of_subject_set(self, project_id: str, subject_set_id: str) -> Iterator[Export]:
        """Newest first."""
        for entity in self._table.query_entities(_prefix_filter(f"{project_id}-{subject_set_id}-"),
                                                 results_per_page=1000):
            yield _from_entity(entity)

    def exports_of_project(self, project_id: str) -> Iterator[Export]:
        """Grouped by subject set, newest first within each."""
        for entity in self._table.query_entities(_prefix_filter(f"{project_id}-"),
                                                 results_per_page=1000):
            yield _from_entity(entity)

    # -- writes ------------------------------------------------------------------------
    def create(self, export: Export) -> tuple[Versioned, bool]:
        """Insert a new active export, unless its subject set already has one.

        Returns (export, True) when created, or (the active export, False). A marker left by an
        export that is already final or gone is cleared and the insert retried."""
        key = _active_key(export.project_id, export.subject_set_id)
        for _ in range(5):
            try:
                results = self._table.submit_transaction([("create", _to_entity(export)),
                                                          ("create", _index_entity(export))])
                return Versioned(export, results[0]["etag"]), True
            except TableTransactionError as exc:
                if exc.error_code not in ("EntityAlreadyExists", "EntityAlreadyExist"):
                    raise
            try:
                current = self._table.get_entity(PARTITION, key)
            except ResourceNotFoundError:
                continue  # the other export just finished: try again
            existing = self.get(current.get("export_id", ""))
            if existing is not None and existing.export.is_active:
                return existing, False
            self._delete_marker(current)
        raise ConcurrentUpdate("could not create the export: its subject set kept changing")

    def update(self, export: Export, etag: str, from_index: bool = False) -> Versioned:
        """Replace the export if unchanged since `etag`, rewriting (or, once final, deleting) its
        active index row in the same transaction. `etag` is the export row's ETag, or with
        `from_index=True` the index row's (as returned by active_exports)."""
        try:
            results = self._table.submit_transaction(self._operations(export, etag, from_index))
        except TableTransactionError as exc:
            if exc.error_code in ("UpdateConditionNotSatisfied", "ConditionNotMet"):
                raise ConcurrentUpdate("export changed since it was read") from exc
            if exc.error_code == "ResourceNotFound" and not from_index:
                return self._update_unindexed(export, etag)
            raise ConcurrentUpdate(str(exc.error_code)) from exc
        index_result = results[1] if len(results) > 1 else None
        if from_index and index_result is not None and not export.is_final:
            return Versioned(export, index_result["etag"], from_index=True)
        return Versioned(export, results[0]["etag"])

    def update_many(self, items: list[tuple[Export, str]]) -> int:
        """Poller writes, with index-row ETags, 50 exports (100 operations) a transaction; a
        batch that fails (one export changed meanwhile) is retried export by export, skipping
        the changed ones. Returns how many were written."""
        written = 0
        for start in range(0, len(items), 50):
            batch = items[start:start + 50]
            operations = [op for export, etag in batch for op in self._operations(export, etag, True)]
            try:
                self._table.submit_transaction(operations)
                written += len(batch)
                continue
            except TableTransactionError:
                pass
            for export, etag in batch:
                try:
                    self.update(export, etag, from_index=True)
                    written += 1
                except ConcurrentUpdate:
                    pass
        return written

    def _operations(self, export: Export, etag: str, from_index: bool) -> list:
        key = {"PartitionKey": PARTITION, "RowKey": _active_key(export.project_id, export.subject_set_id)}
        checked = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        export_op = ("update", _to_entity(export),
                     {"mode": UpdateMode.REPLACE, **({} if from_index else checked)})
        index_check = checked if from_index else {}
        if export.is_final:
            return [export_op, ("delete", key, index_check)]
        return [export_op, ("update", _index_entity(export), {"mode": UpdateMode.REPLACE, **index_check})]

    def _update_unindexed(self, export: Export, etag: str) -> Versioned:
        """An export without an index row (it was final already, or written before the index
        existed): a plain conditional replace."""
        try:
            result = self._table.update_entity(_to_entity(export), mode=UpdateMode.REPLACE, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentUpdate("export changed since it was read") from exc
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise ConcurrentUpdate("export changed since it was read") from exc
            raise
        return Versioned(export, result["etag"])

    def _delete_marker(self, marker) -> None:
        try:
            self._table.delete_entity(PARTITION, marker["RowKey"], etag=marker.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass
        except HttpResponseError as exc:
            if exc.status_code not in (404, 412):
                raise

    def ping(self) -> None:
        """Cheap storage round trip for the health check."""
        next(iter(self._table.query_entities(f"PartitionKey eq '{PARTITION}' and RowKey eq 'health'",
                                             results_per_page=1)), None)
