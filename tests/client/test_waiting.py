"""The wait loop's Ctrl-C: a Ctrl-C whose KeyboardInterrupt Python dropped (raised inside a
finalizer, "Exception ignored in ...") still ends the wait at its next step."""

import signal

import pytest

from sa_export import waiting

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover


class StillRunning:
    def __init__(self):
        self.reads = 0

    def export(self, export_id):
        self.reads += 1  # completed after 5 reads: a wait that missed the Ctrl-C ends too
        return {"id": export_id, "status": "running" if self.reads < 5 else "completed"}


def test_a_ctrl_c_whose_exception_was_dropped_still_ends_the_wait():
    service = StillRunning()

    def sleep(seconds):
        if service.reads == 2:  # the handler ran here, and its exception was lost
            waiting.INTERRUPTED.set()

    with waiting.interruptible(), pytest.raises(KeyboardInterrupt):
        waiting.wait_for_end(service, {"id": "e", "status": "running"}, waiting.Quiet(), 1, sleep=sleep)
    assert service.reads == 2  # ended at the next step, not after more reads


def test_the_handler_notes_the_ctrl_c_and_is_put_back_after_the_wait():
    before = signal.getsignal(signal.SIGINT)
    with waiting.interruptible():
        handler = signal.getsignal(signal.SIGINT)
        assert handler is not before
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGINT, None)
        assert waiting.INTERRUPTED.is_set()
    assert signal.getsignal(signal.SIGINT) is before
