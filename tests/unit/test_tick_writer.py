"""The poll tick's writer: changes go out WRITE_BATCH exports at a time while polls continue,
the rest at the end, and a failed write is not swallowed."""

import threading
import types

import pytest

from exports import poller


class FakeStore:
    def __init__(self, fail=False):
        self.batches, self.fail = [], fail
        self.first_batch_written = threading.Event()

    def update_many(self, items):
        if self.fail:
            raise ConnectionError("storage down")
        self.batches.append(len(items))
        self.first_batch_written.set()
        return len(items) - 1  # one export changed meanwhile in every batch


def test_batches_leave_before_the_last_answer_and_the_rest_at_the_end():
    store = FakeStore()
    writes = poller._TickWriter(types.SimpleNamespace(store=store))
    for _i in range(poller.WRITE_BATCH * 2 + 7):
        writes.add(object(), object())
    # Two full batches were handed over while "polls" were still arriving.
    assert store.first_batch_written.wait(5)
    assert writes.finish() == poller.WRITE_BATCH * 2 + 7 - 3
    assert store.batches == [poller.WRITE_BATCH, poller.WRITE_BATCH, 7]
    assert writes.changes == poller.WRITE_BATCH * 2 + 7


def test_a_failed_write_reaches_the_tick():
    writes = poller._TickWriter(types.SimpleNamespace(store=FakeStore(fail=True)))
    writes.add(object(), object())
    with pytest.raises(ConnectionError):
        writes.finish()
