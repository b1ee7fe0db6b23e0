"""A token bucket: at most `rate` takes a second on average, bursts of up to `burst`. Thread-safe,
per process (each Functions instance has its own). Hand-written rather than a library: it is a
dozen lines, and the libraries on PyPI for it (limits, pyrate-limiter) bring storage backends and
async machinery this one counter does not need."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token: 0.0 when taken, else the seconds until one is available (none taken)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """A Retry-After header value (whole seconds, at least 1) for a wait."""
        return str(max(1, math.ceil(wait)))
