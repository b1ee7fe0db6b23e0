"""Timer triggers: NCRONTAB (or TimeSpan) schedules in UTC, one invocation of a function at a time.

Follows the WebJobs TimerListener where the app can tell the difference: `runOnStartup`, the
`past_due` flag when an invocation starts more than a second after its occurrence, one past-due
catch-up run (not one per missed occurrence) after an invocation overran later occurrences, runs
that never overlap (the same lock covers `LocalHost.run_timer`), and the ScheduleStatus JSON
(Last, Next, LastUpdated). Schedule arithmetic is in `devtools.ncrontab`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from azure.functions.timer import TimerRequest  # the worker's concrete class, not the ABC

from devtools import ncrontab
from devtools.localhost.config import resolve, timespan
from devtools.localhost.functions import Function

# A timer invocation that starts later than this after its occurrence is reported past due.
PAST_DUE_GRACE = dt.timedelta(seconds=1)


def next_fire(schedule: str, after: dt.datetime) -> dt.datetime:
    """Next occurrence of a timer schedule: NCRONTAB, or a TimeSpan interval ("00:05:00")."""
    if ":" in schedule and len(schedule.split()) == 1:
        return after + dt.timedelta(seconds=timespan(schedule))
    return ncrontab.next_occurrence(schedule, after)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TimerTrigger:
    """One timer-triggered function: its schedule, its singleton lock, and how to fire it."""

    def __init__(self, function: Function, invoke: Callable[[Function, Any], Any]):
        self.function, self.invoke = function, invoke
        self._lock = threading.Lock()  # scheduled and manual runs of one function never overlap

    def schedule(self) -> str:
        """The resolved schedule; raises KeyError for an unset %SETTING%, ValueError if malformed."""
        schedule = resolve(self.function.trigger["schedule"])
        next_fire(schedule, _now())
        return schedule

    def run_now(self) -> Any:
        """Invoke once, now (after any scheduled run in progress). Its exception propagates."""
        try:
            schedule = self.schedule()
        except KeyError:
            schedule = None  # only needed for ScheduleStatus.Next; a malformed one still raises
        return self.fire(_now(), False, schedule)

    def fire(self, due: dt.datetime, past_due: bool, schedule: str | None) -> Any:
        # The JSON the host sends: Last is this occurrence, Next the one after it.
        status = {"Last": due.isoformat(), "LastUpdated": _now().isoformat()}
        if schedule:
            status["Next"] = next_fire(schedule, due).isoformat()
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        with self._lock:
            return self.invoke(self.function, request)

    def run_schedule(self, schedule: str, stopping: threading.Event) -> None:
        """Fire on `schedule` until `stopping` is set (run on a thread of its own)."""
        if self.function.trigger.get("runOnStartup"):
            self._fire_quietly(_now(), False, schedule)
        due, catching_up = next_fire(schedule, _now()), False
        while not stopping.wait(max(0.0, (due - _now()).total_seconds())):
            late = _now() - due > PAST_DUE_GRACE
            self._fire_quietly(due, catching_up or late, schedule)
            # An invocation that overran later occurrences gets one past-due catch-up run, not one
            # per missed occurrence; runs never overlap.
            now, missed = _now(), next_fire(schedule, due)
            catching_up = missed <= now and not catching_up
            due = missed if catching_up else next_fire(schedule, now)

    def _fire_quietly(self, due: dt.datetime, past_due: bool, schedule: str) -> None:
        try:
            self.fire(due, past_due, schedule)
        except Exception:
            pass  # logged and recorded by the invoker; the schedule goes on
