"""Fault injection shared by the stand-in servers.

A FaultPlan holds rules matched against each incoming request (method and
path-with-query). The server asks `match()` once per request and acts on the
returned Fault; the plan itself never touches sockets, so it is easy to test
and safe to share between handler threads.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

# "accept_then_hang" is understood by the ML service only (standins/ml_service/README.md).
KINDS = ("status", "timeout", "slow", "drop", "accept_then_hang")


@dataclass(eq=False)
class Fault:
    """One rule. `hits` counts requests it was applied to."""

    pattern: re.Pattern
    kind: str
    times: int | None = None
    probability: float | None = None
    delay: float = 0.0
    status: int | None = None
    body: Any = None
    method: str | None = None
    retry_after: float | None = None
    hits: int = 0
    _plan: FaultPlan | None = field(default=None, repr=False)

    def remove(self) -> None:
        if self._plan is not None:
            self._plan._remove(self)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class FaultPlan:
    def __init__(self, rng: random.Random | None = None, latency: float = 0.0):
        # A seeded Random makes probability-based faults reproducible in tests.
        self._rng = rng or random.Random(0)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.latency = latency  # seconds added to every request; settable any time

    def add(
        self,
        path_regex: str,
        kind: str,
        *,
        times: int | None = None,
        probability: float | None = None,
        delay: float = 0.0,
        status: int | None = None,
        body: Any = None,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if kind == "status" and status is None:
            raise ValueError("a 'status' fault needs status=")
        fault = Fault(
            re.compile(path_regex),
            kind,
            times,
            probability,
            delay,
            status,
            body,
            method.upper() if method else None,
            retry_after,
            _plan=self,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def reseed(self, seed: int) -> None:
        """Replay probability-based faults from a known seed."""
        with self._lock:
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def match(self, method: str, target: str) -> Fault | None:
        """Return the first rule applying to this request, counting the hit.

        Rules are tried in the order added. A `times=n` rule drops out of the
        plan after n hits; a `probability` rule applies to a random share.
        """
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method != method.upper():
                    continue
                if not fault.pattern.search(target):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.exhausted:
                    self._faults.remove(fault)
                return fault
        return None
