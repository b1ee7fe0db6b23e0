"""The Panoptes stand-in's OAuth sign-in (implicit grant, as panoptes-javascript-client uses it)
and the sample users the page tests sign in as. No browser: plain HTTP."""

import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from standins import PanoptesStandIn, load_sample
from standins.panoptes import OAUTH_EXPIRES_IN

REDIRECT = "http://127.0.0.1:7071/"
GOOD = {
    "response_type": "token",
    "client_id": "local-export-page",
    "redirect_uri": REDIRECT,
    "state": "s-123",
}


@pytest.fixture
def panoptes():
    with PanoptesStandIn() as p:
        p.sample = load_sample(p)
        yield p


class _Form(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.buttons, self.hidden, self.form, self._button = [], [], {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "form":
            self.form = a
        if tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a["value"]
        if tag == "button":
            self._button = [a, ""]

    def handle_data(self, data):
        if self._button is not None:
            self._button[1] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None:
            self.buttons.append((self._button[0], self._button[1].strip()))
            self._button = None


def authorize(p, **params):
    return requests.get(p.url + "/oauth/authorize", params=params, timeout=5, allow_redirects=False)


def choose(p, method="POST", **fields):
    if method == "POST":
        return requests.post(p.url + "/oauth/authorize/choose", data=fields, timeout=5, allow_redirects=False)
    return requests.get(p.url + "/oauth/authorize/choose", params=fields, timeout=5, allow_redirects=False)


def fragment(response):
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "#"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def test_authorize_answers_an_accessible_form_with_a_button_per_user(panoptes):
    r = authorize(panoptes, **GOOD)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    form = _Form()
    form.feed(r.text)
    assert '<html lang="en">' in r.text and "<title>" in r.text and "<h1>Sign in to Zooniverse</h1>" in r.text
    assert form.form == {"method": "post", "action": "/oauth/authorize/choose"}
    assert form.hidden == GOOD  # the request's fields travel with the choice
    names = [text for _, text in form.buttons]
    for login in ("demo-owner", "demo-collaborator", "demo-tester", "demo-nobody"):
        assert f"Sign in as {login}" in names
    assert "Cancel" in names
    # Each user's button says what they are (their roles), through aria-describedby.
    tester = next(a for a, text in form.buttons if text == "Sign in as demo-tester")
    described = re.search(rf'id="{tester["aria-describedby"]}">([^<]*)<', r.text).group(1)
    assert described == "tester of Snapshot Demo (1234)"
    nobody = next(a for a, text in form.buttons if text == "Sign in as demo-nobody")
    assert re.search(rf'id="{nobody["aria-describedby"]}">no project roles<', r.text)
    assert "demo-owner-token" not in r.text  # the form carries user ids, never tokens


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_choosing_a_user_redirects_with_the_implicit_grant_fragment(panoptes, method):
    r = choose(panoptes, method, user_id="42", **GOOD)
    assert r.status_code == 302
    assert r.headers["Location"] == (
        REDIRECT + "#access_token=demo-owner-token&token_type=Bearer&expires_in=7200&state=s-123"
    )
    assert OAUTH_EXPIRES_IN == 7200
    me = requests.get(
        panoptes.url + "/api/me", headers={"Authorization": "Bearer demo-owner-token"}, timeout=5
    )
    assert me.json()["users"][0]["login"] == "demo-owner"


def test_expires_in_is_settable_and_state_is_echoed_verbatim(panoptes):
    panoptes.oauth_expires_in = 3
    got = fragment(choose(panoptes, user_id="45", **{**GOOD, "state": "a b&c=d"}))
    assert got == {
        "access_token": "demo-tester-token",
        "token_type": "Bearer",
        "expires_in": "3",
        "state": "a b&c=d",
    }


def test_cancel_redirects_with_access_denied(panoptes):
    got = fragment(choose(panoptes, deny="1", **GOOD))
    assert got["error"] == "access_denied" and got["state"] == "s-123" and "access_token" not in got


def test_signing_in_after_the_token_expired_hands_out_a_new_token_for_the_same_user(panoptes):
    panoptes.expire_token("demo-owner-token")
    token = fragment(choose(panoptes, user_id="42", **GOOD))["access_token"]
    assert token != "demo-owner-token" and token.startswith("demo-owner-token-renewed-")
    me = requests.get(panoptes.url + "/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert me.status_code == 200 and me.json()["users"][0]["id"] == "42"
    old = requests.get(
        panoptes.url + "/api/me", headers={"Authorization": "Bearer demo-owner-token"}, timeout=5
    )
    assert old.status_code == 401
    assert fragment(choose(panoptes, user_id="42", **GOOD))["access_token"] == token  # until it expires too


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"response_type": None}, "response_type"),
        ({"response_type": "code"}, "response_type"),
        ({"client_id": None}, "client_id"),
        ({"client_id": "bad id!"}, "client_id"),
        ({"redirect_uri": None}, "redirect_uri"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
        ({"redirect_uri": "ftp://example.org/"}, "redirect_uri"),
        ({"redirect_uri": "/relative"}, "redirect_uri"),
        ({"redirect_uri": "http://127.0.0.1:7071/#frag"}, "redirect_uri"),
    ],
)
def test_bad_authorization_requests_are_refused_with_a_400_page(panoptes, change, problem):
    params = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    for response in (authorize(panoptes, **params), choose(panoptes, user_id="42", **params)):
        assert response.status_code == 400 and "Location" not in response.headers
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<h1>Sign-in request refused</h1>" in response.text and problem in response.text


def test_client_ids_can_be_restricted(panoptes):
    panoptes.oauth_client_ids = {"local-export-page"}
    assert authorize(panoptes, **GOOD).status_code == 200
    assert authorize(panoptes, **{**GOOD, "client_id": "someone-else"}).status_code == 400


def test_unknown_user_and_unknown_oauth_paths(panoptes):
    assert choose(panoptes, user_id="999", **GOOD).status_code == 400
    assert choose(panoptes, **GOOD).status_code == 400
    assert requests.get(panoptes.url + "/oauth/token", timeout=5).status_code == 404
    assert requests.post(panoptes.url + "/oauth/authorize", data=GOOD, timeout=5).status_code == 404


def test_values_are_escaped_in_the_form(panoptes):
    r = authorize(panoptes, **{**GOOD, "state": '"><script>alert(1)</script>'})
    assert "<script>" not in r.text and "&quot;&gt;&lt;script&gt;" in r.text


def test_sample_users_for_the_page(panoptes):
    sample = panoptes.sample
    assert (sample.tester_id, sample.tester_token, sample.nobody_id, sample.nobody_token) == (
        "45",
        "demo-tester-token",
        "46",
        "demo-nobody-token",
    )
    assert (sample.owner_token, sample.collaborator_token, sample.outsider_token) == (
        "demo-owner-token",
        "demo-collaborator-token",
        "demo-outsider-token",
    )

    def roles(token, user_id):
        r = requests.get(
            panoptes.url + "/api/project_roles",
            params={"user_id": user_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        return {row["links"]["project"]: row["roles"] for row in r.json()["project_roles"]}

    assert roles("demo-tester-token", "45") == {"1234": ["tester"]}
    assert roles("demo-nobody-token", "46") == {}
    assert roles("demo-owner-token", "42") == {"1234": ["owner"]}
