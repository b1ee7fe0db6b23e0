"""ExportStore against Azurite: ETag concurrency, the active index, range queries."""
import concurrent.futures
import datetime as dt
import uuid

import pytest
from azure.data.tables import TableServiceClient

from exports import model
from shared.store import ConcurrentUpdate, ExportStore

T0 = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def store(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.get_table_client("t" + uuid.uuid4().hex[:12])
    export_store = ExportStore(table)
    export_store.ensure_table()
    return export_store


def new(project="12", subject_set="34", at=T0):
    return model.new_export(model.new_export_id(project, subject_set, at), project, subject_set, "9", at,
                            dt.timedelta(hours=1))


def test_round_trip_keeps_every_field(store):
    export = new()
    store.create(export)
    assert store.get(export.id).export == export
    assert store.get("12-34-nope") is None and store.get("../etc") is None


def test_stale_etag_loses_and_fresh_read_wins(store):
    created, _ = store.create(new())
    first = store.update(model.claim_for_build(created.export, "w1", T0, dt.timedelta(minutes=2)), created.etag)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.claim_for_build(created.export, "w2", T0, dt.timedelta(minutes=2)), created.etag)
    assert store.get(created.export.id).export.lease_owner == "w1"
    # The loser re-reads and sees the winner's lease, so it cannot take over.
    reread = store.get(created.export.id)
    assert reread.etag == first.etag
    with pytest.raises(model.InvalidTransition):
        model.claim_for_build(reread.export, "w2", T0, dt.timedelta(minutes=2))


def test_concurrent_creates_for_one_subject_set_make_one_export(store):
    def attempt(i):
        return store.create(new(at=T0 + dt.timedelta(milliseconds=i)))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(16)))
    created = [v.export.id for v, was_created in results if was_created]
    assert len(created) == 1
    assert {v.export.id for v, _ in results} == set(created)
    assert store.active_export_ids() == created


def test_final_transition_leaves_the_active_index_atomically(store):
    created, _ = store.create(new())
    assert store.active_export_ids() == [created.export.id]
    store.update(model.fail(created.export, "x", "y", T0), created.etag)
    assert store.active_export_ids() == []
    again, was_created = store.create(new(at=T0 + dt.timedelta(seconds=1)))
    assert was_created and store.active_export_ids() == [again.export.id]


def test_failed_final_write_keeps_the_index(store):
    created, _ = store.create(new())
    store.update(model.claim_for_build(created.export, "w", T0, dt.timedelta(minutes=2)), created.etag)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.cancel(created.export, T0), created.etag)  # stale
    assert store.active_export_ids() == [created.export.id]
    assert store.get(created.export.id).export.status == "building"


def test_range_queries_stay_inside_project_and_subject_set(store):
    exports = [new("12", "34", T0), new("12", "34", T0 + dt.timedelta(seconds=5)), new("12", "345", T0),
               new("123", "34", T0), new("1", "2", T0)]
    for e in exports:
        if not store.create(e)[1]:
            current = store.get(store.active_export_id(e.project_id, e.subject_set_id))
            store.update(model.fail(current.export, "x", "y", T0), current.etag)
            store.create(e)
    assert [e.id for e in store.exports_of_subject_set("12", "34")] == [exports[1].id, exports[0].id]
    assert {e.id for e in store.exports_of_project("12")} == {exports[0].id, exports[1].id, exports[2].id}
    assert [e.id for e in store.exports_of_project("1")] == [exports[4].id]


def test_active_index_mirrors_the_export_and_guards_poller_writes(store):
    first, _ = store.create(new("12", "34"))
    second, _ = store.create(new("12", "35"))
    worker_view = store.update(model.claim_for_build(first.export, "w", T0, dt.timedelta(minutes=2)),
                               first.etag)
    active = {v.export.id: v for v in store.active_exports()}
    assert active[first.export.id].export == worker_view.export  # the mirror follows every write
    assert all(v.from_index for v in active.values())

    # The worker writes again after the poller's read: the poller's write for it must lose.
    store.update(model.renew_lease(worker_view.export, "w", T0, dt.timedelta(minutes=3)), worker_view.etag)
    poller_changes = [(model.cancel(v.export, T0), v.etag) for v in active.values()]
    assert store.update_many(poller_changes) == 1
    assert store.get(first.export.id).export.status == "building"
    assert store.get(second.export.id).export.status == "cancelled"
    assert [v.export.id for v in store.active_exports()] == [first.export.id]

    # And a worker holding the export row's old ETag loses against a poller write.
    reread = store.get(first.export.id)
    [indexed] = store.active_exports()
    store.update(model.fail(indexed.export, "x", "y", T0), indexed.etag, from_index=True)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.cancel(reread.export, T0), reread.etag)
    assert store.get(first.export.id).export.status == "failed" and store.active_exports() == []
