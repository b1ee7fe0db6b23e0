"""The timer's tick: poll every active ML task, recover stuck exports. Cost follows active work.

A tick reads every active export in one range query over the active rows (not the export
history), asks the ML service about each on a bounded thread pool (one slow or failing task
never delays or breaks the others) and writes the changes back in batched transactions while
later answers are still coming in. Every write is ETag-checked against the active row, so
overlapping ticks, workers and cancels can never apply a transition twice: a write that lost
the race is skipped until the next tick.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections import Counter

from exports import contract, delivery, events, ml_status, model, tracking
from exports.contract import Failure
from exports.messages import ExportMessage
from exports.ml_service import MlError, MlTaskNotFound
from exports.services import Services
from exports.store import ConcurrentUpdate, Versioned

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TickReport:
    active: int = 0
    ml_polled: int = 0  # exports whose ML task was polled
    outcomes: Counter = dataclasses.field(default_factory=Counter)
    moved: int = 0  # exports whose status changed (other changes: the ML message, counters)


def _poll(services: Services, current: Versioned) -> model.Export | None:
    """Ask the ML service about one export; its next state (None: no answer this tick)."""
    export = current.export
    assert export.ml_task_id is not None  # ML_ACTIVE_STATUSES have a task
    answer: object
    try:
        answer = services.ml.status(export.ml_task_id)
    except MlTaskNotFound:
        answer = ml_status.NOT_FOUND
    except MlError as exc:
        # Unreachable or 5xx: leave the export as it is until the next tick.
        log.warning("export %s: ML status unavailable: %s", export.id, exc)
        return None
    return tracking.next_state(services, export, answer)


def recover_if_stuck(services: Services, current: Versioned) -> str:
    export, now = current.export, services.clock()
    threshold = dt.timedelta(minutes=services.settings.stuck_export_minutes)
    if not model.is_stuck(export, now, threshold):
        return export.status
    try:
        if export.requeued:
            services.store.update(
                model.fail(
                    export,
                    Failure.INTERNAL_ERROR,
                    "The export stopped making progress twice (its worker disappeared). Please export again.",
                    now,
                ),
                current,
            )
            log.error("export %s: stuck again after a re-queue; failed", export.id)
            return "failed_stuck"
        services.store.update(model.mark_requeued(export, now), current)
    except ConcurrentUpdate:
        return "changed"
    services.enqueue(ExportMessage(export.id, export.token_ciphertext))
    log.warning("export %s: stuck in %s; re-queued once", export.id, export.status)
    return "requeued"


# Outcomes of a tick that did something besides moving exports to another status.
ACTED = ("requeued", "failed_stuck", "error", "callbacks_tried")
READ_PAGE = 100  # active rows per read round trip: polling starts on the first page
WRITE_BATCH = 100  # exports written at once (one transaction, two if some end)
WRITE_AFTER = 0.25  # seconds an answer waits for others to share its write


class _TickWriter:
    """Writes a tick's changes on one background thread while the polls go on: a batch leaves
    when WRITE_BATCH changes are waiting or the oldest has waited WRITE_AFTER seconds, so every
    change is written soon after its answer arrives, however long other polls of the tick take
    (a large detections file can take minutes to summarise)."""

    def __init__(self, services: Services):
        self._store = services.store
        self._ready = threading.Condition()
        self._pending: list[tuple[Versioned, model.Export]] = []
        self._oldest = 0.0
        self._closing = False
        self._error: BaseException | None = None
        self.changes = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="poll-writes", daemon=True)
        self._thread.start()

    def add(self, current: Versioned, updated: model.Export) -> None:
        with self._ready:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append((current, updated))
            self.changes += 1
            self._ready.notify()

    def _next_batch(self) -> list[tuple[Versioned, model.Export]] | None:
        with self._ready:
            while True:
                if self._pending and (
                    self._closing
                    or len(self._pending) >= WRITE_BATCH
                    or time.monotonic() - self._oldest >= WRITE_AFTER
                ):
                    batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
                    self._oldest = time.monotonic()
                    return batch
                if self._closing:
                    return None
                wait = WRITE_AFTER - (time.monotonic() - self._oldest) if self._pending else None
                self._ready.wait(wait)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self.written += self._store.update_many(batch)
            except BaseException as exc:  # reported by finish(); later batches still go out
                self._error = self._error or exc

    def finish(self) -> int:
        """Write what is left and wait for it; how many exports were written."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.written


def _poll_and_record(services: Services, current: Versioned, writes: _TickWriter) -> tuple[str, bool]:
    """Poll one export and hand its change to the writer; returns the outcome to count, and
    whether the export's status changed."""
    with events.context(current.export):
        return _poll_and_hand_over(services, current, writes)


def _poll_and_hand_over(services: Services, current: Versioned, writes: _TickWriter) -> tuple[str, bool]:
    updated = _poll(services, current)
    if updated is None:
        return "ml_unavailable", False
    if updated == current.export:
        return "unchanged", False
    writes.add(current, updated)  # the store logs the change when it is written
    return updated.status, updated.status != current.export.status


def run_tick(services: Services) -> TickReport:
    """Read the active exports page by page, poll each ML-side one as soon as it is read, and
    write the changes while later polls are still waiting for answers."""
    report = TickReport()
    writes = _TickWriter(services)
    futures = []
    try:
        with concurrent.futures.ThreadPoolExecutor(services.settings.ml_poll_concurrency, "ml-poll") as pool:
            for current in services.store.active_exports(page_size=READ_PAGE):
                report.active += 1
                if current.export.status in contract.ML_ACTIVE_STATUSES:
                    futures.append(pool.submit(_poll_and_record, services, current, writes))
                else:
                    with events.context(current.export):
                        report.outcomes[_safely(recover_if_stuck, services, current)] += 1
            for future in concurrent.futures.as_completed(futures):
                try:
                    outcome, moved = future.result()
                    report.outcomes[outcome] += 1
                    report.moved += moved
                except Exception:
                    log.exception("poll failed")
                    report.outcomes["error"] += 1
    finally:
        written = writes.finish()
    report.outcomes["skipped_changed"] += writes.changes - written
    # Callbacks whose queued delivery was lost (or is due again) are sent from here too.
    try:
        report.outcomes["callbacks_tried"] += delivery.sweep(services)
    except Exception:
        log.exception("the callback sweep failed")
    report.ml_polled = len(futures)
    # A tick with nothing to look at is not news (`make run` ticks every 3 s): DEBUG, not INFO.
    # A tick that polled anything is INFO: the ML alert reads every one (docs/OPERATIONS.md).
    acted = report.active > 0 or report.moved > 0 or any(report.outcomes[o] for o in ACTED)
    log.log(
        logging.INFO if acted else logging.DEBUG,
        "poll tick: %d active, %s",
        report.active,
        {str(outcome): count for outcome, count in (+report.outcomes).items()},
        extra={
            "event": events.POLL_TICK,
            "active": report.active,
            "ml_polled": report.ml_polled,
            # Polls the ML service did not answer (unreachable, 5xx): the ML alert counts
            # ticks in a row where every poll went unanswered.
            "ml_unavailable": report.outcomes["ml_unavailable"],
            "changed": writes.changes,
        },
    )
    return report


def _safely(function, *args):
    try:
        return function(*args)
    except Exception:
        log.exception("%s failed", function.__name__)
        return "error"
