"""Access control across projects and users, through the local host.

Users (tests.harness sample): 42 owner and 43 collaborator of project 1234 (A); 44 owner of
private project 9999 (B, subject set 7777). Nobody has a role on both.
"""

from __future__ import annotations

import concurrent.futures
import random

import pytest

from exports.contract import Status
from exports.messages import ExportMessage
from tests.harness import FIGURES, create_export_record, wait_final, wait_for

A, A_SET, B, B_SET = "1234", "5678", "9999", "7777"
OWNER_A, OWNER_B = "demo-owner-token", "demo-outsider-token"


def error_code(response):
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"]


def test_a_role_on_one_project_gives_nothing_on_another(stack):
    """Breaks if any route trusts the export id, the route's project or the subject set's
    project instead of the caller's role on the export's own project."""
    a_export = stack.start_export(A, A_SET, OWNER_A).json()
    b_export = stack.start_export(B, B_SET, OWNER_B).json()
    assert a_export["status"] == b_export["status"] == "queued"
    stack.settle()
    before = stack.export(b_export["id"])

    # Start: B's set through B's route (no role on B), and through A's route (set not in A).
    assert error_code(stack.start_export(B, B_SET, OWNER_A)) == (403, "forbidden")
    assert error_code(stack.start_export(A, B_SET, OWNER_A)) == (404, "subject_set_not_found")
    assert error_code(stack.start_export(B, A_SET, OWNER_B)) == (404, "subject_set_not_found")
    assert error_code(stack.start_export(A, A_SET, OWNER_B)) == (403, "forbidden")
    # List.
    assert error_code(stack.call("GET", f"/api/projects/{B}/exports", OWNER_A)) == (403, "forbidden")
    assert error_code(stack.call("GET", f"/api/projects/{A}/exports", OWNER_B)) == (403, "forbidden")
    listing = stack.call("GET", f"/api/projects/{A}/exports", OWNER_A).json()
    seen = [s["latest_export"] for s in listing["subject_sets"] if s["latest_export"]]
    assert seen and all(e["project_id"] == A for e in seen)
    assert B_SET not in {s["id"] for s in listing["subject_sets"]}
    # Read and cancel the other project's real export, and ids guessed from it.
    b_id = b_export["id"]
    suffix = b_id.split("-", 2)[2]
    guesses = [
        b_id,
        f"{A}-{B_SET}-{suffix}",
        f"{A}-{A_SET}-{suffix}",
        f"{B}-{A_SET}-{suffix}",
        b_id.upper(),
        b_id + "0",
        b_id[:-1],
        f"{B}-{B_SET}-" + "0" * 21,
    ]
    rng = random.Random(7)
    guesses += [f"{B}-{B_SET}-{suffix[:13]}{rng.getrandbits(32):08x}" for _ in range(10)]
    for guess in guesses:
        assert error_code(stack.get(guess, OWNER_A)) == (404, "export_not_found"), guess
        assert error_code(stack.call("POST", f"/api/exports/{guess}/cancel", OWNER_A)) == (
            404,
            "export_not_found",
        ), guess
    for guess in (a_export["id"], f"{B}-{A_SET}-" + a_export["id"].split("-", 2)[2]):
        assert error_code(stack.get(guess, OWNER_B)) == (404, "export_not_found")
        assert error_code(stack.call("POST", f"/api/exports/{guess}/cancel", OWNER_B)) == (
            404,
            "export_not_found",
        )
    # Nothing changed: B's export untouched, no extra exports, no cancel sent to the ML service.
    after = stack.export(b_id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
    assert stack.ml.cancel_calls == 0
    exports = stack.table_rows()  # one row per export, active or finished
    assert len(exports) == 2
    # Owners still see their own.
    assert stack.get(b_id, OWNER_B).status_code == 200
    assert stack.get(a_export["id"], OWNER_A).status_code == 200
    FIGURES["access_checks"] += 2 * len(guesses) + 8


def test_losing_the_role_loses_access_at_once(stack):
    """AUTH_CACHE_SECONDS=0 here: a collaborator removed from the project is refused on the
    next request. Breaks if roles are cached beyond the setting or taken from the export."""
    export_id = stack.start_export(token="demo-collaborator-token").json()["id"]
    assert stack.get(export_id, "demo-collaborator-token").status_code == 200
    stack.panoptes.set_roles(A, "43", [])
    assert error_code(stack.get(export_id, "demo-collaborator-token")) == (404, "export_not_found")
    assert error_code(stack.start_export(token="demo-collaborator-token")) == (403, "forbidden")
    stack.panoptes.set_roles(A, "43", ["tester"])  # a role, but not one that may export
    assert error_code(stack.start_export(token="demo-collaborator-token")) == (403, "forbidden")
    stack.settle()  # leave no queued message behind for the next test's host


@pytest.mark.parametrize("settings_overrides", [{"AUTH_CACHE_SECONDS": "60"}])
def test_concurrent_users_never_see_each_others_identity(stack):
    """Two users on two projects hammer the API from 16 threads with the auth cache on (its
    production default). Breaks if the cache (or any per-thread/global client state) hands one
    user's identity or roles to the other: `requested_by` would name the wrong user, or a
    user would be allowed on the other's project (or refused on their own)."""
    for i in range(6):
        stack.panoptes.add_subject_set(
            str(8100 + i),
            A,
            f"A{i}",
            [{"id": str(700000 + i), "locations": [{"image/jpeg": f"https://x.example/a{i}.jpg"}]}],
        )
        stack.panoptes.add_subject_set(
            str(8200 + i),
            B,
            f"B{i}",
            [{"id": str(710000 + i), "locations": [{"image/jpeg": f"https://x.example/b{i}.jpg"}]}],
        )
    users = {OWNER_A: ("42", A, "81"), OWNER_B: ("44", B, "82")}

    def one(n):
        token = OWNER_A if n % 2 else OWNER_B
        user, project, prefix = users[token]
        other = B if project == A else A
        kind = n % 5
        if kind == 0:
            r = stack.start_export(project, f"{prefix}0{n % 6}", token)
            assert r.status_code in (200, 202), r.text
            body = r.json()
            assert body["project_id"] == project and body["requested_by"] == user, (token, body)
        elif kind == 1:
            r = stack.call("GET", f"/api/projects/{project}/exports", token)
            assert r.status_code == 200, r.text
            for s in r.json()["subject_sets"]:
                if s["latest_export"]:
                    assert s["latest_export"]["requested_by"] == user
        elif kind == 2:
            assert error_code(stack.call("GET", f"/api/projects/{other}/exports", token)) == (
                403,
                "forbidden",
            )
        elif kind == 3:
            assert error_code(stack.start_export(other, f"{'82' if prefix == '81' else '81'}00", token)) == (
                403,
                "forbidden",
            )
        else:
            assert error_code(
                stack.start_export(project, f"{'82' if prefix == '81' else '81'}00", token)
            ) == (404, "subject_set_not_found")
        return n

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        done = list(pool.map(one, range(400)))
    assert len(done) == 400
    stack.settle(60)
    from exports.store import export_from_row

    for export in map(export_from_row, stack.table_rows()):
        expected_user = "42" if export.project_id == A else "44"
        assert export.requested_by == expected_user, export.id
    assert stack.host.errors == []
    FIGURES["access_checks"] += 400


def test_expired_token_in_a_queued_message_fails_token_expired(stack):
    """The message's (encrypted) token expired between the POST and the worker. Breaks if the
    worker retries a 401 as transient, or keeps the dead token in the record afterwards."""
    services = stack.services
    export, body = create_export_record(services)
    stack.panoptes.expire_token("demo-owner-token")
    services.queue.send_message(body)
    final = wait_final(stack, export.id)
    assert (final.status, final.error_code) == ("failed", "token_expired")
    assert "export again" in final.error_message
    assert final.token_ciphertext is None
    assert stack.ml.accepted_count == 0
    # Still visible (with the error) to another member of the project.
    shown = stack.get(export.id, "demo-collaborator-token").json()
    assert shown["error"]["code"] == "token_expired" and shown["status"] == Status.FAILED


@pytest.mark.parametrize("role", ["tester", "translator", "moderator", "scientist", "museum", "expert"])
def test_only_owners_and_collaborators_see_or_cancel_an_export(stack, role):
    """Any other project role (often given to volunteers) gets 404 export_not_found on read and
    cancel, sees nothing of the results link, and no cancel reaches the ML service."""
    stack.panoptes.add_user("role-token", "77", "someone")
    stack.panoptes.set_roles(A, "77", [role])
    export = stack.start_export().json()
    stack.settle()
    stack.tick(), stack.tick()
    assert stack.get(export["id"]).json()["status"] == "completed"
    before = stack.export(export["id"])
    for response in (
        stack.get(export["id"], "role-token"),
        stack.call("POST", f"/api/exports/{export['id']}/cancel", "role-token"),
    ):
        assert error_code(response) == (404, "export_not_found")
        assert stack.ml.root_url not in response.text and "results_url" not in response.text
    assert error_code(stack.call("GET", f"/api/projects/{A}/exports", "role-token")) == (403, "forbidden")
    assert stack.ml.cancel_calls == 0 and stack.export(export["id"]) == before


@pytest.mark.parametrize("settings_overrides", [{"AUTH_RETRY_SECONDS": "1", "PANOPTES_RETRIES": "4"}])
def test_access_checks_never_wait_long_on_panoptes(stack):
    """A Retry-After of minutes (or many retries) must not hold a request: past AUTH_RETRY_SECONDS
    of waiting in total the caller gets 502 panoptes_unavailable."""
    import time

    stack.panoptes.faults.add(r"/api/me", "status", status=429, retry_after=120)
    started = time.monotonic()
    assert error_code(stack.get("1234-5678-0000000000000abcdef01")) == (502, "panoptes_unavailable")
    assert time.monotonic() - started < 1.5
    stack.panoptes.faults.clear()
    stack.panoptes.faults.add(r"/api/me", "status", status=503, retry_after=0.4)
    started = time.monotonic()
    assert error_code(stack.get("1234-5678-0000000000000abcdef01")) == (502, "panoptes_unavailable")
    assert time.monotonic() - started < 2  # two retries fit in 1 s, the third does not


def test_a_rejected_token_costs_panoptes_one_call(stack):
    before = stack.panoptes.count("/api/me")
    for _ in range(20):
        response = stack.call("GET", f"/api/projects/{A}/exports", "made-up-token")
        assert error_code(response) == (401, "unauthenticated")
        assert "expired or was revoked" in response.json()["error"]["message"]
    assert stack.panoptes.count("/api/me") - before == 1
    missing = stack.call("GET", f"/api/projects/{A}/exports", None)
    assert error_code(missing) == (401, "unauthenticated")
    assert "send your Panoptes access token" in missing.json()["error"]["message"]


def test_a_queued_token_works_only_for_its_own_export(stack):
    """The token is sealed together with its export id: copied into another export's message it
    is refused (the export fails, nothing is read from Panoptes with it)."""
    mine, mine_body = create_export_record(stack.services, subject_set_id="5678")
    other, _ = create_export_record(stack.services, subject_set_id="5679")
    stolen = ExportMessage(other.id, ExportMessage.parse(mine_body).token)
    subjects_before = stack.panoptes.count("/api/subjects")
    stack.services.queue.send_message(stolen.encode())
    failed = wait_final(stack, other.id)
    assert (failed.status, failed.error_code) == ("failed", "internal_error")
    assert "not made for this export" in failed.error_message
    assert stack.panoptes.count("/api/subjects") == subjects_before
    stack.services.queue.send_message(mine_body)
    assert wait_for(lambda: stack.export(mine.id).status == "submitted", 30, message="own export")


@pytest.mark.parametrize("settings_overrides", [{"TRANSIENT_RETRY_HOURS": "0"}])
def test_a_queued_token_older_than_its_time_to_live_is_token_expired(stack):
    """TRANSIENT_RETRY_HOURS=0: the sealed token lives one hour. A message sealed two hours ago
    fails the export as token_expired (sign in and export again)."""
    import time

    services = stack.services
    export, _ = create_export_record(services, token=None)
    sealed = services.cipher.encrypt("demo-owner-token", bound_to=export.id, now=time.time() - 7200)
    services.queue.send_message(ExportMessage(export.id, sealed).encode())
    failed = wait_final(stack, export.id)
    assert (failed.status, failed.error_code) == ("failed", "token_expired")
