"""Which detections links are followed and shown (the file itself: tests/unit/test_accounting.py)."""

import pytest

from exports import results


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("https://acct.blob.core.windows.net/c/detections.json?sig=x", True),
        ("https://ACCT.blob.core.windows.net/c/d.json", True),
        ("http://127.0.0.1:5050/results/x.json", True),  # the ML service's own origin
        ("https://127.0.0.1:5050/results/x.json", False),  # scheme is part of the origin
        ("http://127.0.0.1:5051/results/x.json", False),
        ("https://blob.core.windows.net/c/d.json", False),
        ("https://x.blob.core.windows.net.evil.example/d.json", False),
        ("ftp://acct.blob.core.windows.net/d.json", False),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("//acct.blob.core.windows.net/x", False),
        ("https://[::1]:99999/x", False),
        (None, False),
        (42, False),
    ],
)
def test_url_policy(url, allowed):
    policy = results.ResultsPolicy(("*.blob.core.windows.net",), ("http", "127.0.0.1", 5050))
    assert (results.url_problem(url, policy) is None) is allowed


def test_describe_never_shows_the_query_string():
    assert (
        results.describe("https://u:p@a.blob.core.windows.net/c/d.json?sig=SECRET")
        == "https://a.blob.core.windows.net/c/d.json"
    )
    assert results.describe("javascript:alert(document.cookie)") == "javascript: URL"
