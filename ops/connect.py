"""The storage the commands work on: the app's account, through the app's own factory."""

from __future__ import annotations

import contextlib
import dataclasses
import os

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from exports.store import ExportStore
from shared.names import (
    EXPORT_POISON_QUEUE,
    EXPORT_QUEUE,
    EXPORT_REDRIVEN_QUEUE,
    EXPORT_TABLE,
    STORAGE_CONNECTION,
)
from shared.settings import SettingsError, storage_from_env
from shared.storage import StorageClients


@dataclasses.dataclass(frozen=True)
class Storage:
    store: ExportStore
    queue: QueueClient  # the work queue (base64 messages, as the host reads them)
    poison: QueueClient
    redriven: QueueClient

    def ensure_redriven_queue(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.redriven.create_queue()


def settings_env(connection_string: str | None, account: str | None) -> dict[str, str]:
    """The app settings that name the account: a connection string (the flag, else
    AzureWebJobsStorage from the environment), or the account name for identity-based access."""
    if account:
        return {f"{STORAGE_CONNECTION}__accountName": account}
    value = connection_string or os.environ.get(STORAGE_CONNECTION)
    if not value:
        raise SettingsError(
            "Say which storage account: --connection-string (or AzureWebJobsStorage) for a "
            "connection string, or --account NAME to use your Azure sign-in (DefaultAzureCredential)."
        )
    return {STORAGE_CONNECTION: value}


def open_storage(connection_string: str | None = None, account: str | None = None) -> Storage:
    try:
        settings = storage_from_env(settings_env(connection_string, account))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    clients = StorageClients(settings)  # DefaultAzureCredential when there is no connection string
    return Storage(
        store=ExportStore(clients.table(EXPORT_TABLE)),
        queue=clients.queue(EXPORT_QUEUE),
        poison=clients.queue(EXPORT_POISON_QUEUE),
        redriven=clients.queue(EXPORT_REDRIVEN_QUEUE),
    )
