"""The Panoptes stand-in: wire shapes, paging, auth, privacy, faults, and
compatibility with panoptes-client 1.7.1 (Hamlet's access pattern)."""

import json
import time

import pytest
import requests

from standins import PanoptesStandIn, load_sample
from standins.faults import FaultPlan
from standins.server import Request

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

API_CT = "application/vnd.api+json; version=1; charset=utf-8"


def subjects(n, first=100, frames=1):
    return [
        {
            "id": str(first + i),
            "locations": [{"image/jpeg": f"https://img.example/{first + i}-{f}.jpeg"} for f in range(frames)],
        }
        for i in range(n)
    ]


@pytest.fixture
def panoptes():
    with PanoptesStandIn() as p:
        p.add_user("owner-token", "42", "owner")
        p.add_user("stranger-token", "77", "stranger")
        p.add_project("1", "Public", roles={"42": ["owner"]})
        p.add_project("2", "Private", private=True, roles={"42": ["collaborator"]})
        p.add_subject_set("10", "1", "Forty five", subjects(45))
        p.add_subject_set("20", "2", "Secret", subjects(3, first=900))
        yield p


def get(p, path, token=None, **params):
    headers = {"Accept": "application/vnd.api+json; version=1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(p.url + "/api" + path, params=params, headers=headers, timeout=5)


@pytest.fixture
def client(panoptes, monkeypatch):
    from panoptes_client import Panoptes

    for var in ("PANOPTES_USERNAME", "PANOPTES_PASSWORD", "PANOPTES_CLIENT_SECRET", "PANOPTES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    client = Panoptes.connect(endpoint=panoptes.url)
    yield client
    Panoptes._local.panoptes_client = None  # the client is thread-local global state


def test_panoptes_client_reads_subject_set_like_hamlet(panoptes, client):
    from panoptes_client import SubjectSet

    panoptes.reset_counts()
    got = list(SubjectSet.find(10).subjects)
    assert [s.id for s in got] == [str(100 + i) for i in range(45)]
    assert got[3].locations == [{"image/jpeg": "https://img.example/103-0.jpeg"}]
    # N per-subject loads + ceil(N/20) set_member_subjects pages + 1 find.
    assert panoptes.count("/api/subjects") == 45
    assert panoptes.count("/api/set_member_subjects") == 3
    assert panoptes.count("/api/subject_sets") == 1
    assert panoptes.total_requests == 49


def test_panoptes_client_with_token_sees_private_set(panoptes, client):
    from datetime import datetime, timedelta

    from panoptes_client import SubjectSet

    client.bearer_token, client.bearer_expires = "owner-token", datetime.now() + timedelta(hours=2)
    client.logged_in = True
    assert [s.id for s in SubjectSet.find(20).subjects] == ["900", "901", "902"]


def test_subjects_paging_default_cap_and_out_of_range(panoptes):
    r = get(panoptes, "/subjects", subject_set_id="10")
    assert r.status_code == 200 and r.headers["Content-Type"] == API_CT
    body = r.json()
    meta = body["meta"]["subjects"]
    assert len(body["subjects"]) == 20 and meta["page_size"] == 20
    assert meta == {
        **meta,
        "page": 1,
        "count": 45,
        "page_count": 3,
        "previous_page": None,
        "next_page": 2,
        "previous_href": None,
        "next_href": "/subjects?page=2&subject_set_id=10",
        "first_href": "/subjects?subject_set_id=10",
        "last_href": "/subjects?page=3&subject_set_id=10",
    }
    first = body["subjects"][0]
    assert first["id"] == "100" and first["links"]["project"] == "1" and first["locations"]

    r = get(panoptes, "/subjects", subject_set_id="10", page_size=500).json()
    assert r["meta"]["subjects"]["page_size"] == 100 and len(r["subjects"]) == 45
    assert r["meta"]["subjects"]["next_page"] is None

    r = get(panoptes, "/subjects", subject_set_id="10", page_size=20, page=3).json()
    assert [s["id"] for s in r["subjects"]] == [str(i) for i in range(140, 145)]
    r = get(panoptes, "/subjects", subject_set_id="10", page=9).json()
    assert r["subjects"] == [] and r["meta"]["subjects"]["count"] == 45


def test_single_resources_and_404(panoptes):
    s = get(panoptes, "/subject_sets/10").json()["subject_sets"][0]
    assert s == {
        **s,
        "id": "10",
        "display_name": "Forty five",
        "set_member_subjects_count": 45,
        "links": {"project": "1", "workflows": []},
    }
    assert get(panoptes, "/subjects/101").json()["subjects"][0]["id"] == "101"
    assert [x["id"] for x in get(panoptes, "/subjects", id="101").json()["subjects"]] == ["101"]
    assert get(panoptes, "/projects/1").json()["projects"][0]["display_name"] == "Public"
    for path in ("/subject_sets/999", "/subjects/999999", "/projects/999", "/nope", "/subject_sets/10/x"):
        r = get(panoptes, path)
        assert r.status_code == 404, path
        assert r.json()["errors"][0]["message"]
    sets = get(panoptes, "/subject_sets", project_id="1").json()
    assert [x["id"] for x in sets["subject_sets"]] == ["10"]


def test_me_and_project_roles(panoptes):
    me = get(panoptes, "/me", token="owner-token")
    assert me.status_code == 200 and me.json()["users"][0]["id"] == "42"
    assert me.json()["users"][0]["login"] == "owner"
    assert get(panoptes, "/me").status_code == 401
    assert get(panoptes, "/me", token="bogus").json()["errors"][0]["message"]
    roles = get(panoptes, "/project_roles", token="owner-token", project_id="1", user_id="42").json()
    role = roles["project_roles"][0]
    assert role["roles"] == ["owner"] and role["links"]["project"] == "1"
    assert role["links"]["owner"] == {**role["links"]["owner"], "id": "42", "type": "users"}
    none = get(panoptes, "/project_roles", token="stranger-token", project_id="1", user_id="77").json()
    assert none["project_roles"] == []


def test_expired_token_gets_401_everywhere(panoptes):
    panoptes.expire_token("owner-token")
    for path in ("/me", "/subject_sets/10", "/subjects"):
        r = get(panoptes, path, token="owner-token")
        assert r.status_code == 401 and "expired" in r.json()["errors"][0]["message"]


def test_private_project_is_hidden_without_role(panoptes):
    assert get(panoptes, "/subject_sets/20").status_code == 404
    assert get(panoptes, "/subject_sets/20", token="stranger-token").status_code == 404
    assert get(panoptes, "/subjects", subject_set_id="20").json()["subjects"] == []
    assert get(panoptes, "/subjects/900").status_code == 404
    assert get(panoptes, "/set_member_subjects", subject_set_id="20").json()["set_member_subjects"] == []
    assert get(panoptes, "/project_roles", project_id="2").json()["project_roles"] == []
    ok = get(panoptes, "/subjects", token="owner-token", subject_set_id="20").json()
    assert [s["id"] for s in ok["subjects"]] == ["900", "901", "902"]
    assert get(panoptes, "/subject_sets/20", token="owner-token").status_code == 200


def test_set_member_subjects_links(panoptes):
    r = get(panoptes, "/set_member_subjects", subject_set_id="10", page=3).json()
    assert [m["links"]["subject"] for m in r["set_member_subjects"]] == [str(i) for i in range(140, 145)]
    assert r["meta"]["set_member_subjects"]["next_href"] is None


def test_replace_subjects_mid_read(panoptes):
    page1 = get(panoptes, "/subjects", subject_set_id="10").json()["subjects"]
    panoptes.replace_subjects("10", subjects(30, first=95))  # five new subjects shift everything
    page2 = get(panoptes, "/subjects", subject_set_id="10", page=2).json()["subjects"]
    assert page1[-1]["id"] == "119" and page2[0]["id"] == "115"  # duplicates appear across pages


def test_synthetic_set_serves_deep_page_lazily(panoptes):
    panoptes.add_synthetic_subject_set("30", "1", "Huge", 100_000, frames=3, first_subject_id=5_000_000)
    started = time.perf_counter()
    r = get(panoptes, "/subjects", subject_set_id="30", page_size=100, page=1000).json()
    assert time.perf_counter() - started < 1.0
    ids = [s["id"] for s in r["subjects"]]
    assert ids[0] == str(5_000_000 + 99_900) and ids[-1] == str(5_000_000 + 99_999) and len(ids) == 100
    loc = r["subjects"][0]["locations"]
    assert len(loc) == 3 and loc[0]["image/jpeg"].startswith(
        "https://panoptes-uploads.zooniverse.org/production/subject_location/"
    )
    assert r["meta"]["subjects"]["count"] == 100_000 and r["meta"]["subjects"]["next_page"] is None
    assert get(panoptes, "/subject_sets/30").json()["subject_sets"][0]["set_member_subjects_count"] == 100_000
    assert (
        get(panoptes, "/subjects/5000042").json()["subjects"][0]["locations"]
        == get(panoptes, "/subjects", subject_set_id="30", page=3).json()["subjects"][2]["locations"]
    )
    assert panoptes._sets["30"].subjects is None  # nothing stored per subject


def test_fault_status_times_then_ok(panoptes):
    fault = panoptes.faults.add(r"^/api/subjects\b", "status", status=500, times=2)
    assert [get(panoptes, "/subjects", subject_set_id="10").status_code for _ in range(3)] == [500, 500, 200]
    assert fault.hits == 2


def test_fault_429_retry_after_and_remove(panoptes):
    fault = panoptes.faults.add(r"/subject_sets", "status", status=429, retry_after=3)
    r = get(panoptes, "/subject_sets/10")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3" and r.json()["errors"]
    fault.remove()
    assert get(panoptes, "/subject_sets/10").status_code == 200


def test_fault_timeout_slow_drop_and_latency(panoptes):
    panoptes.faults.add(r"/me", "timeout", delay=1.0, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(panoptes.url + "/api/me", timeout=0.2)
    panoptes.faults.add(r"/projects", "drop", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(panoptes, "/projects/1")
    assert get(panoptes, "/projects/1").status_code == 200
    panoptes.faults.add(r"/projects", "slow", delay=0.3, times=1)
    started = time.perf_counter()
    assert get(panoptes, "/projects/1").status_code == 200
    assert time.perf_counter() - started >= 0.3
    panoptes.latency = 0.2
    started = time.perf_counter()
    get(panoptes, "/projects/1")
    assert time.perf_counter() - started >= 0.2


def test_fault_probability_is_reproducible():
    def pattern(seed):
        import random

        plan = FaultPlan(random.Random(seed))
        plan.add("x", "drop", probability=0.3)
        return [plan.match("GET", "/x") is not None for _ in range(50)]

    assert pattern(7) == pattern(7) and 5 < sum(pattern(7)) < 30
    plan = FaultPlan()
    plan.add("x", "status", status=503, method="POST")
    assert plan.match("GET", "/x") is None and plan.match("POST", "/x").status == 503
    plan.clear()
    assert plan.match("POST", "/x") is None


def test_request_log_and_counters(panoptes):
    panoptes.reset_counts()
    get(panoptes, "/subjects", subject_set_id="10", page="2")
    get(panoptes, "/subjects/101")
    assert panoptes.requests[0] == ("GET", "/api/subjects", {"subject_set_id": "10", "page": "2"})
    assert panoptes.count("/api/subjects") == 2 and panoptes.count("/api/subjects/101") == 1
    assert panoptes.counts["/api/subjects/:id"] == 1


def test_sample_data():
    with PanoptesStandIn() as p:
        info = load_sample(p)
        assert info.subject_count == 25 and info.skipped_frames == 1
        all_subjects = get(p, "/subjects", subject_set_id=info.subject_set_id, page_size=100).json()[
            "subjects"
        ]
        assert len(all_subjects) == 25
        assert sum(len(s["locations"]) for s in all_subjects) == info.image_count + info.skipped_frames
        assert any("video/mp4" in loc for s in all_subjects for loc in s["locations"])
        assert (
            get(p, f"/subject_sets/{info.empty_set_id}").json()["subject_sets"][0][
                "set_member_subjects_count"
            ]
            == 0
        )
        other = get(p, f"/subject_sets/{info.other_set_id}", token=info.outsider_token).json()
        assert other["subject_sets"][0]["links"]["project"] == info.other_project_id
        roles = get(p, "/project_roles", project_id=info.project_id, user_id=info.collaborator_id).json()
        assert roles["project_roles"][0]["roles"] == ["collaborator"]
        assert (
            get(p, "/project_roles", project_id=info.project_id, user_id=info.outsider_id).json()[
                "project_roles"
            ]
            == []
        )
        assert get(p, "/me", token=info.owner_token).json()["users"][0]["id"] == info.owner_id


def test_synthetic_pages_are_rendered_once_with_the_same_bytes():
    small = PanoptesStandIn(page_cache_bytes=120_000)  # room for two 100-subject pages
    small.add_project("1", "P")
    small.add_synthetic_subject_set("7", "1", "S", 450, frames=2)
    uncached = PanoptesStandIn(page_cache_bytes=0)
    uncached.add_project("1", "P")
    uncached.add_synthetic_subject_set("7", "1", "S", 450, frames=2)

    def page(standin, k, **extra):
        query = {"subject_set_id": "7", "page_size": "100", "page": str(k), **extra}
        return standin.handle(Request("GET", "/api/subjects", query, {})).body

    assert small.prerender("7") == 5
    assert small._page_cache_bytes <= 120_000 and len(small._page_cache) == 2  # LRU kept the last
    for k in (1, 3, 5, 3, 6):
        assert page(small, k) == page(uncached, k)
        assert json.loads(page(small, k))["meta"]["subjects"]["page"] == k
    assert page(small, 2, order="x") == page(uncached, 2, order="x")  # other params: own entry
    assert not uncached._page_cache
