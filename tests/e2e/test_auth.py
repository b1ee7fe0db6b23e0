"""Every auth failure answers the contract's error and creates nothing (no rows, no messages)."""

import pytest


def assert_nothing_created(stack):
    assert stack.table_rows() == []
    assert stack.queued_messages() == []


def error_of(response):
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return response.status_code, body["error"]["code"]


@pytest.mark.parametrize("token", [None, "not-a-real-token"])
def test_missing_or_rejected_token_is_401(stack, token):
    assert error_of(stack.start_export(token=token)) == (401, "unauthenticated")
    assert_nothing_created(stack)


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Bearer", "Bearer  ", "bearer a b", "Token demo-owner-token", "Bearer " + "x" * 5000],
)
def test_malformed_authorization_is_401(stack, header):
    response = stack.call(
        "POST", "/api/projects/1234/subject-sets/5678/exports", token=None, headers={"Authorization": header}
    )
    assert error_of(response) == (401, "unauthenticated")
    assert_nothing_created(stack)


def test_user_without_role_is_403(stack):
    assert error_of(stack.start_export(token="demo-outsider-token")) == (403, "forbidden")
    assert_nothing_created(stack)


def test_subject_set_of_another_project_is_404(stack):
    assert error_of(stack.start_export(subject_set="7777")) == (404, "subject_set_not_found")
    assert error_of(stack.start_export(subject_set="424242")) == (404, "subject_set_not_found")
    assert_nothing_created(stack)


@pytest.mark.parametrize("path", ["/api/me", "/api/project_roles", "/api/subject_sets"])
def test_panoptes_5xx_is_502(stack, path):
    stack.panoptes.faults.add(path, "status", status=500)
    assert error_of(stack.start_export()) == (502, "panoptes_unavailable")
    assert_nothing_created(stack)


def test_panoptes_down_is_502(stack):
    stack.panoptes.faults.add(r"/api/me", "drop")
    assert error_of(stack.start_export()) == (502, "panoptes_unavailable")
    assert_nothing_created(stack)


@pytest.mark.parametrize(
    "project,subject_set",
    [
        ("0", "5678"),
        ("-1", "5678"),
        ("abc", "5678"),
        ("1234", "9223372036854775808"),
        ("1234", "1e3"),
        ("01234", "5678"),
        ("1234", "%C2%B9"),
    ],
)
def test_invalid_ids_are_400_before_anything_else(stack, project, subject_set):
    stack.panoptes.faults.add(r".*", "status", status=500)  # would be 502 if Panoptes were asked
    response = stack.start_export(project=project, subject_set=subject_set, token=None)
    assert error_of(response) == (400, "invalid_id")
    assert stack.panoptes.total_requests == 0
    assert_nothing_created(stack)


def test_export_of_other_project_is_invisible(stack):
    export_id = stack.start_export().json()["id"]
    stack.settle()
    assert error_of(stack.get(export_id, token="demo-outsider-token")) == (404, "export_not_found")
    assert error_of(stack.call("POST", f"/api/exports/{export_id}/cancel", "demo-outsider-token")) == (
        404,
        "export_not_found",
    )
    assert error_of(stack.get("1234-5678-0000000000000deadbeef")) == (404, "export_not_found")
    assert error_of(stack.get("nonsense")) == (404, "export_not_found")
    assert error_of(stack.get(export_id, token=None)) == (401, "unauthenticated")
    assert stack.get(export_id, token="demo-collaborator-token").status_code == 200


def test_unknown_routes_and_methods_are_json(stack):
    assert error_of(stack.call("GET", "/api/nope")) == (404, "not_found")
    assert error_of(stack.call("DELETE", "/api/exports/abc")) == (405, "method_not_allowed")
    assert error_of(stack.call("GET", "/api/projects/1234/subject-sets/5678/exports")) == (
        405,
        "method_not_allowed",
    )


def test_health_is_anonymous_and_reveals_nothing(stack):
    response = stack.call("GET", "/api/health", token=None)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_cors_for_the_subject_assistant_only(stack):
    origin = "https://subject-assistant.zooniverse.org"
    preflight = stack.call(
        "OPTIONS",
        "/api/projects/1234/subject-sets/5678/exports",
        token=None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == origin
    other = stack.call("GET", "/api/health", token=None, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_request_body_must_be_empty_or_an_object(stack):
    response = stack.call("POST", "/api/projects/1234/subject-sets/5678/exports", data=b"{not json")
    assert error_of(response) == (400, "invalid_body")
    response = stack.call("POST", "/api/projects/1234/subject-sets/5678/exports", data=b"x" * 70000)
    assert error_of(response) == (413, "body_too_large")
    assert_nothing_created(stack)


@pytest.mark.parametrize("settings_overrides", [{"AUTH_CACHE_SECONDS": "60"}])
def test_sets_seen_in_the_listing_need_no_second_lookup(stack):
    assert stack.call("GET", "/api/projects/1234/exports").status_code == 200
    stack.panoptes.reset_counts()
    response = stack.start_export()
    assert response.status_code == 202
    assert stack.panoptes.count("/api/subject_sets") == 0
    # The set's size came from the listing: progress shows it before the worker starts.
    assert response.json()["progress"] == {"subjects_done": 0, "subjects_total": 25}
    # A set of another project is still refused: the cache only knows this project's sets.
    assert error_of(stack.start_export(subject_set="7777")) == (404, "subject_set_not_found")
    # Another user's token does not reuse the listing.
    stack.panoptes.reset_counts()
    stack.start_export(subject_set="5679", token="demo-collaborator-token")
    assert stack.panoptes.count("/api/subject_sets") == 1
