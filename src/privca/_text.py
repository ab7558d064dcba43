"""Making untrusted text safe to show: names from CSRs, ACME requests and imported files.

A terminal acts on escape sequences (OSC 52 writes the clipboard, OSC 8 makes links,
CSI moves the cursor) and bidi controls reorder what the reader sees, so text that came
from outside is shown with every control character escaped, never raw.
"""

from __future__ import annotations

import unicodedata

# Format characters that reorder or hide text (Trojan Source, CVE-2021-42574).
_BIDI_AND_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\ufeff"
)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, limit: int | None = None) -> str:
    """`text` with control, bidi and invisible format characters escaped as \\xNN or
    \\uNNNN (and a backslash doubled, so the escaping cannot be forged). With `limit`,
    the result is cut to about that many characters and ends with an ellipsis."""
    # Nothing to escape (checked in C): nearly every name, and every line of a listing.
    plain = text.isascii() and text.isprintable() and "\\" not in text
    if plain and (limit is None or len(text) <= limit):
        return text
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch in _BIDI_AND_INVISIBLE or unicodedata.category(ch) in ("Cc", "Cs", "Co"):
            out.append(_escape(ch))
        else:
            out.append(ch)
    result = "".join(out)
    if limit is not None and len(result) > limit:
        return result[: max(limit - 1, 0)] + "…"
    return result


def shows_as_itself(text: str) -> bool:
    """Whether `text` has nothing printable() would escape but backslashes: no control,
    bidirectional or invisible character. For names people give (a CA's, a label) that
    every listing and certificate will show."""
    return all(
        ch not in _BIDI_AND_INVISIBLE and unicodedata.category(ch) not in ("Cc", "Cs", "Co")
        for ch in text
    )


__all__ = ["printable", "shows_as_itself"]
