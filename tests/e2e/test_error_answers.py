"""Answers a person can act on, found by trying the API as a new user would (and documented in
GET /api/openapi.json): each is pinned here through the local host."""

import requests


def test_a_wrong_method_says_which_methods_the_route_takes(stack):
    response = stack.call("DELETE", "/api/exports/1234-5678-0000000000000abcdef01")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    body = response.json()["error"]
    assert body["code"] == "method_not_allowed" and "GET, HEAD" in body["message"]
    assert stack.call("GET", "/api/projects/1234/subject-sets/5678/exports").headers["Allow"] == "POST"


def test_head_works_wherever_get_does(stack):
    for path in ("/api/health", "/api/openapi.json", "/api/projects", "/api/projects/1234/exports", "/"):
        head = requests.head(
            stack.host.url + path, headers={"Authorization": "Bearer demo-owner-token"}, timeout=10
        )
        get = requests.get(
            stack.host.url + path, headers={"Authorization": "Bearer demo-owner-token"}, timeout=10
        )
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["Content-Type"] == get.headers["Content-Type"], path


def test_an_unknown_project_or_no_role_names_both_possibilities(stack):
    for project in ("1234", "424242"):
        body = stack.call("GET", f"/api/projects/{project}/exports", token="demo-outsider-token").json()
        message = body["error"]["message"]
        assert body["error"]["code"] == "forbidden"
        assert "does not exist" in message and "owners or collaborators" in message and project in message


def test_unknown_paths_answer_json_under_api_and_a_page_elsewhere(stack):
    api = stack.call("GET", "/api/nope")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    assert "/api/openapi.json" in api.json()["error"]["message"]
    page = stack.call("GET", "/nope/../x")
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in page.headers and 'href="/"' in page.text


def test_the_openapi_document_is_anonymous_and_cacheable(stack):
    response = requests.get(stack.host.url + "/api/openapi.json", timeout=10)
    assert response.status_code == 200 and response.json()["openapi"] == "3.1.0"
    assert response.headers["Cache-Control"] == "public, max-age=300"
