"""Timestamps: the RFC 3339 pattern, leap years, ranges, and formatting for alerts."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

import pytest

from driftline.schemas import ContractError, format_timestamp, parse_timestamp
from driftline.schemas._timestamp import (
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    MIN_EPOCH_MS,
    RFC3339_PATTERN,
    RFC3339_UTC_PATTERN,
)


def test_bounds_are_the_documented_dates():
    assert datetime.fromtimestamp(MAX_EPOCH_S, UTC) == datetime(2201, 1, 1, tzinfo=UTC)
    assert MAX_EPOCH_MS == MAX_EPOCH_S * 1000
    assert MIN_EPOCH_MS == 1e11


@pytest.mark.parametrize("year", range(1970, 2201))
def test_february_29_follows_the_gregorian_calendar(year):
    text = f"{year}-02-29T00:00:00Z"
    assert (re.match(RFC3339_PATTERN, text) is not None) == calendar.isleap(year)


def test_days_per_month():
    for month in range(1, 13):
        last = calendar.monthrange(2023, month)[1]
        for day in range(1, 33):
            text = f"2023-{month:02d}-{day:02d}T00:00:00Z"
            assert (re.match(RFC3339_PATTERN, text) is not None) == (day <= last), text


def _utc(*args, **delta) -> float:
    return (datetime(*args, tzinfo=UTC) + timedelta(**delta)).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2024-05-01T12:00:00Z", _utc(2024, 5, 1, 12)),
        ("2024-05-01t12:00:00z", _utc(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00.1Z", _utc(2024, 5, 1, 12, milliseconds=100)),
        ("2024-05-01T12:00:00.123456789+05:30", _utc(2024, 5, 1, 6, 30, 0, 123456)),
        ("2024-05-01T23:59:59-23:59", _utc(2024, 5, 2, 23, 58, 59)),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2200-12-31T23:59:59.999Z", _utc(2200, 12, 31, 23, 59, 59, 999000)),
        ("2000-02-29T00:00:00-00:00", _utc(2000, 2, 29)),
    ],
)
def test_accepted_strings(text, seconds):
    assert parse_timestamp(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00",  # no zone
        "2024-05-01 12:00:00Z",  # space separator (not RFC 3339)
        "2024-05-01T12:00Z",  # no seconds
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:60Z",  # leap seconds are not accepted
        "2024-05-01T12:00:00+24:00",
        "2024-05-01T12:00:00.Z",
        "2024-13-01T12:00:00Z",
        "2024-00-01T12:00:00Z",
        "1969-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
        "20240501T120000Z",  # basic format
        "2024-W18-3T12:00:00Z",
        "2024-05-01T12:00:00Z\n",  # Python's $ would allow this; ECMA-262's does not
        "\n2024-05-01T12:00:00Z",
        "\uff12\uff10\uff12\uff14-05-01T12:00:00Z",  # full-width digits: Python \\d matches them
        "2024-05-01T12:00:00,5Z",
        "",
    ],
)
def test_rejected_strings(text):
    with pytest.raises(ContractError) as caught:
        parse_timestamp(text)
    assert caught.value.field == "timestamp"


def test_utc_pattern_is_the_zone_z_subset():
    assert re.match(RFC3339_UTC_PATTERN, "2024-05-01T12:00:00.5Z")
    assert not re.match(RFC3339_UTC_PATTERN, "2024-05-01T12:00:00+00:00")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (1_714_564_800, 1_714_564_800.0),
        (1_714_564_800_123, 1_714_564_800.123),
        (MAX_EPOCH_S - 1, MAX_EPOCH_S - 1.0),
        (MIN_EPOCH_MS + 1, (MIN_EPOCH_MS + 1) / 1000),
    ],
)
def test_epoch_numbers(value, seconds):
    assert parse_timestamp(value) == seconds
    assert parse_timestamp(float(value)) == seconds


@pytest.mark.parametrize(
    "value", [-1, MAX_EPOCH_S, 5e10, MIN_EPOCH_MS, MAX_EPOCH_MS, 1e300, True, False, None, {}]
)
def test_rejected_numbers(value):
    with pytest.raises(ContractError):
        parse_timestamp(value)


def test_format_round_trips_and_is_utc():
    for seconds in (0.0, 1_714_564_800.0, 1_714_564_800.25, 7_289_654_399.5):
        text = format_timestamp(seconds)
        assert text.endswith("Z")
        assert re.match(RFC3339_UTC_PATTERN, text)
        assert parse_timestamp(text) == seconds
    assert format_timestamp(1_714_564_800.0) == "2024-05-01T12:00:00Z"
    base = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert format_timestamp((base + timedelta(milliseconds=250)).timestamp()) == (
        "2024-05-01T12:00:00.250000Z"
    )
