"""Section 5: the summary of a 1,000,000-image detections file, streamed, against json.load of
the same file (both in fresh processes, reading it over HTTP from the ML emulator)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bench.report import Table, log, secs
from bench.rig import Rig, run_child


def _mb_above_idle(run: dict[str, Any]) -> float:
    return float(run["peak_kb"] - run["idle_kb"]) / 1024


def run(rig: Rig, t: Table) -> None:
    services = rig.services
    n = rig.opts.results_images
    t.section(
        f"5. Results summary of a {n:,}-image detections file (indent=1, as the service "
        "writes it), served by the ML emulator"
    )
    log(f"results: a task with {n:,} images")
    blob = services.container.get_blob_client("bench-results-manifest.json")
    blob.upload_blob(b'[["https://x/a.jpg", "{}"]]', overwrite=True)
    sas = services.storage.read_sas_url(rig.settings.container_name, blob.blob_name, dt.timedelta(hours=2))
    saved, rig.ml.latency = rig.ml.latency, 0
    try:
        task = services.ml.submit(sas, "bench-results")
        rig.ml.wait_for_downloads(60)
        # Chunked: the emulator would otherwise count the whole file for its Content-Length
        # before the first byte, in both runs alike.
        rig.ml.configure(task, results_images=n, failure_rate=0.05, results_chunked=True)
        rig.ml.set_status(task, "completed")
        url = rig.ml.task(task)["message"]["output_file_urls"]["detections"]
        size = sum(len(piece) for piece in rig.ml.iter_detections_bytes(task))
        runs = {}
        for name, whole in (("ours", False), ("json.load", True), ("ours again", False)):
            log(f"results: {name}")
            runs[name] = run_child("results", {"url": url, "whole": whole}, rig.env, timeout=1800)
    finally:
        rig.ml.latency = saved
    ours = min(runs["ours"]["wall"], runs["ours again"]["wall"])
    base = runs["json.load"]
    ours_mb = max(_mb_above_idle(runs["ours"]), _mb_above_idle(runs["ours again"]))
    t.row("file size", f"{size / 2**20:,.0f} MB")
    t.row(
        "ours (streamed, ijson C backend): wall time",
        secs(ours),
        f"({secs(runs['ours']['wall'])}, {secs(runs['ours again']['wall'])})",
    )
    t.row("ours: peak RSS above idle", f"{ours_mb:.1f} MB")
    t.row("json.load of the same file: wall time", secs(base["wall"]), "(download whole, then json.loads)")
    t.row("json.load: peak RSS above idle", f"{_mb_above_idle(base):,.0f} MB")
    t.row("ours / json.load wall time", f"{ours / base['wall']:.2f}x")
    t.row(
        "same counts (images, failed, likely empty)",
        "yes" if runs["ours"]["counts"] == base["counts"] else "NO",
        str(base["counts"]),
    )
    t.note(
        "both read the file over HTTP from the emulator, which writes it as it sends it; each "
        "run is its own process (peak RSS is its VmHWM after a reset)"
    )
    t.target(
        f"summary of {n:,} images <= 1.0x json.load time",
        ours <= base["wall"],
        f"{ours / base['wall']:.2f}x ({secs(ours)} vs {secs(base['wall'])})",
    )
    t.target(f"summary of {n:,} images <= 64 MB above idle", ours_mb <= 64, f"{ours_mb:.1f} MB")
