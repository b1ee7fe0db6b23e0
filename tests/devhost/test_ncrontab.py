import datetime as dt

import pytest

from devtools.ncrontab import next_occurrence, parse

T0 = dt.datetime(2024, 1, 1, 0, 0, 0)  # a Monday


@pytest.mark.parametrize("expr, after, expected", [
    ("* * * * * *", T0, T0 + dt.timedelta(seconds=1)),  # strictly after
    ("*/15 * * * * *", dt.datetime(2024, 1, 1, 0, 0, 14, 999), dt.datetime(2024, 1, 1, 0, 0, 15)),
    ("0 */5 * * * *", dt.datetime(2024, 1, 1, 0, 7, 3), dt.datetime(2024, 1, 1, 0, 10)),
    ("0 0 9-17/4 * * *", dt.datetime(2024, 1, 1, 13, 0, 0), dt.datetime(2024, 1, 1, 17)),
    ("0 0 9-17/4 * * *", dt.datetime(2024, 1, 1, 17, 0, 0), dt.datetime(2024, 1, 2, 9)),
    ("30 15 10,22 * * *", dt.datetime(2024, 1, 1, 10, 15, 30), dt.datetime(2024, 1, 1, 22, 15, 30)),
    ("5/20 * * * * *", dt.datetime(2024, 1, 1, 0, 0, 26), dt.datetime(2024, 1, 1, 0, 0, 45)),
    ("0 0 0 1 * *", dt.datetime(2024, 12, 15), dt.datetime(2025, 1, 1)),  # year rollover
    ("0 0 0 31 * *", dt.datetime(2024, 1, 31), dt.datetime(2024, 3, 31)),  # skips short months
    ("0 0 0 29 2 *", dt.datetime(2024, 3, 1), dt.datetime(2028, 2, 29)),  # next leap day
    ("0 0 12 * * 0", T0, dt.datetime(2024, 1, 7, 12)),  # Sunday is 0
    ("0 0 12 * * 7", T0, dt.datetime(2024, 1, 7, 12)),  # ... and 7
    ("0 0 8 * * 1-5", dt.datetime(2024, 1, 5, 9), dt.datetime(2024, 1, 8, 8)),  # Fri -> Mon
    # NCrontab ANDs day-of-month and day-of-week: the next Friday the 13th, not the next Friday.
    ("0 0 0 13 * 5", T0, dt.datetime(2024, 9, 13)),
])
def test_next_occurrence(expr, after, expected):
    assert next_occurrence(expr, after) == expected


def test_aware_datetimes_are_computed_in_utc():
    after = dt.datetime(2024, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 23:30Z
    assert next_occurrence("0 0 * * * *", after) == dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.timezone.utc)


def test_consecutive_occurrences_step_through_the_schedule():
    t, seen = T0, []
    for _ in range(4):
        t = next_occurrence("0 0,30 6 * * 1", t)
        seen.append(t)
    assert seen == [dt.datetime(2024, 1, 1, 6, 0), dt.datetime(2024, 1, 1, 6, 30),
                    dt.datetime(2024, 1, 8, 6, 0), dt.datetime(2024, 1, 8, 6, 30)]


@pytest.mark.parametrize("expr", [
    "* * * * *",  # 5 fields: Functions needs seconds
    "60 * * * * *", "* * 24 * * *", "* * * 0 * *", "* * * * 13 *", "* * * * * 8",
    "*/0 * * * * *", "5-1 * * * * *", "a * * * * *", "MON * * * * *",
])
def test_malformed_expressions_raise(expr):
    with pytest.raises(ValueError):
        parse(expr)


def test_impossible_schedule_raises_instead_of_looping():
    with pytest.raises(ValueError):
        next_occurrence("0 0 0 30 2 *", T0)
