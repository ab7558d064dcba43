"""A passphrase that is not UTF-8 (a file or variable written in another encoding, or
random bytes) is a passphrase like any other: PBES2 takes bytes. From $PRIVCA_PASSPHRASE it
used to end in an internal error (exit 70: os.environ's text could not be encoded back)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write

BINARY = b"\xff\xfe binary passphrase \x80"


def _privca(home: Path, *args: str, passphrase: bytes | None) -> subprocess.CompletedProcess[str]:
    env: dict[bytes, bytes] = {
        os.fsencode(k): os.fsencode(v) for k, v in os.environ.items() if k != "PRIVCA_PASSPHRASE"
    }
    if passphrase is not None:
        env[b"PRIVCA_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(home), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_a_passphrase_that_is_not_utf8_works_from_the_environment_and_a_file(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ca"
    made = _privca(home, "init", "--name", "Bytes CA", passphrase=BINARY)
    assert made.returncode == 0, made.stderr
    issued = _privca(home, "issue", "a.example", "--out", str(tmp_path / "a"), passphrase=BINARY)
    assert issued.returncode == 0, issued.stderr
    # The same bytes from a file open the same key: the variable's bytes were used as set.
    secret = write(tmp_path / "pp", BINARY + b"\n", 0o600)
    from_file = _privca(
        home, "issue", "b.example", "--out", str(tmp_path / "b"),
        "--passphrase-file", str(secret), passphrase=None,
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr


def test_a_wrong_passphrase_that_is_not_utf8_is_a_wrong_passphrase(tmp_path: Path) -> None:
    home = tmp_path / "ca"
    made = _privca(home, "init", "--name", "Bytes CA", passphrase=b"test passphrase 1")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "e"
    wrong = _privca(home, "issue", "e.example", "--out", str(out), passphrase=b"\xff\xfe12")
    assert wrong.returncode == 2, wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert wrong.stderr.startswith("privca: error: ") and "passphrase" in wrong.stderr
    assert not out.exists()
