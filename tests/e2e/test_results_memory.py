"""A real-sized detections file is accounted for against its manifest in one streaming pass each,
with memory that grows only by compact arrays, never the file's strings (the 1,000,000-image
figures are in `make bench`)."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.harness import ROOT
from tests.tracing import untraced_env

IMAGES = 300_000
MISSING = [5, 70_000, 299_999]
LIMIT_MB = 40  # arrays of about 50 bytes an image are 15 MB; the file itself is over 100 MB

CHILD = textwrap.dedent("""
    import json, sys
    from exports import accounting
    from exports.ml_service import MlServiceClient
    from shared.urls import parse_url

    def rss_peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    url, manifest_path = sys.argv[1], sys.argv[2]
    client = MlServiceClient("http://127.0.0.1:1/v4", "zooniverse")
    idle = rss_peak_kb()
    with client.results(parse_url(url), max_bytes=1 << 31, deadline_seconds=300) as stream:
        detections = accounting.read_detections(stream)
        size = stream.bytes_read
    written = [0, 0]
    def csv_out(data): written[0] += len(data)
    def rerun_out(data): written[1] += len(data)
    with open(manifest_path, "rb") as manifest:
        found = accounting.account(manifest, detections, 0.5, csv_out, rerun_out)
    print(json.dumps({"idle_kb": idle, "peak_kb": rss_peak_kb(), "bytes": size, "csv_bytes": written[0],
                      "counts": [found.images_sent, found.images_scored, found.images_failed,
                                 found.images_missing, found.images_likely_empty, found.subjects_sent]}))
""")


@pytest.mark.no_cover
@pytest.mark.slow
def test_a_few_hundred_thousand_images_in_bounded_memory(stack, tmp_path):
    body = stack.start_export().json()
    stack.settle()
    assert stack.ml.wait_for_downloads(10)
    task = stack.get(body["id"]).json()["ml_task_id"]
    stack.ml.configure(
        task, results_images=IMAGES, failure_rate=0.05, missing_rows=MISSING, results_chunked=True
    )
    stack.ml.set_status(task, "completed")
    url = stack.ml.task(task)["message"]["output_file_urls"]["detections"]

    # The manifest those images came from: every synthetic row, the missing ones included. The
    # file's images come from the emulator as dicts, not parsed from the 128 MB file (a third of
    # the CPU; the stand-in's tests check that the dicts are what the file holds).
    images = list(stack.ml.iter_detection_images(task))
    rows = [[i["file"], i["meta"]] for i in images]
    for index in MISSING:  # where the missing rows were, in order (the file left them out)
        rows.insert(index, [f"https://panoptes-uploads.zooniverse.org/missing/{index}.jpeg", rows[0][1]])
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(rows))

    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(manifest)],
        cwd=ROOT,
        # Not under `make test`'s coverage tracer: it would double the child's time and add its
        # own memory to the figure under test (exports/accounting.py is covered by its unit tests).
        env=untraced_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    above_idle_mb = (report["peak_kb"] - report["idle_kb"]) / 1024
    file_mb = report["bytes"] / 2**20
    assert file_mb > 100, file_mb  # really a large file (indent=1, as the service writes it)
    assert above_idle_mb < LIMIT_MB, f"{above_idle_mb:.1f} MB above idle for a {file_mb:.0f} MB file"

    # The same counts as reading the whole file at once (the correctness guard).
    failed = sum("failure" in i for i in images)
    scored = [i for i in images if "failure" not in i]
    empty = sum(1 for i in scored if (1 - i["max_detection_conf"]) * 100 >= 50)
    sent, got_scored, got_failed, missing, got_empty, subjects = report["counts"]
    assert (sent, got_scored, got_failed, missing) == (len(rows), len(scored), failed, len(MISSING))
    assert got_empty == empty and failed > 0 and empty > 0
    assert report["csv_bytes"] > subjects > 0
