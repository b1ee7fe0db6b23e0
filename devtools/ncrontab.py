"""A small NCRONTAB parser: the 6-field cron dialect (seconds first) of Functions timer triggers.

Fields: second minute hour day-of-month month day-of-week (0-6, Sunday=0; 7 is accepted as
Sunday). Each field takes `*`, numbers, lists `a,b`, ranges `a-b` and steps `*/n`, `a-b/n`, `a/n`.
Names (MON, JAN) are not supported.

Day-of-month and day-of-week are ANDed, as NCrontab (the library the real host uses) does:
"0 0 0 13 * 5" fires only on Friday the 13th. Classic Vixie cron would OR them; matching the
host matters more here, since a schedule must not fire locally when it would not in Azure.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23),
           ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
# A schedule that never matches (e.g. Feb 30) would loop forever; NCrontab gives up too.
_MAX_YEARS = 30


def _parse_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        try:
            step = int(step_text) if slash else 1
            if span == "*":
                start, end = lo, hi
            elif "-" in span:
                start, end = (int(v) for v in span.split("-", 1))
            else:
                start = int(span)
                end = hi if slash else start  # "5/15" means 5, 20, 35, ... as in NCrontab
        except ValueError:
            raise ValueError(f"bad {name} field {text!r}") from None
        if step < 1 or not lo <= start <= end <= hi:
            raise ValueError(f"{name} field {text!r} is out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@lru_cache(maxsize=64)
def parse(expr: str) -> tuple[frozenset[int], ...]:
    """The allowed values of each field, in field order. Raises ValueError when malformed."""
    fields = expr.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB {expr!r} must have 6 fields (second minute hour day month weekday)")
    return tuple(_parse_field(text, *spec) for text, spec in zip(fields, _FIELDS))


def next_occurrence(expr: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after `after` that matches `expr`.

    Aware datetimes are computed in UTC (the host's default, WEBSITE_TIME_ZONE unset) and returned
    in UTC; naive ones are taken as they are and a naive result is returned.
    """
    seconds, minutes, hours, days, months, weekdays = parse(expr)
    tz = after.tzinfo
    t = after.astimezone(dt.timezone.utc).replace(tzinfo=None) if tz else after
    t = t.replace(microsecond=0) + dt.timedelta(seconds=1)
    limit = t.year + _MAX_YEARS
    # Walk the coarsest failing field forward, resetting the finer ones: a few hundred steps a year.
    while t.year <= limit:
        if t.month not in months:
            t = dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1)
        elif t.day not in days or (t.weekday() + 1) % 7 not in weekdays:
            t = dt.datetime(t.year, t.month, t.day) + dt.timedelta(days=1)
        elif t.hour not in hours:
            t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
        elif t.minute not in minutes:
            t = t.replace(second=0) + dt.timedelta(minutes=1)
        elif t.second not in seconds:
            t += dt.timedelta(seconds=1)
        else:
            return t.replace(tzinfo=dt.timezone.utc) if tz else t
    raise ValueError(f"NCRONTAB {expr!r} has no occurrence within {_MAX_YEARS} years")
