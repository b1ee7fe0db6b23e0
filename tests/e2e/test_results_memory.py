"""A real-sized detections file is summarised in one streaming pass with memory that does not
grow with the file (the 1,000,000-image figures are in `make bench`)."""

import json
import subprocess
import sys
import textwrap

from exports import results
from tests.harness import ROOT

IMAGES = 300_000

CHILD = textwrap.dedent("""
    import json, sys
    from exports import results
    from exports.ml_service import MlServiceClient

    def rss_peak_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    url, threshold = sys.argv[1], float(sys.argv[2])
    client = MlServiceClient("http://127.0.0.1:1/v4", "zooniverse")
    idle = rss_peak_kb()
    with client.results(url, max_bytes=1 << 31, deadline_seconds=120) as stream:
        counts = results.count_images(stream, threshold)
        size = stream.bytes_read
    print(json.dumps({"idle_kb": idle, "peak_kb": rss_peak_kb(), "bytes": size,
                      "counts": [counts.returned, counts.failed, counts.likely_empty]}))
""")


def test_a_few_hundred_thousand_images_in_bounded_memory(stack):
    body = stack.start_export().json()
    stack.settle()
    assert stack.ml.wait_for_downloads(10)
    task = stack.get(body["id"]).json()["ml_task_id"]
    stack.ml.configure(task, results_images=IMAGES, failure_rate=0.05, results_chunked=True)
    stack.ml.set_status(task, "completed")
    url = stack.ml.task(task)["message"]["output_file_urls"]["detections"]

    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, "0.2"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    above_idle_mb = (report["peak_kb"] - report["idle_kb"]) / 1024
    file_mb = report["bytes"] / 2**20
    assert file_mb > 100, file_mb  # really a large file (indent=1, as the service writes it)
    assert above_idle_mb < 32, f"{above_idle_mb:.1f} MB above idle for a {file_mb:.0f} MB file"

    # The same counts as reading the whole file at once (the correctness guard).
    whole = json.loads(b"".join(stack.ml.iter_detections_bytes(task)))
    images = whole["images"]
    failed = sum("failure" in i for i in images)
    empty = sum(1 for i in images if "failure" not in i and i.get("max_detection_conf", 0) < 0.2)
    assert report["counts"] == [len(images), failed, empty] and len(images) == IMAGES
    assert failed > 0 and empty > 0
    assert results.summary(results.Counts(*report["counts"]), IMAGES, 0.2, 0)["images_missing"] == 0
