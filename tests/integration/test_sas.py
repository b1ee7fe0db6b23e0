"""The manifest SAS grants read of that one blob only (checked with plain HTTP against Azurite),
and the identity path signs a user-delegation SAS that never outlives its key."""

import base64
import datetime as dt
import uuid
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.storage.blob import BlobServiceClient, UserDelegationKey

from shared.settings import StorageSettings
from shared.storage import StorageClients


@pytest.fixture
def clients(azurite):
    storage = StorageClients(StorageSettings(connection_string=azurite.connection_string))
    container = "sas-" + uuid.uuid4().hex[:8]
    storage.blob_service.create_container(container)
    storage.blob_service.get_blob_client(container, "a.json").upload_blob(b"[1]")
    storage.blob_service.get_blob_client(container, "b.json").upload_blob(b"[2]")
    return storage, container


def test_sas_reads_that_blob_only(clients):
    storage, container = clients
    url = storage.read_sas_url(container, "a.json", dt.timedelta(hours=1))
    assert requests.get(url, timeout=10).content == b"[1]"
    query = parse_qs(urlsplit(url).query)
    assert query["sp"] == ["r"] and query["sr"] == ["b"]
    other = url.replace("/a.json?", "/b.json?")
    assert requests.get(other, timeout=10).status_code == 403
    write = requests.put(url, data=b"[666]", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert write.status_code == 403
    assert requests.delete(url, timeout=10).status_code == 403
    container_list = url.split("/a.json?")[0] + "?restype=container&comp=list&" + url.split("?")[1]
    assert requests.get(container_list, timeout=10).status_code == 403
    assert requests.get(url, timeout=10).content == b"[1]"


def test_expired_sas_is_refused(clients, azurite):
    _, container = clients
    two_hours_ago = StorageClients(
        StorageSettings(connection_string=azurite.connection_string),
        now=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
    )
    url = two_hours_ago.read_sas_url(container, "a.json", dt.timedelta(minutes=30))
    assert requests.get(url, timeout=10).status_code == 403


class FakeCredential:
    """A TokenCredential that is never asked for a token (the key service is mocked)."""

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken("fake", 4102444800)


def fake_key(start, expiry):
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = str(uuid.uuid4()), str(uuid.uuid4())
    key.signed_start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    key.signed_service, key.signed_version = "b", "2021-08-06"
    key.value = base64.b64encode(b"k" * 32).decode()
    return key


def test_user_delegation_sas_with_identity():
    """Azurite cannot issue delegation keys: the key service is mocked at the SDK boundary."""
    now = [dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)]
    settings = StorageSettings(
        blob_uri="https://acct.blob.core.windows.net",
        queue_uri="https://acct.queue.core.windows.net",
        table_uri="https://acct.table.core.windows.net",
        client_id="cid",
    )
    calls = []

    def get_key(self, key_start_time, key_expiry_time, **kwargs):
        calls.append((key_start_time, key_expiry_time))
        return fake_key(key_start_time, key_expiry_time)

    with mock.patch.object(BlobServiceClient, "get_user_delegation_key", get_key):
        storage = StorageClients(settings, credential=FakeCredential(), now=lambda: now[0])
        url = storage.read_sas_url("manifests", "x.json", dt.timedelta(hours=72))
        query = parse_qs(urlsplit(url).query)
        assert url.startswith("https://acct.blob.core.windows.net/manifests/x.json?")
        assert query["sp"] == ["r"] and query["sr"] == ["b"] and query["spr"] == ["https"]
        assert "skoid" in query and "sig" in query  # signed by the delegation key, not an account key
        expiry = dt.datetime.strptime(query["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert expiry <= calls[0][1] and expiry - now[0] <= dt.timedelta(days=7)
        # The key is cached while it outlives a new SAS...
        now[0] += dt.timedelta(days=1)
        storage.read_sas_url("manifests", "y.json", dt.timedelta(hours=72))
        assert len(calls) == 1
        # ...and renewed before a SAS could outlive it.
        now[0] += dt.timedelta(days=3, hours=1)
        url = storage.read_sas_url("manifests", "z.json", dt.timedelta(hours=72))
        assert len(calls) == 2
        expiry = parse_qs(urlsplit(url).query)["se"][0]
        assert dt.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) <= calls[1][1]
