"""The suite's own environment (tests/conftest.py): calls to this machine bypass any proxy."""

from __future__ import annotations

import pytest
import requests.utils

PROXY = "http://proxy.invalid:3128"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:10000/devstoreaccount1/exports", "http://localhost:7071/api/x"]
)
def test_calls_to_this_machine_bypass_a_proxy_the_machine_sets(monkeypatch, url):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, PROXY)
    assert requests.utils.get_environ_proxies(url, no_proxy=None) == {}
    assert requests.utils.get_environ_proxies("http://example.org/", no_proxy=None)["http"] == PROXY
