"""The one clock. Everything else receives time as an argument."""

from __future__ import annotations

import datetime as dt
import math
import re

from privca.errors import InputError


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC, truncated to whole seconds (X.509 times have no fraction)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Treat naive datetimes (as some databases return them) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def isoformat(value: dt.datetime) -> str:
    """ISO 8601 with a Z, the form used in JSON output."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    """Whole days until `not_after`, counting a started day as one: 730 for a certificate
    issued for 730 days, 1 on its last day, 0 or less once it has expired. The one
    definition every command, JSON document and metric label uses."""
    seconds = (as_utc(not_after) - as_utc(now)).total_seconds()
    return math.ceil(seconds / 86400)


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """`30d`, `12h`, `2w`, or a bare number of days."""
    match = _DURATION.match(text)
    if not match:
        raise InputError(
            f"duration '{text}' is not understood", "use a number with s, m, h, d or w, e.g. 30d"
        )
    try:
        return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise InputError(
            f"duration '{text[:40]}' is too long", "give at most a few thousand years"
        ) from None
