"""printable(): untrusted text never reaches a terminal raw."""

import pytest

from privca._text import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("db.corp.internal", "db.corp.internal"),
        ("bücher.corp.internal", "bücher.corp.internal"),
        ("\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("line\nbreak\r", "line\\x0abreak\\x0d"),
        ("tab\there", "tab\\x09here"),
        ("\x9b31m", "\\x9b31m"),
        ("\x7f", "\\x7f"),
        ("abc\u202edef", "abc\\u202edef"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("back\\slash", "back\\\\slash"),
        ("\\x1b", "\\\\x1b"),
    ],
    ids=[
        "plain",
        "idn",
        "osc52",
        "csi",
        "newlines",
        "tab",
        "c1-csi",
        "del",
        "bidi-override",
        "zero-width",
        "backslash",
        "forged-escape",
    ],
)
def test_printable_escapes_controls(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in printable(raw))


def test_printable_limit_cuts_with_ellipsis() -> None:
    assert printable("a" * 50, limit=10) == "a" * 9 + "…"
    assert printable("short", limit=10) == "short"


def test_printable_ascii_shortcut_escapes_what_the_loop_escapes() -> None:
    """Printable ASCII without a backslash is returned as it is (checked in C); every
    other ASCII character still goes through the escaping."""
    for code in range(128):
        ch = chr(code)
        shown = "\\\\" if ch == "\\" else f"\\x{code:02x}" if code < 32 or code == 127 else ch
        assert printable(f"a{ch}b") == f"a{shown}b", code
    assert printable("a" * 10, limit=10) == "a" * 10
    assert printable("a" * 11, limit=10) == "a" * 9 + "…"
