"""The one factory for the service's storage clients, and read-only SAS URLs for manifests.

`AzureWebJobsStorage` is either a connection string (Azurite, or a key-based account) or the
identity-based form (service URIs + managed identity). Queue clients encode messages as base64,
which is what the Functions host's queue trigger expects (host.json messageEncoding).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, UserDelegationKey, generate_blob_sas
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.settings import StorageSettings

# A user delegation key may live 7 days; we ask for this much and renew it once less than
# the SAS lifetime remains, so a SAS never outlives the key that signs it.
DELEGATION_KEY_LIFETIME = dt.timedelta(days=7)
CLOCK_SKEW = dt.timedelta(minutes=5)
# A blob read as a stream (a manifest, a re-run's rows) is fetched 4 MiB at a time, first request
# included: the SDK's defaults (32 MiB first, then 4 MiB) would hold 32 MiB for nothing.
BLOB_READ_SIZE = 4 * 1024 * 1024


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StorageClients:
    """Blob, queue and table clients for one storage account, built from StorageSettings."""

    def __init__(
        self, settings: StorageSettings, credential: Any = None, now: Callable[[], dt.datetime] = _utcnow
    ):
        self._settings = settings
        self._now = now
        self._lock = threading.Lock()
        self._delegation: tuple[UserDelegationKey, dt.datetime] | None = None  # key, its expiry
        if settings.connection_string is None:
            if credential is None:
                # Imported lazily: azure-identity is only needed in Azure.
                from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

                credential = (
                    ManagedIdentityCredential(client_id=settings.client_id)
                    if settings.client_id
                    else DefaultAzureCredential()
                )
            self._credential = credential
            self.blob_service = BlobServiceClient(
                settings.blob_uri or "",
                credential=credential,
                max_single_get_size=BLOB_READ_SIZE,
                max_chunk_get_size=BLOB_READ_SIZE,
            )
            self.queue_service = QueueServiceClient(settings.queue_uri or "", credential=credential)
            self.table_service = TableServiceClient(endpoint=settings.table_uri or "", credential=credential)
        else:
            conn = settings.connection_string
            self._credential = None
            self.blob_service = BlobServiceClient.from_connection_string(
                conn, max_single_get_size=BLOB_READ_SIZE, max_chunk_get_size=BLOB_READ_SIZE
            )
            self.queue_service = QueueServiceClient.from_connection_string(conn)
            self.table_service = TableServiceClient.from_connection_string(conn)

    def queue(self, name: str) -> QueueClient:
        return self.queue_service.get_queue_client(
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )

    def table(self, name: str) -> TableClient:
        return self.table_service.get_table_client(name)

    def read_sas_url(
        self, container: str, blob_name: str, lifetime: dt.timedelta, download_as: str | None = None
    ) -> str:
        """URL of one blob with a SAS granting read on that blob only (sp=r, sr=b). With
        `download_as`, the answer tells a browser to save it under that file name."""
        disposition = f'attachment; filename="{download_as}"' if download_as else None
        blob = self.blob_service.get_blob_client(container, blob_name)
        now = self._now()
        start = now - CLOCK_SKEW
        expiry = now + lifetime
        account = blob.account_name or ""
        if self._settings.uses_identity:
            key, key_expiry = self._user_delegation_key(lifetime)
            expiry = min(expiry, key_expiry)
            sas = generate_blob_sas(
                account,
                container,
                blob_name,
                user_delegation_key=key,
                permission=BlobSasPermissions(read=True),
                start=start,
                expiry=expiry,
                protocol="https",
                content_disposition=disposition,
            )
        else:
            # Key-based (Azurite / connection string). Azurite serves plain http, so allow it.
            credential = self.blob_service.credential
            sas = generate_blob_sas(
                account,
                container,
                blob_name,
                account_key=credential.account_key,
                permission=BlobSasPermissions(read=True),
                start=start,
                expiry=expiry,
                protocol=None if blob.scheme == "http" else "https",
                content_disposition=disposition,
            )
        return f"{blob.url}?{sas}"

    def _user_delegation_key(self, lifetime: dt.timedelta) -> tuple[UserDelegationKey, dt.datetime]:
        """A delegation key that outlives `lifetime` (renewed when it would not), and its expiry."""
        with self._lock:
            now = self._now()
            if self._delegation is None or self._delegation[1] - now < lifetime + CLOCK_SKEW:
                expiry = now + DELEGATION_KEY_LIFETIME
                key = self.blob_service.get_user_delegation_key(
                    key_start_time=now - CLOCK_SKEW, key_expiry_time=expiry
                )
                self._delegation = (key, expiry)
            return self._delegation
