"""Section 2: peak RSS of the worker process while it exports 100,000 and 1,000,000 frames."""

from __future__ import annotations

from bench.report import Table, log, secs
from bench.rig import Rig


def run(rig: Rig, t: Table) -> None:
    opts = rig.opts
    lat = opts.memory_latency
    t.section(f"2. Peak RSS of the worker process (own process; Panoptes latency {lat * 1000:.0f} ms)")
    saved = rig.panoptes.latency
    rig.panoptes.latency = lat
    try:
        for frames in opts.memory_frames:
            subjects = frames // 2
            set_id = rig.new_set(subjects)
            log(f"memory: {frames:,} frames ({subjects:,} subjects x 2)")
            result, requests, _ = rig.export_child(set_id)
            measured = result["runs"][0]
            idle, peak = result["idle_kb"] / 1024, measured["peak_kb"] / 1024
            t.row(f"{frames:,} frames: idle worker RSS", f"{idle:.1f} MB")
            t.row(
                f"{frames:,} frames: peak RSS (VmHWM)",
                f"{peak:.1f} MB",
                "" if result["hwm_reset"] else "(VmHWM not resettable: includes start-up)",
            )
            t.row(
                f"{frames:,} frames: peak above idle",
                f"{peak - idle:.1f} MB",
                f"(export took {secs(measured['wall'])}, {requests:,} requests)",
            )
            if frames >= 1_000_000:
                t.target(
                    "peak RSS for 1,000,000 frames <= 150 MB above idle",
                    peak - idle <= 150,
                    f"{peak - idle:.1f} MB",
                )
    finally:
        rig.panoptes.latency = saved
    if lat != opts.panoptes_latency:
        t.note(
            f"memory runs use Panoptes latency {lat * 1000:.0f} ms to fit the time budget "
            "(memory does not depend on it)"
        )
