"""A tick over 200 active exports: hanging or failing tasks never hold up the others, and the
tick reads only active exports, however long the history."""

import dataclasses
import datetime as dt

import pytest

from exports import model
from exports.contract import Status


def make_submitted(stack, count, project="1234"):
    services = stack.services
    services.container.get_blob_client("shared-manifest.json").upload_blob(
        b'[["https://x/a.jpg", "{\\"subject_id\\": \\"1\\"}"]]', overwrite=True
    )
    sas = services.storage.read_sas_url(
        services.settings.container_name, "shared-manifest.json", dt.timedelta(hours=1)
    )
    now = services.clock()
    ids = []
    for i in range(count):
        task_id = services.ml.submit(sas, f"scale-{i}")
        export = model.new_export(
            model.new_export_id(project, str(30000 + i), now),
            project,
            str(30000 + i),
            "42",
            now,
            dt.timedelta(hours=1),
        )
        export = dataclasses.replace(
            export,
            status=Status.SUBMITTED,
            ml_task_id=task_id,
            ml_status="created",
            submitted_at=now,
            manifest_blob="shared-manifest.json",
            manifest_images=1,
        )
        services.store.create(export)
        ids.append(export.id)
    assert stack.ml.wait_for_downloads(30)
    return ids


def make_history(stack, count):
    services = stack.services
    now = services.clock()
    for i in range(count):
        export = model.new_export(
            model.new_export_id("1234", str(40000 + i), now),
            "1234",
            str(40000 + i),
            "42",
            now,
            dt.timedelta(hours=1),
        )
        created, _ = services.store.create(export)
        services.store.update(model.fail(created.export, "ml_failed", "old", now), created)


@pytest.mark.parametrize("settings_overrides", [{"ML_TIMEOUT_SECONDS": "1", "ML_POLL_CONCURRENCY": "32"}])
@pytest.mark.no_cover
@pytest.mark.slow
def test_tick_with_200_active_exports_and_faulty_tasks(stack, monkeypatch):
    make_history(stack, 300)
    ids = make_submitted(stack, 200)
    tasks = {stack.export(i).ml_task_id: i for i in ids}
    hanging, failing = list(tasks)[:10], list(tasks)[10:20]
    for task in hanging:
        stack.ml.faults.add(f"/task/{task}", "slow", delay=3)
    for task in failing:
        stack.ml.faults.add(f"/task/{task}", "status", status=500)

    table = stack.services.store.table
    point_reads, queries = [], []
    original_get, original_query = table.get_entity, table.query_entities
    monkeypatch.setattr(table, "get_entity", lambda *a, **k: point_reads.append(a) or original_get(*a, **k))
    monkeypatch.setattr(
        table, "query_entities", lambda query, **k: queries.append(query) or original_query(query, **k)
    )
    stack.tick()

    # One range query over the active index (and one over the pending callbacks, none here), no
    # point reads: the 300 old exports are never read.
    assert point_reads == [] and len(queries) == 2
    assert "RowKey ge 'active-'" in queries[0] and "RowKey ge 'callback-'" in queries[1]
    statuses = {task: stack.export(export_id).status for task, export_id in tasks.items()}
    assert all(statuses[t] == "submitted" for t in hanging + failing)  # untouched until next tick
    advanced = [t for t in tasks if t not in hanging + failing]
    assert all(statuses[t] == "running" for t in advanced)
    assert stack.host.errors == []
