"""The one URL parser (shared/urls.py): what it accepts is read the same by every parser that could
act on it, and what two parsers could read differently is refused."""

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url as urllib3_parse_url

from exports import results
from shared.urls import UrlError, parse_url

POLICY = results.ResultsPolicy(("*.blob.core.windows.net",), ("http", "127.0.0.1", 5050))


@pytest.mark.parametrize(
    "url,origin,target",
    [
        (
            "https://acct.blob.core.windows.net/c/d.json?sv=2021&sig=a%2Bb%3D",
            ("https", "acct.blob.core.windows.net", 443),
            "/c/d.json?sv=2021&sig=a%2Bb%3D",
        ),
        ("http://127.0.0.1:8080/v4/x", ("http", "127.0.0.1", 8080), "/v4/x"),
        ("https://[::1]:8443/x", ("https", "::1", 8443), "/x"),
        ("HTTPS://WWW.Zooniverse.ORG", ("https", "www.zooniverse.org", 443), "/"),
        (
            "https://subject-assistant.zooniverse.org/#/tasks/",
            ("https", "subject-assistant.zooniverse.org", 443),
            "/",
        ),
    ],
)
def test_accepted_urls_keep_their_parts(url, origin, target):
    parsed = parse_url(url)
    assert parsed.origin == origin and parsed.target == target


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1\\.x.blob.core.windows.net/d.json",
        "https://localhost\\.x.blob.core.windows.net/d.json",
        "https://127.0.0.1%5c.x.blob.core.windows.net/",
        "https://a.blob.core.windows.net\t/",
        "https://a.blob.core.windows.net /",
        "https://a.blob.core.windows.net\x00/",
        "https://u:p@a.blob.core.windows.net/",
        "https://a.blob.core.windows.net@127.0.0.1/",
        "https://a.blob.core.windows.net:/",
        "https://a.blob.core.windows.net:0443/",
        "https://a.blob.core.windows.net:99999/",
        "https://a.blob.core.windows.net./",
        "https://0x7f.0.0.1/",
        "https://127.1/",
        "https://1.2.3.4.5/",
        "https://[::1%25eth0]/",
        "https://ä.blob.core.windows.net/",
        "https://a.blob.core.windows.net/a/../b",
        "https://a.blob.core.windows.net/%zz",
        'https://a.blob.core.windows.net/"x"',
        "https:/a.blob.core.windows.net/",
        "//a.blob.core.windows.net/",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "",
        "https://" + "a" * 9000 + ".net/",
    ],
)
def test_urls_two_parsers_could_read_differently_are_refused(url):
    with pytest.raises(UrlError):
        parse_url(url)
    assert results.url_problem(url, POLICY) is not None


# Hosts built from the characters parsers disagree on, in front of an allowed domain.
_TRICKY = st.text(alphabet=list("\\%@:#?/[]. \t\x00\r\n5cC0x7f1aé。-_~"), max_size=12)


@settings(max_examples=600, deadline=None)
@given(prefix=_TRICKY, middle=_TRICKY)
def test_a_link_that_passes_the_policy_connects_where_it_was_checked(prefix, middle):
    url = f"https://{prefix}127.0.0.1{middle}.x.blob.core.windows.net/d.json"
    if results.url_problem(url, POLICY) is not None:
        return
    theirs = (urllib3_parse_url(url).host or "").lower()  # what a connection pool reads from the text
    assert theirs.endswith(".blob.core.windows.net"), theirs
    assert theirs == (urlsplit(url).hostname or "") == parse_url(url).host


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_whatever_the_parser_accepts_every_parser_reads_alike(tail):
    url = "https://a.blob.core.windows.net" + tail
    try:
        parsed = parse_url(url)
    except UrlError:
        return
    split, theirs = urlsplit(url), urllib3_parse_url(url)
    assert split.hostname == parsed.host == (theirs.host or "").lower()
    assert split.port == parsed.port == theirs.port
    assert split.path == parsed.path == (theirs.path or "")
