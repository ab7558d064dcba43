"""Typed reads of privca.toml's values.

TOML has types, and a value of another type is refused rather than coerced: bool("false")
is True (a policy that says `allow_wildcards = "false"` would allow them), and a bare
string where a list belongs iterates as one-letter items (`excluded = "evil.example"`
would exclude seven one-letter domains and not evil.example). Each reader raises
ValueError naming the key and the value; its caller says which file and section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privca._text import printable


def _shown(value: Any) -> str:
    return printable(repr(value), 60)


def table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The [key] table, or {} when it is absent."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table, not {_shown(value)}")
    return value


def flag(section: Mapping[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false (no quotes), not {_shown(value)}")
    return value


def whole_number(section: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}, not {_shown(value)}")
    return value


def text(section: Mapping[str, Any], key: str, default: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {_shown(value)}")
    return value


def texts(section: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = section.get(key, default)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings, not {_shown(value)}")
    return tuple(value)
