"""Queue triggers: one poller per queue-triggered function, following the WebJobs
QueueListener/QueueProcessor, so retries and poison handling behave locally as in Azure.

From host.json `extensions.queues`: base64 or none message encoding, batchSize +
newBatchThreshold concurrency, exponential backoff up to maxPollingInterval while the queue is
empty, visibilityTimeout before a failed message is retried, and `<queue>-poison` after
maxDequeueCount. A message that is not valid base64 goes to poison without running, and one
dequeued more than maxDequeueCount times (e.g. after a crash) is poisoned without running.
Messages stay invisible while their function runs: the lease is renewed at half-life.

One difference, in latency only: a message sent from this process (the app, or a test) wakes the
poller of its queue when it turns visible (`_wake_on_send`), where the platform's poller would
notice it at its next poll, up to maxPollingInterval later (2 s in host.json). The platform does
the same for messages its own output bindings write (the WebJobs SDK's SharedQueueWatcher).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage  # the worker's concrete class, not the ABC
from azure.storage.queue import QueueClient

from devtools.localhost.config import QueueOptions, resolve
from devtools.localhost.functions import Function

log = logging.getLogger("devtools.host")

# How long a received message stays invisible while its function runs; renewed at half-life.
# Read at each use, so tests can shorten it.
LEASE_SECONDS = 60.0


# The pollers of this process by (storage host, queue name), for `_wake_on_send`.
_pollers: dict[tuple[str, str], set[QueuePoller]] = {}
_pollers_lock = threading.Lock()


def _wake_on_send(send: Callable[..., Any]) -> Callable[..., Any]:
    """QueueClient.send_message, then a wake of this process's pollers of that queue at the
    moment the message turns visible (its visibility_timeout from now)."""

    @functools.wraps(send)
    def send_message(client: QueueClient, *args: Any, **kwargs: Any) -> Any:
        sent = send(client, *args, **kwargs)
        visible_at = time.monotonic() + (kwargs.get("visibility_timeout") or 0)
        with _pollers_lock:
            pollers = list(_pollers.get((client.primary_hostname, client.queue_name), ()))
        for poller in pollers:
            poller.wake_at(visible_at)
        return sent

    return send_message


# Once, when the host is imported: a test that patches send_message later wraps this one and
# puts it back.
QueueClient.send_message = _wake_on_send(QueueClient.send_message)  # type: ignore[method-assign]


def _connection_string(function: Function) -> str:
    """The storage connection the trigger names, looked up as the host does."""
    name = function.trigger.get("connection") or "AzureWebJobsStorage"
    value = os.environ.get(name) or os.environ.get(f"AzureWebJobs{name}")
    if not value:
        raise RuntimeError(f"{function.name}: app setting {name!r} (a storage connection string) is not set")
    return value


# Queues this process has made sure of, by (account URL, queue): a host (re)started in the same
# process (every test's stack) does not ask the storage account again.
_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def _create_queue(client: QueueClient) -> None:
    key = (client.url, client.queue_name)
    with _ensured_lock:
        if key in _ensured:
            return
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    with _ensured_lock:
        _ensured.add(key)


class QueuePoller:
    """Polls one queue for one function. Run `run()` and `renew_leases()` on their own threads
    until `stopping` is set, then `close()`."""

    def __init__(
        self,
        function: Function,
        options: QueueOptions,
        invoke: Callable[[Function, Any], Any],
        stopping: threading.Event,
        poll_interval: float,
    ):
        self.function, self.options, self.invoke = function, options, invoke
        self.stopping, self.poll_interval = stopping, poll_interval
        conn = _connection_string(function)
        self.queue_name = resolve(function.trigger["queueName"])
        # No SDK-side encode/decode policy: message text is decoded here, per host.json.
        self.client = QueueClient.from_connection_string(conn, self.queue_name)
        self.poison = QueueClient.from_connection_string(conn, f"{self.queue_name}-poison")
        _create_queue(self.client)
        self.executor = ThreadPoolExecutor(
            options.batch_size + options.new_batch_threshold, thread_name_prefix=f"queue-{function.name}"
        )
        self.in_flight: dict[str, Any] = {}  # message id -> the SDK message (its pop receipt renews)
        self.lock = threading.Condition()
        self._woken = threading.Event()  # set by wake_at(): look at the wake times again
        self._wake_times: list[float] = []  # a heap of time.monotonic() values
        self._key = (self.client.primary_hostname, self.queue_name)
        with _pollers_lock:
            _pollers.setdefault(self._key, set()).add(self)

    # receiving

    def run(self) -> None:
        delay = self.poll_interval
        while not self.stopping.is_set():
            self._wait_for_threshold()
            messages = self._receive()
            if not messages:  # exponential backoff while the queue stays empty
                # Woken, it polls at once; an empty answer then keeps the backoff where it was, so
                # that a wake costs one call, not a new ramp from the start.
                if not self._sleep(delay):
                    delay = min(delay * 2, max(self.options.max_polling_interval, self.poll_interval))
                continue
            delay = self.poll_interval
            with self.lock:
                for message in messages:
                    self.in_flight[message.id] = message
            for message in messages:
                self.executor.submit(self._process, message)

    def _sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less: True when a wake time came first (or the host stops)."""
        deadline = time.monotonic() + seconds
        while True:
            self._woken.clear()
            now = time.monotonic()
            with self.lock:
                due = False
                while self._wake_times and self._wake_times[0] <= now:
                    heapq.heappop(self._wake_times)
                    due = True
                next_wake = self._wake_times[0] if self._wake_times else math.inf
            if due or self.stopping.is_set():
                return True
            if now >= deadline:
                return False
            self._woken.wait(min(deadline, next_wake) - now)

    def _wait_for_threshold(self) -> None:
        # A new batch is fetched only once in-flight work drops to newBatchThreshold.
        with self.lock:
            while len(self.in_flight) > self.options.new_batch_threshold and not self.stopping.is_set():
                self.lock.wait(0.2)

    def _receive(self) -> list[Any]:
        try:
            return list(
                self.client.receive_messages(
                    messages_per_page=self.options.batch_size,
                    max_messages=self.options.batch_size,
                    visibility_timeout=int(LEASE_SECONDS),
                )
            )
        except Exception as exc:
            log.warning("%s: receiving from %s failed: %r", self.function.name, self.queue_name, exc)
            return []

    # processing

    def _process(self, message: Any) -> None:
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                # Dequeued too often without completing (e.g. a crash): poison without running.
                return self._to_poison(message)
            try:
                body = self._decode(message.content)
            except ValueError:
                log.warning(
                    "%s: message %s is not valid %s; moving it to %s-poison",
                    self.function.name,
                    message.id,
                    self.options.encoding,
                    self.queue_name,
                )
                return self._to_poison(message)
            try:
                self.invoke(self.function, self._trigger_value(message, body))
            except Exception:
                return self._after_failure(message)
            self._settle(message, lambda: self.client.delete_message(message.id, self._receipt(message)))
        except Exception:
            log.exception("%s: settling message %s failed", self.function.name, message.id)
        finally:
            with self.lock:
                self.in_flight.pop(message.id, None)
                self.lock.notify_all()

    @staticmethod
    def _trigger_value(message: Any, body: bytes) -> QueueMessage:
        return QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    def _after_failure(self, message: Any) -> None:
        # The last allowed attempt failed: poison. Otherwise retry after visibilityTimeout.
        if message.dequeue_count >= self.options.max_dequeue_count:
            return self._to_poison(message)
        retry_in = int(self.options.visibility_timeout)
        self._settle(
            message,
            lambda: self.client.update_message(
                message.id, self._receipt(message), visibility_timeout=retry_in
            ),
        )
        self.wake_at(time.monotonic() + retry_in)

    def _decode(self, content: str | None) -> bytes:
        if self.options.encoding == "none":
            return (content or "").encode("utf-8")
        try:
            return base64.b64decode(content or "", validate=True)
        except binascii.Error as exc:
            raise ValueError(str(exc)) from None

    def _to_poison(self, message: Any) -> None:
        # The raw text, so the poison copy keeps the original encoding byte for byte.
        _create_queue(self.poison)
        self.poison.send_message(message.content)
        log.warning(
            "%s: message %s moved to %s-poison after %s dequeues",
            self.function.name,
            message.id,
            self.queue_name,
            message.dequeue_count,
        )
        self._settle(message, lambda: self.client.delete_message(message.id, self._receipt(message)))

    def _receipt(self, message: Any) -> str:
        with self.lock:
            return message.pop_receipt

    def _settle(self, message: Any, action: Callable[[], Any]) -> None:
        # Stop renewing first, so the pop receipt can't change under the final call.
        with self.lock:
            self.in_flight.pop(message.id, None)
            self.lock.notify_all()
        action()

    # leases

    def renew_leases(self) -> None:
        """Keep in-flight messages invisible while long invocations run."""
        while not self.stopping.wait(LEASE_SECONDS / 4):
            with self.lock:
                for message in list(self.in_flight.values()):
                    left = (message.next_visible_on - dt.datetime.now(dt.UTC)).total_seconds()
                    if left <= LEASE_SECONDS / 2:
                        self._renew(message)

    def _renew(self, message: Any) -> None:
        try:
            updated = self.client.update_message(
                message.id, message.pop_receipt, visibility_timeout=int(LEASE_SECONDS)
            )
            message.pop_receipt = updated.pop_receipt
            message.next_visible_on = updated.next_visible_on
        except Exception as exc:
            log.warning("%s: renewing message %s failed: %r", self.function.name, message.id, exc)

    # state

    def wake_at(self, when: float) -> None:
        """Poll at time.monotonic() `when`, or at once if that has passed."""
        with self.lock:
            heapq.heappush(self._wake_times, when)
        self._woken.set()

    def wake(self) -> None:
        """Poll again at once (also how stop() is noticed)."""
        self.wake_at(time.monotonic())

    def busy(self) -> bool:
        """Messages of this queue in flight here."""
        with self.lock:
            return bool(self.in_flight)

    def is_idle(self) -> bool:
        """Nothing in flight and nothing in the queue, invisible messages included."""
        return not self.busy() and self.client.get_queue_properties().approximate_message_count == 0

    def close(self) -> None:
        with _pollers_lock:
            _pollers[self._key].discard(self)
        self.executor.shutdown(wait=True)
        self.client.close()
        self.poison.close()
