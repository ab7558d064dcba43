"""Durations as privca.toml and the command line write them (settings.parse_duration)."""

from __future__ import annotations

import datetime as dt

import pytest

from privca.errors import InputError
from privca.settings import parse_duration

DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", 30 * DAY),
        ("12h", dt.timedelta(hours=12)),
        ("2w", 14 * DAY),
        ("45s", dt.timedelta(seconds=45)),
        ("90m", dt.timedelta(minutes=90)),
        ("7", 7 * DAY),
        # ASCII blanks were always read, and privca.toml files carry them.
        ("90 d", 90 * DAY),
        (" 90d ", 90 * DAY),
        ("90d\n", 90 * DAY),
        ("\t5 h", dt.timedelta(hours=5)),
    ],
)
def test_accepted(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not understood"),
        ("d", "not understood"),
        ("-5d", "not understood"),
        ("5 days", "not understood"),
        ("5dd", "not understood"),
        ("\u0663d", "not understood"),  # an Arabic-Indic 3: int() would read it
        ("\uff15d", "not understood"),  # a fullwidth 5
        ("5\u00a0d", "not understood"),  # a no-break space
        ("9" * 5000, "not understood"),  # past int()'s digit limit: no ValueError
        ("9" * 30 + "w", "too long"),
    ],
)
def test_refused(text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        parse_duration(text)


def test_a_refused_duration_is_echoed_escaped_and_short() -> None:
    with pytest.raises(InputError) as caught:
        parse_duration("1\x1b[31md" + "x" * 100)
    message = caught.value.message
    assert "\x1b" not in message and "\\x1b" in message
    assert len(message) < 100
