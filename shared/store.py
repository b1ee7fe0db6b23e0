"""ExportStore: export state in Azure Table Storage, with optimistic concurrency (ETags).

Layout, all in one partition so that a state change and its index entry commit atomically in
one entity-group transaction:
- RowKey `{project_id}-{subject_set_id}-{inverted time}{random}` (= the export id): the export.
  A range query on the `{project}-` or `{project}-{set}-` prefix lists a project's or a subject
  set's exports, newest first, without scanning other projects.
- RowKey `active-{project_id}-{subject_set_id}`: the active-export marker of a subject set,
  holding the active export's id. Created together with the export (so a second concurrent
  POST conflicts and gets the existing export) and deleted together with the export's final
  transition. The range `active-` is the index of active exports the poller and the stuck-work
  sweep read: cost grows with active work, not history.
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
            marker = {"PartitionKey": PARTITION, "RowKey": key, "export_id": export.id}
            try:
                results = self._table.submit_transaction([("create", _to_entity(export)),
                                                          ("create", marker)])
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

    def update(self, export: Export, etag: str) -> Versioned:
        """Replace the export if unchanged since `etag`; a final export also leaves the index."""
        entity = _to_entity(export)
        if export.is_final:
            key = _active_key(export.project_id, export.subject_set_id)
            try:
                marker = self._table.get_entity(PARTITION, key)
            except ResourceNotFoundError:
                marker = None
            if marker is not None and marker.get("export_id") == export.id:
                operations = [
                    ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag,
                                        "match_condition": MatchConditions.IfNotModified}),
                    ("delete", {"PartitionKey": PARTITION, "RowKey": key},
                     {"etag": marker.metadata["etag"], "match_condition": MatchConditions.IfNotModified}),
                ]
                try:
                    results = self._table.submit_transaction(operations)
                except TableTransactionError as exc:
                    raise ConcurrentUpdate(str(exc.error_code)) from exc
                return Versioned(export, results[0]["etag"])
        try:
            result = self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrentUpdate("export changed since it was read") from exc
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise ConcurrentUpdate("export changed since it was read") from exc
            raise
        return Versioned(export, result["etag"])

    def drop_stale_marker(self, export_id: str, project_id: str, subject_set_id: str) -> None:
        """Remove an index entry whose export is final or missing (left by a crash)."""
        try:
            marker = self._table.get_entity(PARTITION, _active_key(project_id, subject_set_id))
        except ResourceNotFoundError:
            return
        if marker.get("export_id") == export_id:
            self._delete_marker(marker)

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
