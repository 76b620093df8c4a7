"""Event timestamps: RFC 3339 strings with a zone, epoch seconds or epoch milliseconds.

The rules live here once and are used by the Python validation and by the JSON Schema
documents (which embed :data:`RFC3339_PATTERN` and the numeric bounds), so the two cannot
disagree on what a timestamp is.

Accepted range: the years 1970 to 2200. An event outside it is almost certainly a unit bug
(nanoseconds, microseconds, a zero default, a date typed by hand), and event time drives the
windows, so one absurd timestamp would stretch or reset a window for everyone.

- A number of epoch seconds ``0 <= t < 7289654400`` (2201-01-01T00:00:00Z).
- A number above ``1e11`` is epoch milliseconds, up to ``7289654400000``. Numbers between
  the two ranges are rejected rather than guessed at.
- An RFC 3339 ``date-time`` with a zone (``Z``/``z`` or ``+hh:mm``), separator ``T``/``t``,
  optional fraction of any length, written year 1970..2200, a valid calendar date (leap years
  included). Leap seconds (``:60``) are not accepted; a local time without a zone is rejected
  because the same text means different instants on different producers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ._errors import ContractError, describe

__all__ = [
    "MAX_EPOCH_MS",
    "MAX_EPOCH_S",
    "MIN_EPOCH_MS",
    "RFC3339_PATTERN",
    "RFC3339_UTC_PATTERN",
    "epoch_or_none",
    "epoch_problem",
    "format_timestamp",
    "match_rfc3339_utc",
    "parse_rfc3339",
    "parse_timestamp",
]

#: Upper bound (exclusive) of epoch seconds: 2201-01-01T00:00:00Z.
MAX_EPOCH_S = 7289654400
#: Numbers strictly above this are epoch milliseconds (the contract's rule).
MIN_EPOCH_MS = 100_000_000_000
#: Upper bound (exclusive) of epoch milliseconds.
MAX_EPOCH_MS = MAX_EPOCH_S * 1000

_YEAR = "(?:19[7-9][0-9]|20[0-9]{2}|21[0-9]{2}|2200)"
# Leap years in 1970..2200: divisible by 4, except 2100 and 2200 (2000 is one).
_LEAP_YEAR = (
    "(?:19(?:7[26]|8[048]|9[26])"
    "|20(?:[02468][048]|[13579][26])"
    "|21(?:0[48]|[2468][048]|[13579][26]))"
)
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
_ZONE = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"

#: The timestamp pattern, valid both as a Python and as an ECMA-262 regular expression.
#: ``[0-9]`` rather than ``\d`` (Python's ``\d`` matches any Unicode digit), and the final
#: ``(?![\s\S])`` because Python's ``$`` also matches before a trailing newline while
#: JSON Schema validators in other languages follow ECMA-262, where it does not.
RFC3339_PATTERN = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[Tt]{_TIME}{_ZONE}$(?![\\s\\S])"
#: The same, restricted to UTC (zone ``Z``): the form of an alert's ``event_time``.
RFC3339_UTC_PATTERN = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)[Tt]{_TIME}[Zz]$(?![\\s\\S])"
_match_rfc3339 = re.compile(RFC3339_PATTERN).match
match_rfc3339_utc = re.compile(RFC3339_UTC_PATTERN).match

# The shape of a date-time with a zone, without the range checks: to tell "2023-02-30" or
# "25:00" (not a valid date or time) apart from text that is not a timestamp at all.
_SHAPE = (
    r"^(19[7-9][0-9]|2[01][0-9]{2}|2200)-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_fromisoformat = datetime.fromisoformat


def parse_rfc3339(text: str, field: str = "timestamp") -> float:
    """Convert an RFC 3339 date-time with a zone to epoch seconds (UTC).

    The regular expression decides what is valid (``datetime.fromisoformat`` alone accepts
    more than RFC 3339: no seconds, week dates, basic format); ``fromisoformat`` then does
    the conversion, which is exact to the microsecond (further digits are dropped).
    """
    if _match_rfc3339(text) is None:
        raise ContractError(field, _rfc3339_problem(text))
    try:
        return _fromisoformat(text).timestamp()
    except ValueError:  # lower-case "t"/"z", which Python's parser does not take
        return _fromisoformat(text.upper()).timestamp()


def _rfc3339_problem(text: str) -> str:
    """Say why a string is not an accepted timestamp, as precisely as is cheap to tell."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    if re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$", text):
        return f"RFC 3339 timestamp without a zone (add Z or an offset such as +00:00): {shown!r}"
    if re.match(_SHAPE, text):
        return f"not a valid date or time: {shown!r}"
    year = text[:4]
    if year.isdigit() and re.match(r"^[0-9]{4}-", text) and not 1970 <= int(year) <= 2200:
        return f"timestamp year {year} outside the accepted range 1970..2200: {shown!r}"
    return f"expected an RFC 3339 string with a zone or an epoch number, got {shown!r}"


def parse_timestamp(value: object, field: str = "timestamp") -> float:
    """Convert a contract timestamp (string or number) to epoch seconds (UTC).

    The event parsers inline the numeric branch of this function for speed; this is the
    reference version, used for everything else (alerts, command-line options, tests).
    """
    kind = type(value)
    if kind is int or kind is float:
        if 0 <= value < MAX_EPOCH_S:  # type: ignore[operator]
            return float(value)  # type: ignore[arg-type]
        if MIN_EPOCH_MS < value < MAX_EPOCH_MS:  # type: ignore[operator]
            return value / 1000  # type: ignore[operator]
        raise ContractError(field, epoch_problem(value))
    if kind is str:
        return parse_rfc3339(value, field)  # type: ignore[arg-type]
    raise ContractError(
        field, f"expected an RFC 3339 string or epoch number, got {describe(value)}"
    )


def epoch_or_none(value: object) -> float | None:
    """Epoch seconds of a valid contract timestamp, ``None`` for anything else.

    For the decoding fast path, which leaves explaining a bad value to the reference path.
    """
    kind = type(value)
    if kind is float or kind is int:
        if 0 <= value < MAX_EPOCH_S:  # type: ignore[operator]
            return float(value)  # type: ignore[arg-type]
        if MIN_EPOCH_MS < value < MAX_EPOCH_MS:  # type: ignore[operator]
            return value / 1000  # type: ignore[operator]
        return None
    if kind is str and _match_rfc3339(value) is not None:  # type: ignore[arg-type]
        if value[10] == "T" and value[-1] != "z":  # type: ignore[index]
            return _fromisoformat(value).timestamp()  # type: ignore[arg-type]
        return parse_rfc3339(value)  # type: ignore[arg-type]
    return None


def epoch_problem(value: object) -> str:
    """Explain why a number is not an accepted epoch timestamp."""
    if value - value != 0:  # type: ignore[operator]
        return f"expected a finite epoch number, got {describe(value)}"
    return (
        f"epoch number {value!r} outside the accepted range: seconds in "
        f"[0, {MAX_EPOCH_S}) or milliseconds in ({MIN_EPOCH_MS}, {MAX_EPOCH_MS}), "
        "i.e. the years 1970..2200"
    )


def format_timestamp(epoch_seconds: float) -> str:
    """Format epoch seconds as an RFC 3339 UTC string (``2024-05-01T12:00:00.250Z``).

    Alerts carry their event time in this form. Whole seconds have no fraction and other
    values have microseconds, so the same float always gives the same text (alert ids hash
    it).
    """
    text = datetime.fromtimestamp(epoch_seconds, UTC).isoformat()
    return text[:-6] + "Z"
