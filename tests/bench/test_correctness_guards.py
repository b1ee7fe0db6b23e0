"""Guards behind the benchmark's speed: concurrency must not change the manifest, and the
number of Panoptes requests must stay ceil(N/100) plus a constant. No timings here."""

import math

import pytest

from exports.manifest import ManifestEncoder
from exports.panoptes import PanoptesClient
from standins.panoptes import PanoptesStandIn

PROJECT, SET = "1234", "77"


@pytest.fixture
def panoptes():
    with PanoptesStandIn() as standin:
        standin.add_project(PROJECT, "Guards")
        yield standin


def manifest(standin, concurrency, set_id=SET, expected_count=None, on_first=None):
    client = PanoptesClient(standin.url, timeout=10, retries=3, backoff=0.01)
    encoder = ManifestEncoder(PROJECT, set_id)
    chunks, pages = [], []
    for page in client.iter_subject_pages(
        None, set_id, concurrency, on_first=on_first, expected_count=expected_count
    ):
        pages.append(page.page)
        chunks.append(encoder.encode_page(page.subjects))
    chunks.append(encoder.finish())
    return b"".join(chunks), encoder.counts, pages


def test_concurrent_pages_give_the_same_bytes_as_sequential(panoptes):
    panoptes.add_synthetic_subject_set(SET, PROJECT, "set", 1_050, frames=2)
    sequential, counts, pages = manifest(panoptes, 1)
    concurrent, counts8, pages8 = manifest(panoptes, 8)
    assert concurrent == sequential
    assert pages == pages8 == list(range(1, 12))
    assert counts.images == counts8.images == 2_100 and counts8.subjects == 1_050


def test_out_of_order_pages_keep_the_order(panoptes):
    panoptes.add_synthetic_subject_set(SET, PROJECT, "set", 1_000, frames=2)
    sequential, _, _ = manifest(panoptes, 1)
    panoptes.faults.add(r"page=3\b", "slow", delay=0.3)  # page 3 arrives after pages 4-9
    panoptes.faults.add(r"page=2\b", "slow", delay=0.15)
    panoptes.reset_counts()
    concurrent, _, pages = manifest(panoptes, 8)
    assert concurrent == sequential
    assert pages == list(range(1, 11))
    assert panoptes.count("/api/subjects") == 10


def test_a_failed_page_is_retried_and_the_bytes_do_not_change(panoptes):
    panoptes.add_synthetic_subject_set(SET, PROJECT, "set", 1_000, frames=2)
    sequential, _, _ = manifest(panoptes, 1)
    fault = panoptes.faults.add(r"page=5\b", "status", status=500, times=1)
    panoptes.faults.add(r"page=7\b", "slow", delay=0.1)
    panoptes.reset_counts()
    concurrent, _, _ = manifest(panoptes, 8)
    assert fault.hits == 1
    assert concurrent == sequential
    assert panoptes.count("/api/subjects") == 10 + 1  # ten pages and one retry


@pytest.mark.parametrize("hint", [1_050, 40_000, 300, 0])
def test_the_size_hint_changes_no_byte(panoptes, hint):
    """The export's recorded set size lets pages 2.. go out with page 1; page 1 stays the
    authority, whatever the hint says (right, far too big, too small, missing)."""
    n = 1_050
    panoptes.add_synthetic_subject_set(SET, PROJECT, "set", n, frames=2)
    sequential, _, _ = manifest(panoptes, 1)
    panoptes.faults.add(r"page=1\b", "slow", delay=0.3)
    panoptes.reset_counts()
    asked_before_page_1 = []
    on_first = lambda page: asked_before_page_1.extend(  # noqa: E731
        int(r.query["page"]) for r in panoptes.requests
    )
    data, counts, pages = manifest(panoptes, 8, expected_count=hint, on_first=on_first)
    assert data == sequential and pages == list(range(1, 12)) and counts.subjects == n
    requests = panoptes.count("/api/subjects")
    if hint == n:
        assert requests == 11 and sorted(asked_before_page_1) == list(range(1, 12))
    elif hint > n:
        assert 11 <= requests <= 4 * 8  # spare pages only within the first 4 x concurrency
    else:
        assert requests == 11
        assert sorted(asked_before_page_1) == list(range(1, max(1, math.ceil(hint / 100)) + 1))


@pytest.mark.parametrize("n", [1_050, 2_000])
@pytest.mark.parametrize("concurrency", [1, 8])
def test_requests_are_one_per_hundred_subjects(panoptes, n, concurrency):
    panoptes.add_synthetic_subject_set(SET, PROJECT, "set", n, frames=2)
    panoptes.reset_counts()
    data, counts, _ = manifest(panoptes, concurrency)
    assert counts.subjects == n
    assert panoptes.total_requests == math.ceil(n / 100)  # plus a constant of zero here
    assert panoptes.count("/api/subjects") == math.ceil(n / 100)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"PANOPTES_PAGE_CONCURRENCY": "1"}, {"PANOPTES_PAGE_CONCURRENCY": "8"}],
    indirect=False,
)
def test_whole_worker_request_count_and_bytes(stack, settings_overrides):
    """Through the HTTP start and the queue worker: ceil(N/100) subject pages plus a few calls."""
    n = 1_050
    stack.panoptes.add_synthetic_subject_set("9001", "1234", "Guard set", n, frames=2)
    stack.panoptes.faults.add(r"page=3\b", "slow", delay=0.2)
    stack.panoptes.reset_counts()
    response = stack.start_export(subject_set="9001")
    assert response.status_code == 202, response.text
    stack.settle(60)
    export = stack.export(response.json()["id"])
    assert export.status == "submitted", (export.error_code, export.error_message)
    subject_pages = stack.panoptes.count("/api/subjects")
    assert subject_pages == math.ceil(n / 100)
    # me + project_roles + subject_sets/S for the POST (AUTH_CACHE_SECONDS=0 in the stack).
    assert stack.panoptes.total_requests - subject_pages <= 3
    with PanoptesStandIn() as reference:
        reference.add_project("1234", "ref")
        reference.add_synthetic_subject_set("9001", "1234", "Guard set", n, frames=2)
        client = PanoptesClient(reference.url)
        encoder = ManifestEncoder("1234", "9001")
        expected = (
            b"".join(encoder.encode_page(p.subjects) for p in client.iter_subject_pages(None, "9001", 1))
            + encoder.finish()
        )
    blob = stack.services.container.get_blob_client(export.manifest_blob)
    assert blob.download_blob().readall() == expected


def test_a_page_count_the_subject_count_does_not_support_is_not_followed():
    """A malformed page 1 (page_count far above what count needs) must not send the worker
    after thousands of empty pages."""
    from exports.panoptes import PanoptesClient, SubjectPage

    class Lying(PanoptesClient):
        def __init__(self):
            super().__init__("http://unused")
            self.asked = []

        def subjects_page(self, token, subject_set_id, page):
            self.asked.append(page)
            subjects = [{"id": str(page * 1000 + i), "locations": []} for i in range(100 if page <= 2 else 0)]
            return SubjectPage(subjects, page, page_count=10_000, count=150, next_page=page + 1)

    client = Lying()
    pages = list(client.iter_subject_pages(None, "1", concurrency=4))
    assert client.asked == [1, 2, 3] and len(pages) == 3
