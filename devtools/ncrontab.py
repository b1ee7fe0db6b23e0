"""NCRONTAB schedules for timer triggers: croniter computes them, with NCrontab's rules.

Functions timer schedules are 6-field NCRONTAB, seconds first: second minute hour day-of-month
month day-of-week (0-6, Sunday=0; months and days may be three-letter names such as Jan, Mon).
croniter (pinned in requirements-dev.txt) does the calendar work: `second_at_beginning=True`
reads the seconds field first, and `day_or=False` ANDs day-of-month and day-of-week as NCrontab
(the library the real host uses) does: "0 0 0 13 * 5" fires only on Friday the 13th, where
croniter's default, like Vixie cron, would fire every Friday and every 13th.

croniter reads more than NCrontab, and a few things differently. `validate` refuses those before
croniter sees them, so a schedule never fires locally on times it would not fire in Azure:

- anything but 6 fields: croniter would take a 7th as a year (and the app's settings, like the
  Functions docs, always use seconds-first 6-field schedules);
- croniter's extensions NCrontab lacks: L, W, #, ?, H and @daily-style aliases;
- reversed ranges such as 5-1: croniter wraps them (5..59 and 0..1), NCrontab swaps them (1..5);
- day-of-week 7: NCrontab's range is 0-6, croniter would take 7 as Sunday.

Stricter than NCrontab, and loud about it (a ValueError when the host starts): full or shortened
names (Monday, Mo) and zero steps (*/0) are refused, where NCrontab would accept them.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from croniter import croniter
from croniter.croniter import CroniterError

_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_NAMES = {
    "month": {
        n: i
        for i, n in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
        )
    },
    "day-of-week": {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
# One comma-separated item of a field: "*", a value or a range, with an optional step. Values are
# numbers or three-letter names; croniter checks the ranges and which fields take names.
_VALUE = r"\d+|[A-Za-z]{3}"
_ITEM = re.compile(rf"(?:\*|(?P<first>{_VALUE})(?:-(?P<last>{_VALUE}))?)(?:/\d+)?")


def _number(field: str, value: str | None) -> int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else _NAMES.get(field, {}).get(value.lower())


def _check_item(field: str, item: str) -> None:
    """Refuse an item NCrontab lacks or would read differently from croniter."""
    m = _ITEM.fullmatch(item)
    if m is None:
        raise ValueError(
            f"{field} field item {item!r} is not NCRONTAB (*, n, a-b and /step; names as Jan or Mon)"
        )
    first, last = _number(field, m["first"]), _number(field, m["last"])
    if first is not None and last is not None and first > last:
        raise ValueError(f"{field} range {item!r} is reversed: write it low-high")
    if field == "day-of-week" and 7 in (first, last):
        raise ValueError(f"day-of-week {item!r}: NCRONTAB days are 0-6 (Sunday=0); 7 is not Sunday")


@lru_cache(maxsize=64)
def validate(expr: str) -> str:
    """`expr` with its fields single-spaced. Raises ValueError unless NCrontab would read it as
    croniter does."""
    fields = expr.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB {expr!r} must have 6 fields (second minute hour day month weekday)")
    for field, text in zip(_FIELDS, fields):
        for item in text.split(","):
            _check_item(field, item)
    normalized = " ".join(fields)
    try:
        croniter(normalized, second_at_beginning=True)  # ranges, steps, names per field
    except CroniterError as exc:
        raise ValueError(f"NCRONTAB {expr!r}: {exc}") from None
    return normalized


def next_occurrence(expr: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after `after` that matches `expr`.

    Aware datetimes are computed in UTC (the host's default, WEBSITE_TIME_ZONE unset) and returned
    in UTC; naive ones are taken as they are and a naive result is returned. A schedule with no
    occurrence (Feb 30) raises ValueError.
    """
    start = after.astimezone(dt.UTC).replace(tzinfo=None) if after.tzinfo else after
    schedule = croniter(validate(expr), start, second_at_beginning=True, day_or=False)
    try:
        occurrence = schedule.get_next(dt.datetime)
    except CroniterError as exc:
        raise ValueError(f"NCRONTAB {expr!r}: {exc}") from None
    return occurrence.replace(tzinfo=dt.UTC) if after.tzinfo else occurrence
