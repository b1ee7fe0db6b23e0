"""Section 1b: Hamlet's way (panoptes-client's SubjectSet.subjects, one blob) on the same
stand-in and sets as section 1, against section 1's figures."""

from __future__ import annotations

from bench.common import PROJECT_ID
from bench.hamlet_baseline import run_baseline
from bench.report import Table, log, secs
from bench.rig import Rig


def run(rig: Rig, t: Table) -> None:
    opts = rig.opts
    t.section(
        "1b. Hamlet-style baseline (panoptes-client 1.7.1 SubjectSet.subjects, one blob), same stand-in"
    )
    for n in opts.baseline_sizes:
        ours = rig.exports_measured.get(n)
        if ours is None:
            continue
        sample = min(n, opts.baseline_max)
        log(f"baseline for {n:,} subjects" + (f" (sample of {sample:,})" if sample < n else ""))
        rig.panoptes.reset_counts()
        result = run_baseline(
            PROJECT_ID,
            ours.set_id,
            rig.panoptes.url,
            rig.services.container,
            f"bench-hamlet-{n}.json",
            limit=sample if sample < n else None,
        )
        requests = rig.panoptes.total_requests
        scale = n / result.subjects
        wall, requests_n = result.wall * scale, round(requests * scale)
        label = "" if sample >= n else f" (extrapolated x{scale:g} from a measured sample of {sample:,})"
        t.row(
            f"N={n:,}: baseline wall time{' (extrapolated)' if scale != 1 else ''}", secs(wall), label.strip()
        )
        t.row(
            f"N={n:,}: baseline Panoptes requests",
            f"{requests_n:,}",
            f"(measured {requests:,})" if scale != 1 else "",
        )
        if sample >= n:
            ours_bytes = rig.services.container.get_blob_client(ours.blob).download_blob().readall()
            same = ours_bytes == result.manifest
            t.row(f"N={n:,}: baseline manifest == our manifest (bytes)", "yes" if same else "NO")
        wall_ratio = wall / ours.wall
        req_ratio = requests_n / max(ours.requests, 1)
        t.row(f"N={n:,}: baseline/ours wall time", f"{wall_ratio:.1f}x")
        t.row(f"N={n:,}: baseline/ours Panoptes requests", f"{req_ratio:.1f}x")
        if n == 10_000:
            t.target(
                "10,000 subjects: >= 50x fewer Panoptes requests than baseline",
                req_ratio >= 50,
                f"{req_ratio:.1f}x{label}",
            )
            t.target(
                "10,000 subjects: >= 20x less wall time than baseline",
                wall_ratio >= 20,
                f"{wall_ratio:.1f}x{label}",
            )
