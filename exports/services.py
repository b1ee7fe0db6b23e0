"""Wires the adapters from the settings, once per process (the thin shell around the core)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from exports import model
from exports.access import KNOWN_TOKEN_SECONDS, REJECTED_TOKEN_SECONDS
from exports.callback_sender import CallbackSender
from exports.messages import ExportMessage
from exports.ml_service import MlServiceClient
from exports.panoptes import AuthCache, PanoptesClient
from exports.settings import ExportSettings, get_settings
from exports.store import ExportStore
from shared import log_redaction
from shared.crypto import TokenCipher
from shared.names import (
    CALLBACK_POISON_QUEUE,
    CALLBACK_QUEUE,
    EXPORT_POISON_QUEUE,
    EXPORT_QUEUE,
    EXPORT_TABLE,
)
from shared.rate_limit import TokenBucket
from shared.settings import StorageSettings
from shared.storage import StorageClients

log = logging.getLogger(__name__)
log_redaction.install()  # no SAS signature in third-party log lines (contract: security rules)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Services:
    settings: ExportSettings
    storage: StorageClients
    store: ExportStore
    queue: QueueClient
    container: ContainerClient
    panoptes: PanoptesClient  # the worker's: retries outages patiently
    panoptes_for_requests: PanoptesClient  # an HTTP request's: waits AUTH_RETRY_SECONDS at most
    ml: MlServiceClient
    cipher: TokenCipher
    auth_cache: AuthCache
    rejected_tokens: AuthCache
    known_tokens: AuthCache  # tokens Panoptes accepted: never wait for the lookup budget
    token_lookups: TokenBucket  # lookups of tokens in no cache, per instance
    callback_queue: QueueClient
    callback_sender: CallbackSender
    clock: Callable[[], dt.datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: ExportSettings) -> Services:
        storage = StorageClients(settings.storage)
        panoptes = PanoptesClient(
            settings.panoptes_url,
            timeout=settings.panoptes_timeout_seconds,
            retries=settings.panoptes_retries,
            backoff=settings.panoptes_retry_backoff_seconds,
        )
        return cls(
            settings=settings,
            storage=storage,
            store=ExportStore(storage.table(EXPORT_TABLE)),
            queue=storage.queue(EXPORT_QUEUE),
            container=storage.blob_service.get_container_client(settings.container_name),
            panoptes=panoptes,
            panoptes_for_requests=panoptes.with_patience(settings.auth_retry_seconds),
            ml=MlServiceClient(
                settings.ml_service_url, settings.ml_caller_id, timeout=settings.ml_timeout_seconds
            ),
            cipher=TokenCipher(
                settings.token_encryption_key,
                settings.token_encryption_key_previous,
                ttl_seconds=settings.token_ttl_seconds,
            ),
            auth_cache=AuthCache(settings.auth_cache_seconds),
            rejected_tokens=AuthCache(REJECTED_TOKEN_SECONDS),
            known_tokens=AuthCache(KNOWN_TOKEN_SECONDS),
            token_lookups=TokenBucket(
                settings.unknown_token_lookups_per_second, 2 * settings.unknown_token_lookups_per_second
            ),
            callback_queue=storage.queue(CALLBACK_QUEUE),
            callback_sender=CallbackSender(
                settings.callback_allow_private, settings.callback_timeout_seconds
            ),
        )

    def __post_init__(self) -> None:
        # Every export the store ends with a callback: its delivery is queued at once.
        self.store.on_finished = lambda export: self.enqueue_callback(export.id)

    def enqueue_callback(self, export_id: str, delay_seconds: float = 0) -> None:
        self.callback_queue.send_message(
            export_id, visibility_timeout=max(0, min(int(delay_seconds), 604_800))
        )

    def resource(self, export: model.Export) -> dict:
        """The Export resource as the API shows it (with a freshly minted results_csv_url)."""
        csv_url = None
        if export.results_csv_blob is not None:
            # Minted on each read, for that one blob, read only, for at most an hour.
            csv_url = self.storage.read_sas_url(
                self.settings.container_name,
                export.results_csv_blob,
                dt.timedelta(minutes=self.settings.results_csv_minutes),
                download_as=f"subject-assistant-results-{export.id}.csv",  # saved, not shown
            )
        return model.to_resource(export, self.settings.external_url, csv_url)

    def ensure_resources(self) -> None:
        """Create the table, queues and container if missing (Bicep creates them in Azure)."""
        self.store.ensure_table()
        for create in (
            self.queue.create_queue,
            self.storage.queue(EXPORT_POISON_QUEUE).create_queue,
            self.callback_queue.create_queue,
            self.storage.queue(CALLBACK_POISON_QUEUE).create_queue,
            self.container.create_container,
        ):
            try:
                create()
            except ResourceExistsError:
                pass

    def enqueue(self, message: ExportMessage, delay_seconds: float = 0) -> None:
        self.queue.send_message(message.encode(), visibility_timeout=max(0, min(int(delay_seconds), 604_800)))


# The storage accounts (with the container) whose table, queues and container this process has
# made sure of. In Azure get_services() is built once per process; the tests rebuild it for every
# test (reset_services), and six storage calls each time cost the suite about 18 s of CPU. As in
# Azure, resources deleted while the process runs (Azurite restarted on the same ports) are not
# made again: operators re-create them (tests/reliability/test_faults.py, the restart test).
_ensured: set[tuple[StorageSettings, str]] = set()


@functools.lru_cache(maxsize=1)
def get_services() -> Services:
    settings = get_settings()
    services = Services.from_settings(settings)
    account = (settings.storage, settings.container_name)
    if account not in _ensured:
        services.ensure_resources()
        _ensured.add(account)
    return services


def reset_services() -> None:
    """Forget the process-wide settings and clients (tests change the environment)."""
    get_services.cache_clear()
    get_settings.cache_clear()
