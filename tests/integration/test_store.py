"""ExportStore against Azurite: ETag concurrency, one row per active export and its move when it
ends, range queries."""

import concurrent.futures
import dataclasses
import datetime as dt
import uuid

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.data.tables import TableServiceClient

from exports import model
from exports.contract import Status
from exports.store import SET_INDEX_PREFIXES, ConcurrentUpdate, ExportStore

T0 = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.get_table_client("t" + uuid.uuid4().hex[:12])
    export_store = ExportStore(table)
    export_store.ensure_table()
    return export_store


def new(project="12", subject_set="34", at=T0):
    return model.new_export(
        model.new_export_id(project, subject_set, at), project, subject_set, "9", at, dt.timedelta(hours=1)
    )


def rows(store):
    """Keys of the export rows (the subject sets' latest/completed index rows left out)."""
    return sorted(key for key in all_rows(store) if not key.startswith(SET_INDEX_PREFIXES))


def all_rows(store):
    return sorted(e["RowKey"] for e in store.table.list_entities(select=["RowKey"]))


def test_round_trip_keeps_every_field(store):
    export = new()
    created, was_created = store.create(export)
    assert was_created and created.active_row and store.get(export.id).export == export
    assert rows(store) == ["active-12-34"]  # one row per active export
    finished = store.update(model.fail(export, "x", "y", T0), created)
    assert store.get(export.id).export == finished.export and not store.get(export.id).active_row
    assert store.get("12-34-nope") is None and store.get("../etc") is None


def test_stale_etag_loses_and_fresh_read_wins(store):
    created, _ = store.create(new())
    first = store.update(model.claim_for_build(created.export, "w1", T0, dt.timedelta(minutes=2)), created)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.claim_for_build(created.export, "w2", T0, dt.timedelta(minutes=2)), created)
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


def test_an_export_that_ends_moves_to_its_own_row_atomically(store):
    created, _ = store.create(new())
    assert store.active_export_ids() == [created.export.id]
    store.update(model.fail(created.export, "x", "y", T0), created)
    assert store.active_export_ids() == [] and rows(store) == [created.export.id]
    again, was_created = store.create(new(at=T0 + dt.timedelta(seconds=1)))
    assert was_created and store.active_export_ids() == [again.export.id]
    assert store.get(created.export.id).export.status == "failed"  # the old one, still found
    assert store.get(again.export.id).export.status == "queued"


def test_a_stale_final_write_moves_nothing(store):
    created, _ = store.create(new())
    store.update(model.claim_for_build(created.export, "w", T0, dt.timedelta(minutes=2)), created)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.cancel(created.export, T0), created)  # stale
    assert rows(store) == ["active-12-34"]
    assert store.get(created.export.id).export.status == "building"


def test_a_finished_export_is_updated_in_place_and_never_reactivated(store):
    created, _ = store.create(new())
    done = store.update(model.cancel(created.export, T0), created)
    later = store.update(dataclasses.replace(done.export, ml_task_id="abc"), done)
    assert store.get(created.export.id).export.ml_task_id == "abc"
    with pytest.raises(ConcurrentUpdate):
        store.update(dataclasses.replace(done.export, ml_task_id="def"), done)  # stale
    with pytest.raises(ValueError):
        store.update(dataclasses.replace(later.export, status=Status.RUNNING), later)


def end(store, export, change=lambda e: model.fail(e, "x", "y", T0)):
    current = store.get(export.id)
    return store.update(change(current.export), current).export


def test_listing_reads_each_sets_latest_and_latest_completed_export(store):
    """The listing's three range queries stay inside their project (12 is not 123 or 1) and
    find, per subject set, the newest export and the newest completed one, whatever came after."""
    completed = dataclasses.replace(new("12", "34", T0), status=Status.RUNNING)
    store.create(completed)
    completed = end(store, completed, lambda e: dataclasses.replace(e, status=Status.COMPLETED))
    failed = new("12", "34", T0 + dt.timedelta(seconds=5))
    store.create(failed)
    failed = end(store, failed)
    active = new("12", "34", T0 + dt.timedelta(seconds=9))
    store.create(active)
    other_set = new("12", "345", T0)
    store.create(other_set)
    other_set = end(store, other_set, lambda e: model.cancel(e, T0))
    for project in ("123", "1"):
        neighbour = new(project, "34", T0)
        store.create(neighbour)
        end(store, neighbour, lambda e: dataclasses.replace(e, status=Status.COMPLETED))

    listing = store.latest_of_project("12")
    assert listing == {"34": (active, completed), "345": (other_set, None)}
    assert listing["34"][0].status == "queued" and listing["34"][1].status == "completed"
    assert set(store.latest_of_project("1")) == {"34"} and store.latest_of_project("99") == {}
    # One row per export, plus a latest row per set that ever ended and a completed row per set
    # that ever completed.
    assert len(rows(store)) == 6 and len(all_rows(store)) == 6 + 4 + 3


@pytest.mark.parametrize("after_query", [1, 2])
def test_an_export_that_ends_during_a_listing_is_listed(store, monkeypatch, after_query):
    """The listing's queries are not one snapshot: an export that ends between two of them is
    still listed (as it was, or as it ended), never missing; and a set's older finished export
    is not listed over it."""
    earlier = dataclasses.replace(new("12", "34", T0), status=Status.RUNNING)
    store.create(earlier)
    end(store, earlier, lambda e: dataclasses.replace(e, status=Status.COMPLETED))
    ending = {  # a set that exported before, and a first export
        set_id: store.create(
            dataclasses.replace(new("12", set_id, T0 + dt.timedelta(seconds=5)), status=Status.RUNNING)
        )[0]
        for set_id in ("34", "35")
    }
    query, calls = store._query, []

    def query_then_end(prefix, *args, **kwargs):
        rows = list(query(prefix, *args, **kwargs))
        calls.append(prefix)
        if len(calls) == after_query:
            for current in ending.values():
                store.update(dataclasses.replace(current.export, status=Status.COMPLETED), current)
        return iter(rows)

    monkeypatch.setattr(store, "_query", query_then_end)
    listing = store.latest_of_project("12")
    assert len(calls) == 3 and len(calls) > after_query
    for set_id, current in ending.items():
        assert listing[set_id][0].id == current.export.id, (set_id, listing)


def test_poller_writes_are_checked_against_the_active_rows(store):
    first, _ = store.create(new("12", "34"))
    second, _ = store.create(new("12", "35"))
    third, _ = store.create(new("12", "36"))
    worker_view = store.update(model.claim_for_build(first.export, "w", T0, dt.timedelta(minutes=2)), first)
    active = {v.export.id: v for v in store.active_exports(page_size=2)}  # two round trips
    assert active[first.export.id].export == worker_view.export
    assert all(v.active_row for v in active.values()) and len(active) == 3

    # The worker writes again after the poller's read: the poller's write for it must lose.
    store.update(model.renew_lease(worker_view.export, "w", T0, dt.timedelta(minutes=3)), worker_view)
    poller_changes = [
        (active[first.export.id], model.cancel(active[first.export.id].export, T0)),
        (active[second.export.id], model.cancel(active[second.export.id].export, T0)),
        (
            active[third.export.id],
            dataclasses.replace(active[third.export.id].export, ml_message="still here"),
        ),
    ]
    assert store.update_many(poller_changes) == 2
    assert store.get(first.export.id).export.status == "building"
    assert store.get(second.export.id).export.status == "cancelled"
    assert store.get(third.export.id).export.ml_message == "still here"
    assert sorted(v.export.id for v in store.active_exports()) == sorted([first.export.id, third.export.id])

    # And a worker holding an old ETag loses against a poller write.
    reread = store.get(first.export.id)
    [indexed] = [v for v in store.active_exports() if v.export.id == first.export.id]
    store.update(model.fail(indexed.export, "x", "y", T0), indexed)
    with pytest.raises(ConcurrentUpdate):
        store.update(model.cancel(reread.export, T0), reread)
    assert store.get(first.export.id).export.status == "failed"


def test_update_many_packs_100_operations_a_transaction(store, monkeypatch):
    created = [store.create(new("7", str(100 + i)))[0] for i in range(130)]
    sizes = []
    submit = store.table.submit_transaction
    monkeypatch.setattr(store.table, "submit_transaction", lambda ops: sizes.append(len(ops)) or submit(ops))
    changes = [(v, dataclasses.replace(v.export, ml_message=f"m{i}")) for i, v in enumerate(created[:120])]
    changes += [(v, model.fail(v.export, "x", "y", T0)) for v in created[120:]]  # three operations each
    assert store.update_many(changes) == 130
    assert sizes == [100, 50] and len(store.active_export_ids()) == 120


def test_long_and_non_ascii_messages_fit_in_one_row(store):
    """The export is one JSON property (64 KiB of UTF-16 at most): long texts are cut to a size
    that always fits, whatever the characters (astral ones take two UTF-16 units)."""
    created, _ = store.create(new())
    noisy = dataclasses.replace(
        created.export, ml_message="🦓" * 20_000, error_message="é" * 20_000, summary={"note": "ü" * 100}
    )
    stored = store.get(store.update(noisy, created).export.id).export
    assert stored.ml_message == "🦓" * 8_000 and stored.error_message == "é" * 8_000
    assert stored.summary == {"note": "ü" * 100}


def test_json_escapes_never_make_a_row_too_big(store):
    """Control characters (a traceback with ANSI colours) take six characters each in JSON."""
    created, _ = store.create(new())
    noisy = "\x1b[31mE\x07\x07\x1b[0m\n" * 3_000  # 6 JSON characters for each control one
    failed = model.fail(dataclasses.replace(created.export, ml_message=noisy), "ml_failed", noisy, T0)
    stored = store.get(store.update(failed, created).export.id).export
    assert stored.status == "failed" and noisy.startswith(stored.error_message)
    assert noisy.startswith(stored.ml_message) and len(stored.ml_message) > 1_000


def test_apply_retries_a_change_against_the_newer_version(store):
    created, _ = store.create(new())
    store.update(model.claim_for_build(created.export, "w", T0, dt.timedelta(minutes=2)), created)
    seen = []

    def cancel(export):
        seen.append(export.status)
        return model.cancel(export, T0)

    done = store.apply(created, cancel)  # `created` is stale: applied again to the claimed one
    assert seen == ["queued", "building"] and done.export.status == "cancelled"
    assert store.apply(done, lambda e: None) is done  # nothing to write
    with pytest.raises(model.InvalidTransition):
        store.apply(done, lambda e: model.cancel(e, T0))  # what the change raises propagates


@pytest.mark.parametrize("lost", ["the request", "the answer"])
def test_a_connection_lost_on_create_creates_the_export_once(store, monkeypatch, lost):
    """Storage may reset a connection while an insert is on it (Azurite closing a kept-alive
    connection did, once, in `make test`). The insert is conditional, so trying it again is
    safe: the export is made once and reported as made, whether the first try reached the
    table or not; a report of "joined" would leave it unqueued."""
    real = store.table.create_entity
    calls = []

    def reset_once(entity):
        calls.append(entity["RowKey"])
        if len(calls) == 1:
            if lost == "the answer":
                real(entity)
            raise ServiceResponseError(
                "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
            )
        return real(entity)

    monkeypatch.setattr(store.table, "create_entity", reset_once)
    export = new()
    created, was_created = store.create(export)
    assert was_created and created.export == export and len(calls) == 2
    assert rows(store) == ["active-12-34"]
    assert store.create(new(at=T0 + dt.timedelta(seconds=1)))[1] is False  # the set's export is there


def test_a_connection_lost_on_every_try_is_an_error(store, monkeypatch):
    def reset(entity):
        raise ServiceResponseError("Connection reset by peer")

    monkeypatch.setattr(store.table, "create_entity", reset)
    with pytest.raises(ServiceResponseError):
        store.create(new())
    assert rows(store) == []
