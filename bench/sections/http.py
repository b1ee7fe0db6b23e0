"""Section 4: the latency of POST .../exports through the local host, against its own storage
round trips (the table insert and the queue send every POST must make)."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import requests
from azure.core.exceptions import ResourceExistsError

import function_app
from bench.common import OWNER_TOKEN, PROJECT_ID, median, percentile
from bench.report import Table, log, secs
from bench.rig import ROOT, Rig
from devtools.host import LocalHost
from exports import model
from exports.messages import ExportMessage
from exports.services import reset_services
from exports.store import _active_entity


def storage_floor(rig: Rig, samples: int = 60) -> tuple[float, float]:
    """Medians of the table insert and the queue send a POST makes, measured alone."""
    services = rig.services
    table = services.store.table
    now = services.clock()
    txn, send = [], []
    scratch = services.storage.queue("bench-floor-scratch")
    with contextlib.suppress(ResourceExistsError):
        scratch.create_queue()
    for i in range(samples):
        export = model.new_export(
            model.new_export_id("1", str(500_000 + i), now),
            "1",
            str(500_000 + i),
            "900",
            now,
            dt.timedelta(hours=24),
            None,
        )
        entity = {**_active_entity(export), "PartitionKey": "bench-floor"}
        started = time.perf_counter()
        table.create_entity(entity)  # what the POST writes: the export's active row
        txn.append(time.perf_counter() - started)
        # The same message the POST sends: the token sealed for this export.
        body = ExportMessage(export.id, services.cipher.encrypt("bench-owner-token", export.id)).encode()
        started = time.perf_counter()
        scratch.send_message(body)
        send.append(time.perf_counter() - started)
    scratch.delete_queue()
    return median(txn[5:]), median(send[5:])


def run(rig: Rig, t: Table) -> None:
    n, lat = rig.opts.http_requests, rig.opts.panoptes_latency
    t.section(
        f"4. HTTP start latency: {n} POST /api/projects/{{p}}/subject-sets/{{s}}/exports "
        f"(Panoptes latency {lat * 1000:.0f} ms, AUTH_CACHE_SECONDS default)"
    )
    sets = [rig.new_set(10) for _ in range(n + 1)]
    env = dict(rig.env)  # AUTH_CACHE_SECONDS left at its default
    reset_services()
    # No queue consumer: see the note printed below.
    host = LocalHost(function_app.app, env=env, host_json=ROOT / "host.json", timers=False, queues=False)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {OWNER_TOKEN}"}
    latencies: list[float] = []
    statuses: list[int] = []
    cold: list[float] = []
    with host:
        url = host.url + "/api/projects/{}/subject-sets/{}/exports"
        first = session.post(url.format(PROJECT_ID, sets[0]), headers=headers, timeout=30)
        if first.status_code != 202:  # it warms the auth cache and the clients
            raise RuntimeError(f"the first POST answered {first.status_code}: {first.text}")
        rig.panoptes.reset_counts()
        # Half the POSTs name sets never listed (each needs Panoptes' subject-set lookup);
        # the other half follow GET /api/projects/{p}/exports, as the Subject Assistant's
        # listing page does before the user clicks export.
        half = 1 + n // 2
        log(f"http: {n} POSTs")
        for set_id in sets[1:half]:
            started = time.perf_counter()
            response = session.post(url.format(PROJECT_ID, set_id), headers=headers, timeout=30)
            cold.append(time.perf_counter() - started)
            statuses.append(response.status_code)
        listing = session.get(f"{host.url}/api/projects/{PROJECT_ID}/exports", headers=headers, timeout=60)
        if listing.status_code != 200:
            raise RuntimeError(f"the listing answered {listing.status_code}: {listing.text}")
        for set_id in sets[half:]:
            started = time.perf_counter()
            response = session.post(url.format(PROJECT_ID, set_id), headers=headers, timeout=30)
            latencies.append(time.perf_counter() - started)
            statuses.append(response.status_code)
        panoptes_calls = rig.panoptes.counts
    reset_services()
    # Panoptes' subject-set lookup alone (what every POST must ask; not cacheable across sets).
    lookup = []
    for set_id in sets[1:31]:
        started = time.perf_counter()
        rig.services.panoptes.subject_set(OWNER_TOKEN, set_id)
        lookup.append(time.perf_counter() - started)
    txn, send = storage_floor(rig)
    floor = txn + send
    med, p95 = median(latencies), percentile(latencies, 95)
    created = sum(1 for s in statuses if s == 202)
    t.row("responses 202 (new export)", f"{created}/{n}")
    t.row(
        "Panoptes requests during the POSTs",
        f"{sum(panoptes_calls.values()):,}",
        ", ".join(f"{k} {v}" for k, v in sorted(panoptes_calls.items())),
    )
    t.row(f"{len(cold)} POSTs of unlisted sets: median", secs(median(cold)))
    t.row(
        f"{len(cold)} POSTs of unlisted sets: p95",
        secs(percentile(cold, 95)),
        f"{percentile(cold, 95) / floor:.2f}x the storage floor",
    )
    t.row(f"{len(latencies)} POSTs after the listing: median", secs(med))
    t.row(f"{len(latencies)} POSTs after the listing: p95", secs(p95))
    t.row("table insert alone (median)", secs(txn))
    t.row("queue send alone (median)", secs(send))
    t.row("storage floor (table insert + queue send)", secs(floor))
    t.row("Panoptes GET /api/subject_sets/S alone (median)", secs(median(lookup)))
    t.row("after the listing: median / storage floor", f"{med / floor:.2f}x")
    t.row("after the listing: p95 / storage floor", f"{p95 / floor:.2f}x")
    t.row(
        "unlisted: p95 / (storage floor + subject-set lookup)",
        f"{percentile(cold, 95) / (floor + median(lookup)):.2f}x",
    )
    t.note(
        "the host ran without its queue consumer: 500 queued exports would otherwise build "
        "concurrently on this 2-core machine and measure the worker, not the HTTP path "
        "(in Azure the queue worker scales out on its own instances)"
    )
    t.note(
        "the target is measured on the Subject Assistant's flow (listing, then export): a set "
        "it listed needs no Panoptes lookup within AUTH_CACHE_SECONDS; an unlisted set "
        "adds one Panoptes round trip, shown above"
    )
    t.target(
        "HTTP start p95 <= 3x its storage floor",
        p95 <= 3 * floor,
        f"{p95 / floor:.2f}x ({secs(p95)} vs {secs(floor)})",
    )
