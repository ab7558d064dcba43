"""The serial rule: random, positive, never sequential (uniqueness is the store's
primary key; see issuance.py)."""

from __future__ import annotations

import secrets


def random_serial() -> int:
    """126 CSPRNG bits under a fixed leading bit: positive, always 16 DER bytes and 32 hex
    digits, so a serial never looks like the sequential 01, 02 of `-CAcreateserial`."""
    return secrets.randbits(126) | (1 << 126)


__all__ = ["random_serial"]
