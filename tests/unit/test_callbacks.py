"""The pure rules of callbacks (exports/callbacks.py): what may be asked for, the signature, the
backoff, and which addresses may receive one."""

import datetime as dt
import hashlib
import hmac
import ipaddress

import pytest

from exports import callbacks

TOKEN = "0123456789abcdef"


@pytest.mark.parametrize(
    "address,public",
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("ff02::1", False),
    ],
)
def test_which_addresses_may_receive_a_callback(address, public):
    assert callbacks.is_public(ipaddress.ip_address(address)) is public


def test_every_address_a_host_resolves_to_must_be_public():
    assert callbacks.addresses_problem(["93.184.216.34"], False) is None
    assert "private" in callbacks.addresses_problem(["93.184.216.34", "10.0.0.1"], False)
    assert "does not resolve" in callbacks.addresses_problem([], False)
    assert callbacks.addresses_problem(["127.0.0.1"], True) is None


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    body = b'{"id": "x"}'
    expected = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    assert callbacks.signature(body, TOKEN) == expected
    assert callbacks.signature(body + b" ", TOKEN) != expected


def test_backoff_doubles_from_30_seconds_to_an_hour():
    delays = [callbacks.retry_delay(n) for n in range(1, 10)]
    assert delays[:3] == [dt.timedelta(seconds=s) for s in (30, 60, 120)]
    assert delays[-1] == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    "status,retry",
    [
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (404, False),
        (410, False),
        (400, False),
        (301, False),
    ],
)
def test_what_is_retried(status, retry):
    assert callbacks.worth_retrying(status) is retry


def test_nothing_asked_is_no_callback_and_private_hosts_only_with_the_opt_in():
    assert callbacks.requested({}, False) is None
    with pytest.raises(callbacks.InvalidCallback):
        callbacks.requested({"callback_url": "http://127.0.0.1:9/x", "callback_token": TOKEN}, False)
    asked = callbacks.requested({"callback_url": "http://127.0.0.1:9/x", "callback_token": TOKEN}, True)
    assert asked is not None and asked.url.host == "127.0.0.1" and asked.token == TOKEN
