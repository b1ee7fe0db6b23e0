"""Load through the local host: 200 concurrent POSTs for 50 subject sets, then 2,000 status
GETs while the worker builds and submits. Run alone with `pytest -m load -s` to see figures."""

from __future__ import annotations

import collections
import concurrent.futures
import statistics
import threading
import time

import pytest
import requests

from tests.harness import ml_jobs_per_export

SETS = [str(9000 + i) for i in range(50)]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@pytest.mark.load
@pytest.mark.parametrize("settings_overrides", [{"AUTH_CACHE_SECONDS": "60"}])  # production default
@pytest.mark.no_cover
@pytest.mark.slow
def test_200_posts_for_50_sets_then_2000_status_gets(stack):
    """Breaks if concurrent POSTs for one subject set create two exports (active index not
    atomic), if any export is submitted twice or not at all, or if any request errors."""
    for i, set_id in enumerate(SETS):
        stack.panoptes.add_subject_set(
            set_id,
            "1234",
            f"Load {i}",
            [
                {
                    "id": str(800000 + 10 * i + k),
                    "locations": [{"image/jpeg": f"https://x.example/{i}/{k}.jpg"}],
                }
                for k in range(3)
            ],
        )
    url = stack.host.url
    local = threading.local()

    def session():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def post(n):
        set_id = SETS[n % len(SETS)]
        started = time.perf_counter()
        r = session().post(
            f"{url}/api/projects/1234/subject-sets/{set_id}/exports",
            headers={"Authorization": "Bearer demo-owner-token"},
            timeout=60,
        )
        return set_id, r.status_code, r.json().get("id"), time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        posts = list(pool.map(post, range(200)))
    statuses = collections.Counter(status for _, status, _, _ in posts)
    ids_by_set = collections.defaultdict(set)
    for set_id, _, export_id, _ in posts:
        ids_by_set[set_id].add(export_id)
    assert statuses == {202: 50, 200: 150}, statuses
    assert all(len(ids) == 1 for ids in ids_by_set.values()) and len(ids_by_set) == 50
    export_ids = [next(iter(ids)) for ids in ids_by_set.values()]

    def get(n):
        started = time.perf_counter()
        r = session().get(
            f"{url}/api/exports/{export_ids[n % 50]}",
            headers={"Authorization": "Bearer demo-owner-token"},
            timeout=60,
        )
        return r.status_code, time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        gets = list(pool.map(get, range(2000)))
    elapsed = time.perf_counter() - started
    get_statuses = collections.Counter(status for status, _ in gets)
    assert get_statuses == {200: 2000}, get_statuses
    stack.settle(120)
    rows = stack.table_rows()  # one row per export, active or finished
    assert len(rows) == 50
    assert all(r["status"] == "submitted" for r in rows), collections.Counter(r["status"] for r in rows)
    jobs = ml_jobs_per_export(stack.ml)
    assert stack.ml.accepted_count == 50 and set(jobs) == set(export_ids) and set(jobs.values()) == {1}
    assert stack.host.errors == []
    post_latency = [t for *_, t in posts]
    get_latency = [t for _, t in gets]
    print(
        f"\nload: POST x200 p50 {statistics.median(post_latency) * 1000:.0f} ms, "
        f"p99 {percentile(post_latency, 99) * 1000:.0f} ms; GET x2000 in {elapsed:.1f}s "
        f"({2000 / elapsed:.0f}/s) p50 {statistics.median(get_latency) * 1000:.0f} ms, "
        f"p99 {percentile(get_latency, 99) * 1000:.0f} ms; exports 50, ML jobs {stack.ml.accepted_count}"
    )
