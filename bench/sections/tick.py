"""Section 3: one poll tick over 1,000 active exports, concurrent and one by one, against its
floor (ceil(N / ML_POLL_CONCURRENCY) ML round trips)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import math

from bench.common import PROJECT_ID, create_export
from bench.report import Table, log, secs
from bench.rig import Rig, run_child
from exports.contract import Status


def run(rig: Rig, t: Table) -> None:
    services = rig.services
    n, c, lat = rig.opts.tick_exports, rig.settings.ml_poll_concurrency, rig.opts.ml_latency
    t.section(
        f"3. Poll tick over {n:,} active exports (ML latency {lat * 1000:.0f} ms, ML_POLL_CONCURRENCY={c})"
    )
    log(f"tick: preparing {n:,} submitted exports with ML tasks")
    rig.finish_active_exports()
    blob = services.container.get_blob_client("bench-tick-manifest.json")
    blob.upload_blob(b'[["https://x/a.jpg", "{}"], ["https://x/b.jpg", "{}"]]', overwrite=True)
    sas = services.storage.read_sas_url(rig.settings.container_name, blob.blob_name, dt.timedelta(hours=2))
    rig.ml.latency = 0
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        task_ids = list(pool.map(lambda i: services.ml.submit(sas, f"bench-tick-{i}"), range(n)))
        rig.ml.wait_for_downloads(120)
        for tid in task_ids:  # every poll finds the task still running with a new message
            rig.ml.set_plan(
                tid,
                [
                    (
                        "running",
                        f"Check number {k}, 1 out of 1 shards have completed successfully, 0 shards have failed.",
                    )
                    for k in range(1, 20)
                ],
            )
        now = services.clock()

        def make(i: int) -> object:
            return create_export(
                services,
                PROJECT_ID,
                str(900_000 + i),
                token=None,
                status=Status.SUBMITTED,
                ml_task_id=task_ids[i],
                ml_status="created",
                manifest_blob=blob.blob_name,
                manifest_subjects=1,
                manifest_images=2,
                manifest_skipped=0,
                subjects_done=1,
                subjects_total=1,
                submit_started_at=now,
                submitted_at=now,
            )

        list(pool.map(make, range(n)))
    rig.ml.latency = lat
    log("tick: timing run_tick (warm-up, concurrent, one by one)")
    # The emulator's monitor moves every task one step before each tick (`between`), so every
    # poll finds its task still running with a new message.
    result = run_child("tick", {"concurrencies": [c, c, 1]}, rig.env, between=rig.ml.run_monitor)
    _, concurrent_tick, sequential = result["ticks"]
    for tick in result["ticks"]:
        if tick["active"] != n or tick["outcomes"].get("running") != n:
            raise RuntimeError(f"unexpected tick outcome: {tick}")
    floor = math.ceil(n / c) * lat
    floor_seq = n * lat
    t.row(f"tick, ML_POLL_CONCURRENCY={c} (after a warm-up tick)", secs(concurrent_tick["wall"]))
    t.row("tick, ML_POLL_CONCURRENCY=1", secs(sequential["wall"]))
    t.row("one-by-one / concurrent", f"{sequential['wall'] / concurrent_tick['wall']:.1f}x")
    t.row(f"floor ceil({n}/{c}) x latency", secs(floor))
    t.row("concurrent tick / floor", f"{concurrent_tick['wall'] / floor:.2f}x")
    t.row(f"one-by-one tick / its floor {n} x latency", f"{sequential['wall'] / floor_seq:.2f}x")
    t.note(
        "a tick reads the active rows 100 at a time with one range query, polls each as "
        "soon as it is read, and writes the changes 100 exports a transaction while later "
        "answers arrive (every export changes: the task reports a new 'Check number k' "
        "message each time, as the real service does)"
    )
    t.target(
        f"poll tick of {n:,} exports <= 1.5x floor",
        concurrent_tick["wall"] <= 1.5 * floor,
        f"{concurrent_tick['wall'] / floor:.2f}x ({secs(concurrent_tick['wall'])} vs {secs(floor)})",
    )
