"""NCRONTAB timer schedules (devtools/ncrontab.py: croniter with NCrontab's rules)."""

import datetime as dt

import pytest

from devtools.ncrontab import next_occurrence, validate

# Runs no code of exports/, page/ or shared/ in this process: untraced (tests/tracing.py).
pytestmark = pytest.mark.no_cover

T0 = dt.datetime(2024, 1, 1, 0, 0, 0)  # a Monday


@pytest.mark.parametrize(
    "expr, after, expected",
    [
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
        ("0 0 8 * * 1-5", dt.datetime(2024, 1, 5, 9), dt.datetime(2024, 1, 8, 8)),  # Fri -> Mon
        # NCrontab ANDs day-of-month and day-of-week: the next Friday the 13th, not the next Friday.
        ("0 0 0 13 * 5", T0, dt.datetime(2024, 9, 13)),
        ("0 0 0 1-7 * 1", dt.datetime(2024, 1, 2), dt.datetime(2024, 2, 5)),  # first Monday of a month
    ],
)
def test_next_occurrence(expr, after, expected):
    assert next_occurrence(expr, after) == expected


# The examples of the Functions timer trigger documentation ("NCRONTAB expressions").
@pytest.mark.parametrize(
    "expr, after, expected",
    [
        ("0 */5 * * * *", dt.datetime(2024, 1, 1, 10, 3), dt.datetime(2024, 1, 1, 10, 5)),
        ("0 0 * * * *", dt.datetime(2024, 1, 1, 10, 3), dt.datetime(2024, 1, 1, 11)),
        ("0 0 */2 * * *", dt.datetime(2024, 1, 1, 10, 3), dt.datetime(2024, 1, 1, 12)),
        ("0 0 9-17 * * *", dt.datetime(2024, 1, 1, 17, 3), dt.datetime(2024, 1, 2, 9)),
        ("0 30 9 * * *", dt.datetime(2024, 1, 1, 9, 30), dt.datetime(2024, 1, 2, 9, 30)),
        ("0 30 9 * * 1-5", dt.datetime(2024, 1, 5, 10), dt.datetime(2024, 1, 8, 9, 30)),
        ("0 30 9 * Jan Mon", dt.datetime(2024, 1, 29, 10), dt.datetime(2025, 1, 6, 9, 30)),
    ],
)
def test_documented_examples(expr, after, expected):
    assert next_occurrence(expr, after) == expected


def test_aware_datetimes_are_computed_in_utc():
    after = dt.datetime(2024, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 23:30Z
    assert next_occurrence("0 0 * * * *", after) == dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.UTC)


def test_consecutive_occurrences_step_through_the_schedule():
    t, seen = T0, []
    for _ in range(4):
        t = next_occurrence("0 0,30 6 * * 1", t)
        seen.append(t)
    assert seen == [
        dt.datetime(2024, 1, 1, 6, 0),
        dt.datetime(2024, 1, 1, 6, 30),
        dt.datetime(2024, 1, 8, 6, 0),
        dt.datetime(2024, 1, 8, 6, 30),
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",  # 5 fields: the app's schedules always have seconds
        "0 0 0 1 1 * 2030",  # croniter would read a 7th field as the year
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 8",
        "*/0 * * * * *",
        "a * * * * *",
        "MON * * * * *",
        # NCrontab's day-of-week is 0-6: 7 is an error there, not Sunday as in Vixie cron.
        "0 0 12 * * 7",
        "0 0 12 * * 5-7",
        # Reversed ranges: croniter wraps them around, NCrontab swaps them; refused, not guessed.
        "5-1 * * * * *",
        "0 0 0 * * fri-mon",
        # croniter extensions that NCrontab lacks.
        "0 0 0 L * *",
        "0 0 0 1W * *",
        "0 0 0 * * 5#2",
        "0 0 0 ? * *",
        "H * * * * *",
        "@daily",
    ],
)
def test_malformed_expressions_raise(expr):
    with pytest.raises(ValueError):
        validate(expr)


def test_names_and_spacing_are_accepted():
    assert validate(" 0  30 9 *  jan-mar mon-fri ") == "0 30 9 * jan-mar mon-fri"


def test_impossible_schedule_raises_instead_of_looping():
    with pytest.raises(ValueError):
        next_occurrence("0 0 0 30 2 *", T0)
