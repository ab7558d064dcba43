"""Bad input to `privca audit` and `privca import`: one line, exit 2, nothing written, no
traceback; hostile text is not echoed raw."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error, tree_snapshot, write


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("audit", "log", "--since", "yesterday\x1b[31m"), "neither a date nor a duration"),
        (("audit", "log", "--since", "0001-01-01T00:00:00+05:00"), "out of range"),
        (("audit", "export", "--since", "9999999d", "--out", "{out}"), "out of range"),
        (("audit", "log", "--serial", "not-hex"), "is not a hex serial"),
        # int(..., 16) takes a sign, underscores and other scripts' digits: -5 reached the
        # store as '-5' and bytes.fromhex raised (an internal error, exit 70).
        (("audit", "log", "--serial", "-5"), "'-5' is not a hex serial"),
        (("audit", "log", "--serial", "-0x5"), "'-0x5' is not a hex serial"),
        (("audit", "log", "--serial", "5_5"), "'5_5' is not a hex serial"),
        (("audit", "log", "--serial", "\u00b2"), "is not a hex serial"),
        (("audit", "log", "--serial", "\u0663"), "is not a hex serial"),
        (("audit", "log", "--serial", "f" * 41), "is too long for a serial"),
        (("audit", "log", "--serial", "\u202e5\x1b[2J"), "is not a hex serial"),
        (("audit", "log", "--since", "\u0663d"), "neither a date nor a duration"),
        (("audit", "export", "--since", "\u0663d", "--out", "{out}"), "neither a date nor"),
        (("audit", "verify", "--checkpoint", "{junk}"), "not a privca audit checkpoint"),
        (("audit", "verify", "--checkpoint", "{missing}"), "missing"),
        (("audit", "verify-export", "{junk}", "--signature", "{junk}"), "not a privca audit"),
        (("import", "{junk}"), "junk"),
        # Refused before the checkpoint is signed and kept: it used to be kept (a row, the
        # published file) and then the write failed with exit 3.
        (("audit", "checkpoint", "--out", "{under_file}"), "is not a directory"),
        (("audit", "export", "--since", "7d", "--out", "{under_file}"), "is not a directory"),
    ],
    ids=["since-garbage", "since-before-year-one", "export-since-too-long-ago",
         "serial-not-hex", "serial-negative", "serial-negative-0x", "serial-underscore",
         "serial-superscript-two", "serial-arabic-indic-digit", "serial-too-long",
         "serial-bidi-and-escape", "since-arabic-indic-digit", "export-since-arabic-indic",
         "checkpoint-not-json", "checkpoint-missing",
         "export-not-json", "import-not-a-certificate", "checkpoint-out-under-a-file",
         "export-out-under-a-file"],
)  # fmt: skip
def test_refused_cleanly(
    run_cli: Cli, audited_home: Path, tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    junk = write(tmp_path / "junk.json", b"\x00\xffnot json at all\x1b[2J")
    paths = {
        "{junk}": str(junk),
        "{missing}": str(tmp_path / "missing.json"),
        "{out}": str(tmp_path / "export.json"),
        "{under_file}": str(junk / "sub" / "kept.json"),
    }
    files, rows = _files(audited_home), _rows(audited_home)
    result = run_cli(*(paths.get(a, a) for a in args))
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert _files(audited_home) == files
    assert _rows(audited_home) == rows  # nothing appended, nothing recorded


def _files(home: Path) -> set[str]:
    """The home's files, but SQLite's own -wal and -shm (which any reader may create)."""
    return {name for name in tree_snapshot(home) if not name.endswith(("-wal", "-shm"))}


def _rows(home: Path) -> tuple[int, int]:
    with sqlite3.connect(home / "privca.db") as connection:
        entries = connection.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        certificates = connection.execute("SELECT count(*) FROM certificates").fetchone()[0]
    return int(entries), int(certificates)
