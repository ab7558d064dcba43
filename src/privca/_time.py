"""The one clock. Everything else receives time as an argument."""

from __future__ import annotations

import datetime as dt
import math


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC, truncated to whole seconds (X.509 times have no fraction)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Treat naive datetimes (as some databases return them) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def isoformat(value: dt.datetime) -> str:
    """ISO 8601 with a Z, the form used in JSON output (isoformat: strftime costs several
    times more, and `list --json` calls this twice per certificate)."""
    return as_utc(value).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    """Whole days until `not_after`, counting a started day as one: 730 for a certificate
    issued for 730 days, 1 on its last day, 0 or less once it has expired. The one
    definition every command, JSON document and metric label uses."""
    seconds = (as_utc(not_after) - as_utc(now)).total_seconds()
    return math.ceil(seconds / 86400)
