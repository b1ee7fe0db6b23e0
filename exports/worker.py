"""The queue worker: build the manifest from Panoptes, store it, submit it to the ML service.

At-least-once delivery, at-most-once submission:
- a worker first takes a build *lease* on the export (ETag-checked), so a duplicate message
  finds the lease live and steps aside (it re-queues itself to check again after the lease);
- the manifest is recorded before submitting, so a redelivery after a crash skips the build;
- `submit_started_at` is persisted *before* the POST. A later attempt that finds it set with
  no task id cannot know whether the service accepted the job, so it fails the export with
  `ml_submission_unknown` instead of risking a duplicate ML job;
- transient faults re-queue the message with a growing delay instead of raising, so they never
  burn the message's dequeue count; raising is left to bugs, which end in the poison queue.

The user's Panoptes token arrives sealed for this export (shared/crypto.py): a message whose
token was sealed for another export, or under a key no longer configured, fails the export; one
older than the token's time-to-live fails it as token_expired.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable

from azure.core.exceptions import ResourceNotFoundError

from exports import contract, events, model
from exports.blob_writer import BlockBlobWriter, read_blob
from exports.contract import Failure, Status
from exports.manifest import ManifestCounts, ManifestEncoder, copy_manifest_rows
from exports.messages import ExportMessage
from exports.ml_service import MlBusy, MlOutcomeUnknown, MlRejected, MlUnavailable, MlUnusableTaskId
from exports.panoptes import PanoptesError, PanoptesUnauthorized, PanoptesUnavailable
from exports.services import Services
from exports.store import Versioned
from shared import telemetry
from shared.crypto import TokenDecryptionError, TokenExpired

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress writes while building
MAX_RETRY_DELAY = 1800
REQUEST_NAME_PREFIX = "zooniverse-subject-assistant-"
TOKEN_EXPIRED_MESSAGE = (
    "Your Panoptes login expired before the subject set could be read. Please sign in again and export again."
)


def manifest_blob_name(export_id: str) -> str:
    return f"ml-subject-assistant-{export_id}.json"


class Superseded(Exception):
    """The export moved on under us (cancelled, or another worker took it over)."""


class ExportRun:
    """One delivery of one export message."""

    def __init__(self, services: Services, message: ExportMessage, current: Versioned):
        self.services = services
        self.message = message
        self.current = current
        self.owner = uuid.uuid4().hex
        self.lease = dt.timedelta(seconds=services.settings.build_lease_seconds)

    @property
    def export(self) -> model.Export:
        return self.current.export

    def now(self) -> dt.datetime:
        return self.services.clock()

    def log(self, level: int, text: str, *args: object) -> None:
        log.log(
            level,
            "export %s (project %s, subject set %s): " + text,
            self.export.id,
            self.export.project_id,
            self.export.subject_set_id,
            *args,
        )

    # -- entry -------------------------------------------------------------------------
    def execute(self) -> None:
        try:
            if not self._claim():
                return
            if self.export.manifest_blob is None:
                if not self._build_manifest():
                    return
            self._submit()
        except Superseded as exc:
            self.log(logging.INFO, "stopped: %s", exc)
        except Exception:
            # A bug or an outage of our own storage: give the lease back so the host's
            # redelivery (or, in the end, the poison handler) can act on the export at once.
            with contextlib.suppress(Exception):
                self._save_owned(lambda e: model.drop_lease(e, self.owner, self.now()))
            raise

    def _claim(self) -> bool:
        holder: list[model.Export] = []

        def claim(export: model.Export) -> model.Export | None:
            if export.is_final or export.status in contract.ML_ACTIVE_STATUSES:
                return None  # done already (duplicate or late message)
            try:
                return model.claim_for_build(export, self.owner, self.now(), self.lease)
            except model.InvalidTransition:
                holder.append(export)  # another worker holds a live lease
                return None

        self.current = self.services.store.apply(self.current, claim)
        if self.export.lease_owner == self.owner:
            return True
        if holder:  # look again once the other worker's lease would have lapsed
            lease_until = holder[-1].lease_until or self.now()
            wait = (lease_until - self.now()).total_seconds() + 5
            self.services.enqueue(self.message, wait + 1)
            self.log(logging.INFO, "another worker holds the lease; re-checking in %ds", wait)
        return False

    # -- stage 1: manifest -------------------------------------------------------------
    def _build_manifest(self) -> bool:
        if self.export.rerun_source is not None:
            return self._copy_rerun_rows(self.export.rerun_source)
        token = None
        if self.message.token is not None:
            try:
                token = self.services.cipher.decrypt(self.message.token, bound_to=self.export.id)
            except TokenExpired:
                self._fail(Failure.TOKEN_EXPIRED, TOKEN_EXPIRED_MESSAGE)
                return False
            except TokenDecryptionError:
                self._fail(
                    Failure.INTERNAL_ERROR,
                    "The export's credentials could not be decrypted "
                    "(the encryption key was changed, or the message was not made for this "
                    "export). Please export again.",
                )
                return False
        blob_name = manifest_blob_name(self.export.id)
        with BlockBlobWriter(self.services.container.get_blob_client(blob_name)) as writer:
            return self._write_manifest(token, writer, blob_name)

    def _write_manifest(self, token: str | None, writer: BlockBlobWriter, blob_name: str) -> bool:
        """Read every page with the token and stream the manifest; the token lives only in this
        frame (and the page reader's threads) and is dropped when the pages are read."""
        export = self.export
        encoder = ManifestEncoder(export.project_id, export.subject_set_id)
        total: list[int] = []
        last_write = time.monotonic()
        try:
            # Closed here (not left to the garbage collector) so the page reader stops at once
            # when writing fails.
            with contextlib.closing(
                self.services.panoptes.iter_subject_pages(
                    token,
                    export.subject_set_id,
                    self.services.settings.panoptes_page_concurrency,
                    on_first=lambda page: total.append(page.count),
                    expected_count=export.subjects_total,
                )
            ) as pages:
                for page in pages:
                    writer.write(encoder.encode_page(page.subjects))
                    if page.page == 1 or time.monotonic() - last_write >= PROGRESS_INTERVAL:
                        self._progress(encoder.counts.subjects, total[0] if total else None)
                        last_write = time.monotonic()
            writer.write(encoder.finish())
        except PanoptesUnauthorized:
            self._fail(Failure.TOKEN_EXPIRED, TOKEN_EXPIRED_MESSAGE)
            return False
        except PanoptesUnavailable as exc:
            self._retry_later(
                Failure.PANOPTES_UNAVAILABLE, f"Panoptes is unavailable: {exc}", keep_token=True
            )
            return False
        except PanoptesError as exc:
            self._fail(Failure.PANOPTES_ERROR, f"Panoptes refused to list the subject set: {exc}")
            return False
        finally:
            del token
        counts = encoder.counts
        if counts.images == 0:
            self._fail(
                Failure.SUBJECT_SET_EMPTY,
                f"Subject set {export.subject_set_id} has no images (.jpg, .jpeg or .png) to "
                f"send: {counts.subjects} subjects, {counts.skipped_frames} other frames skipped. "
                "Add images to the set in the Zooniverse Project Builder, then export it again.",
            )
            return False
        writer.commit()
        self._record_manifest(counts, blob_name)
        self.log(
            logging.INFO,
            "manifest written: %d subjects, %d images, %d frames skipped, "
            "%d repeated subjects left out, %d bytes",
            counts.subjects,
            counts.images,
            counts.skipped_frames,
            counts.duplicates,
            writer.size,
        )
        return True

    def _copy_rerun_rows(self, source: str) -> bool:
        """A re-run's manifest: the parent's failed and missing rows, byte for byte (recorded when
        the parent completed), under this export's own name. No Panoptes read, so no token."""
        blob_name = manifest_blob_name(self.export.id)
        try:
            with BlockBlobWriter(self.services.container.get_blob_client(blob_name)) as writer:
                counts = copy_manifest_rows(read_blob(self.services.container, source), writer.write)
                writer.commit()
        except (ResourceNotFoundError, ValueError):
            self._fail(
                Failure.INTERNAL_ERROR,
                f"The failed and missing images of export {self.export.rerun_of} are no longer "
                "stored (or could not be read). Please export the subject set again.",
            )
            return False
        self._record_manifest(counts, blob_name)
        self.log(
            logging.INFO,
            "re-run manifest written from %s: %d subjects, %d images",
            self.export.rerun_of,
            counts.subjects,
            counts.images,
        )
        return True

    def _record_manifest(self, counts: ManifestCounts, blob_name: str) -> None:
        self._save_owned(
            lambda e: model.record_manifest(
                e,
                self.owner,
                self.now(),
                subjects=counts.subjects,
                images=counts.images,
                skipped=counts.skipped_frames,
                blob=blob_name,
            )
        )

    def _progress(self, done: int, total: int | None) -> None:
        self._save_owned(lambda e: model.renew_lease(e, self.owner, self.now(), self.lease, done, total))

    def _save_owned(self, change: Callable[[model.Export], model.Export]) -> None:
        """Apply a change that requires our lease (to the latest version)."""
        try:
            self.current = self.services.store.apply(self.current, change)
        except model.InvalidTransition as exc:
            raise Superseded(str(exc)) from None

    # -- stage 2: submission -----------------------------------------------------------
    def _submit(self) -> None:
        export = self.export
        if export.submit_started_at is not None:
            self._fail(
                Failure.ML_SUBMISSION_UNKNOWN,
                "An earlier attempt sent this export to the ML "
                "service but stopped before hearing back, so it may or may not have been "
                "accepted. It was not sent again, to avoid a duplicate ML job; if no task "
                "appears, please export again.",
            )
            return
        self._save_owned(lambda e: model.start_submission(e, self.owner, self.now()))
        settings = self.services.settings
        assert export.manifest_blob is not None  # the build recorded it (start_submission checks)
        sas_url = self.services.storage.read_sas_url(
            settings.container_name, export.manifest_blob, dt.timedelta(hours=settings.manifest_sas_hours)
        )
        try:
            task_id = self.services.ml.submit(sas_url, REQUEST_NAME_PREFIX + export.id)
        except (MlBusy, MlUnavailable) as exc:
            # Certainly not accepted: clear the fence and try again later.
            self._save_owned(lambda e: model.undo_submission_start(e, self.now()))
            code = Failure.ML_BUSY if isinstance(exc, MlBusy) else Failure.ML_UNAVAILABLE
            self._retry_later(code, f"ML service: {exc}", keep_token=False, note=str(exc))
            return
        except MlRejected as exc:
            self._fail(
                Failure.ML_REJECTED, f"The ML service refused the export ({exc.status}): {exc.message}"
            )
            return
        except MlUnusableTaskId:
            # Its id would go into URLs (status, cancel, the Subject Assistant link): not used,
            # not stored. The job may run at the service; nothing here can follow it.
            self.log(logging.ERROR, "the ML service answered an unusable task id; not recorded")
            self._fail(
                Failure.ML_REJECTED,
                "The ML service accepted the export but answered with a task id this service cannot "
                "use (not 1-64 letters, digits, '-' or '_'), so it cannot be followed. The operators "
                "have been told; please export again later.",
            )
            return
        except MlOutcomeUnknown as exc:
            self._fail(
                Failure.ML_SUBMISSION_UNKNOWN,
                f"The ML service did not answer the submission "
                f"({exc}); it may have accepted it. It was not sent again, to avoid a "
                "duplicate ML job; if no task appears, please export again.",
            )
            return
        self._record_task(task_id)

    def _record_task(self, task_id: str) -> None:
        def record(export: model.Export) -> model.Export | None:
            try:
                return model.record_submission(export, task_id, self.now())
            except model.InvalidTransition:
                self.log(logging.ERROR, "ML task %s accepted but export is %s", task_id, export.status)
                return None

        self.current = self.services.store.apply(self.current, record)
        if self.export.ml_task_id != task_id:
            return
        telemetry.bind(ml_task_id=task_id)
        self.log(logging.INFO, "submitted as ML task %s", task_id)
        if self.export.status == Status.CANCELLED:
            # Cancelled while the POST was in flight: pass the cancel on to the service.
            try:
                self.services.ml.cancel(task_id)
            except Exception as exc:  # the poller keeps no watch on cancelled exports
                self.log(logging.WARNING, "could not cancel ML task %s: %s", task_id, exc)

    # -- outcomes ----------------------------------------------------------------------
    def _fail(self, code: Failure, message: str) -> None:
        self.current = self.services.store.apply(
            self.current, lambda e: None if e.is_final else model.fail(e, code, message, self.now())
        )
        if self.export.error_code == code:
            self.log(logging.WARNING, "failed: %s", code)

    def _retry_later(self, code: Failure, message: str, keep_token: bool, note: str | None = None) -> None:
        export = self.export
        settings = self.services.settings
        if export.retry_until is not None and self.now() >= export.retry_until:
            self._fail(
                code,
                f"{message}. Gave up after retrying for "
                f"{settings.transient_retry_hours:g} hours; please export again later.",
            )
            return
        delay = min(settings.retry_delay_seconds * 2**export.retries, MAX_RETRY_DELAY)
        token = self.message.token if keep_token else None
        self.services.enqueue(ExportMessage(export.id, token), round(delay))
        retry_at = self.now() + dt.timedelta(seconds=delay)
        with contextlib.suppress(Superseded):
            self._save_owned(lambda e: model.release_lease(e, self.now(), retry_at, note))
        self.log(logging.WARNING, "transient fault (%s); retrying in %.0fs", code, delay)


def process_export_message(body: str, services: Services) -> None:
    message = ExportMessage.parse(body)
    if message is None:
        log.error("dropping a malformed export message")
        return
    with events.context(message.export_id):
        _process(message, services)


def _process(message: ExportMessage, services: Services) -> None:
    current = services.store.get(message.export_id)
    if current is None:
        log.warning("export %s: no record; dropping its message", message.export_id)
        return
    ExportRun(services, message, current).execute()


def process_poison_message(body: str, services: Services) -> None:
    """A message the host gave up on: fail its export unless it has moved on."""
    message = ExportMessage.parse(body)
    if message is None:
        log.error("a malformed message reached the poison queue", extra={"event": events.POISONED})
        return
    with events.context(message.export_id):
        log.error(
            "export %s: its message reached the poison queue",
            message.export_id,
            extra={"event": events.POISONED},
        )
        _fail_poisoned(message, services)


def _fail_poisoned(message: ExportMessage, services: Services) -> None:
    current = services.store.get(message.export_id)
    if current is None:
        return

    def fail_if_abandoned(export: model.Export) -> model.Export | None:
        now = services.clock()
        if export.status not in (Status.QUEUED, Status.BUILDING) or model.lease_is_live(export, now):
            return None  # finished, with the ML service, or a live worker still on it
        return model.fail(
            export,
            Failure.INTERNAL_ERROR,
            "The export could not be processed after "
            "several attempts (the worker kept failing). Please export again; if it "
            "fails again, contact the Zooniverse team with this export's id.",
            now,
        )

    current = services.store.apply(current, fail_if_abandoned)
    if current.export.status == Status.FAILED and current.export.error_code == Failure.INTERNAL_ERROR:
        log.error("export %s: failed after its message reached the poison queue", current.export.id)
