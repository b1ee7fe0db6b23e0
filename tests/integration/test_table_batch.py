"""shared/table_batch.py: the same request bytes as azure-data-tables' submit_transaction, the
same effects on Azurite, refusals reported per operation, and the store's fallback."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient, UpdateMode

from exports import model
from shared import table_batch
from exports.store import ConcurrentUpdate, ExportStore
from shared.table_batch import DELETE, REPLACE, UPSERT


@pytest.fixture
def table(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_table("b" + uuid.uuid4().hex[:12])
    yield client
    client.delete_table()


def sdk_body(table, monkeypatch, sdk_operations) -> bytes:
    """The $batch body azure-data-tables sends for these operations (captured on the wire)."""
    sent = []
    original = requests.Session.send

    def spy(session, request, **kwargs):
        if request.url.endswith("$batch"):
            sent.append(request.body)
        return original(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", spy)
    try:
        table.submit_transaction(sdk_operations)
    except Exception:
        pass  # only the request matters here
    monkeypatch.setattr(requests.Session, "send", original)
    [body] = sent
    return body


def test_the_body_is_the_sdks_byte_for_byte(table, monkeypatch):
    first = table.create_entity({"PartitionKey": "p", "RowKey": "it's", "doc": "x"})
    entity = {"PartitionKey": "p", "RowKey": "it's", "doc": '{"a": "é 🦓 \\" \\n"}', "export_id": "1-2-3"}
    other = {"PartitionKey": "p", "RowKey": "active-1-2", "doc": "y"}
    gone = {"PartitionKey": "p", "RowKey": "z z"}
    check = {"etag": first["etag"], "match_condition": MatchConditions.IfNotModified}
    expected = sdk_body(table, monkeypatch, [
        ("update", entity, {"mode": UpdateMode.REPLACE, **check}),
        ("upsert", other, {"mode": UpdateMode.REPLACE}),
        ("delete", gone, {"etag": 'W/"datetime\'2026-01-01T00%3A00%3A00Z\'"',
                          "match_condition": MatchConditions.IfNotModified})])
    text = expected.decode()
    batch = re.match(r"--(batch_\S+)\r\n", text)[1]
    changeset = re.search(r"boundary=(changeset_\S+)\r\n", text)[1]
    date = re.search(r"x-ms-date: (.+?)\r\n", text)[1]
    ours = table_batch.build_body(table, [(REPLACE, entity, first["etag"]), (UPSERT, other, None),
                                          (DELETE, gone, 'W/"datetime\'2026-01-01T00%3A00%3A00Z\'"')],
                                  batch, changeset, date)
    assert ours == expected


def test_operations_apply_together_and_return_etags(table):
    a = table.create_entity({"PartitionKey": "p", "RowKey": "a", "doc": "1"})
    b = table.create_entity({"PartitionKey": "p", "RowKey": "b", "doc": "1"})
    etags = table_batch.submit(table, [(REPLACE, {"PartitionKey": "p", "RowKey": "a", "doc": "2"}, a["etag"]),
                                       (UPSERT, {"PartitionKey": "p", "RowKey": "c", "doc": "3"}, None),
                                       (DELETE, {"PartitionKey": "p", "RowKey": "b"}, b["etag"])])
    rows = {e["RowKey"]: e for e in table.list_entities()}
    assert sorted(rows) == ["a", "c"] and rows["a"]["doc"] == "2" and rows["c"]["doc"] == "3"
    assert etags == [rows["a"].metadata["etag"], rows["c"].metadata["etag"]]


def test_a_refused_operation_applies_nothing(table):
    a = table.create_entity({"PartitionKey": "p", "RowKey": "a", "doc": "1"})
    table.update_entity({"PartitionKey": "p", "RowKey": "a", "doc": "changed"})
    with pytest.raises(table_batch.BatchRejected) as info:
        table_batch.submit(table, [(UPSERT, {"PartitionKey": "p", "RowKey": "new", "doc": "x"}, None),
                                   (REPLACE, {"PartitionKey": "p", "RowKey": "a", "doc": "2"}, a["etag"])])
    assert info.value.code == "UpdateConditionNotSatisfied" and info.value.index == 1
    assert [e["RowKey"] for e in table.list_entities()] == ["a"]


def test_what_it_does_not_handle_is_refused_before_sending(table):
    with pytest.raises(table_batch.BatchUnsupported):
        table_batch.submit(table, [(UPSERT, {"PartitionKey": "p", "RowKey": "a", "n": 1}, None)])
    with pytest.raises(table_batch.BatchUnsupported):
        table_batch.submit(table, [(REPLACE, {"PartitionKey": "p", "RowKey": "a", "doc": "x"}, None)])
    assert list(table.list_entities()) == []


def test_the_store_falls_back_to_the_sdk_when_the_fast_path_fails(table, monkeypatch, caplog):
    store = ExportStore(table)
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    export = model.new_export(model.new_export_id("1", "2", now), "1", "2", "9", now, dt.timedelta(hours=1))
    created, _ = store.create(export)

    def broken(table_client, operations):
        raise table_batch.BatchUnsupported("simulated")

    monkeypatch.setattr(table_batch, "submit", broken)
    ended = store.update(model.cancel(export, now), created)
    assert store.get(export.id) == ended and store.active_export_ids() == []
    assert "fell back" in caplog.text


def test_an_operation_refused_as_bad_input_is_not_applied_and_not_a_conflict(table):
    """Azurite, like Azure, refuses a string property over 64 KiB with a 400 inside the batch."""
    with pytest.raises(table_batch.BatchUnsupported):
        table_batch.submit(table, [(UPSERT, {"PartitionKey": "p", "RowKey": "ok", "doc": "x"}, None),
                                   (UPSERT, {"PartitionKey": "p", "RowKey": "big", "doc": "x" * 40_000}, None)])
    assert list(table.list_entities()) == []


def make_active(table):
    store = ExportStore(table)
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    exports = [model.new_export(model.new_export_id("1", str(i), now), "1", str(i), "9", now,
                                dt.timedelta(hours=1)) for i in (2, 3, 4)]
    return store, now, [store.create(e)[0] for e in exports]


def test_only_a_changed_row_is_a_conflict(table, monkeypatch):
    store, now, [first, *_] = make_active(table)

    def refuse(status, code):
        def submit(table_client, operations):
            raise table_batch.BatchRejected(0, status, code)
        monkeypatch.setattr(table_batch, "submit", submit)

    refuse(412, "UpdateConditionNotSatisfied")
    with pytest.raises(ConcurrentUpdate):
        store.update(model.cancel(first.export, now), first)
    refuse(500, "InternalError")  # a storage error, not "someone else wrote first"
    with pytest.raises(HttpResponseError) as info:
        store.update(model.cancel(first.export, now), first)
    assert not isinstance(info.value, ConcurrentUpdate)
    assert store.get(first.export.id) == first


def test_one_failing_export_does_not_hold_up_the_poller_writes(table, monkeypatch):
    store, now, exports = make_active(table)
    monkeypatch.setattr(table_batch, "submit", lambda table_client, ops: (_ for _ in ()).throw(
        table_batch.BatchRejected(0, 412, "UpdateConditionNotSatisfied")))  # the batch loses...
    update = store.update

    def flaky(export, current):  # ...and, one by one, the first export meets a storage error
        if export.id == exports[0].export.id:
            raise HttpResponseError(message="storage hiccup")
        return update(export, current)

    monkeypatch.setattr(store, "update", flaky)
    changes = [(v, dataclasses.replace(v.export, ml_message="new")) for v in exports]
    assert store.update_many(changes) == 2
    assert [store.get(v.export.id).export.ml_message for v in exports] == [None, "new", "new"]
