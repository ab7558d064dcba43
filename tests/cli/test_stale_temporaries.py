"""Temporaries a killed run left beside its files (`.NAME.key.privca-XXXXXXXX.tmp`, private keys
0600, and `.NAME.key.previous.privca-XXXXXXXX.tmp`) are removed by the next write of the same
target: only privca's own names for exactly that target, older than a minute, and not
locked by a run still working with them. Before, they stayed for ever."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tests.conftest import Cli, write

NAME = "db.corp.internal"
OLD = time.time() - 3600


def _leftover(out: Path, name: str, *, old: bool = True) -> Path:
    path = write(out / name, b"-----BEGIN PRIVATE KEY-----\n", 0o600)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


def test_issue_and_renew_remove_their_own_stale_temporaries_only(
    home_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale_key = _leftover(out, f".{NAME}.key.privca-k3j_9x0a.tmp")
    stale_crt = _leftover(out, f".{NAME}.crt.privca-abcdefgh.tmp")
    kept = [
        _leftover(out, f".{NAME}.key.privca-fresh123.tmp", old=False),  # a run still at work
        _leftover(out, f".{NAME}.key.privca-ABCDEFGH.tmp"),  # not mkstemp's alphabet
        _leftover(out, f".{NAME}.key.tmp"),  # no random part
        _leftover(out, ".other.corp.internal.key.privca-abcdefgh.tmp"),  # another target
        _leftover(out, f"{NAME}.key.privca-abcdefgh.tmp"),  # not hidden: not privca's name
        # A user's own file that only looks like mkstemp's (review: `backup_1`, `original`
        # were taken): without privca's mark it is never privca's.
        _leftover(out, f".{NAME}.key.backup_1.tmp"),
        _leftover(out, f".{NAME}.key.original.tmp"),
    ]
    locked = _leftover(out, f".{NAME}.chain.pem.privca-lockedxx.tmp")
    holder = os.open(locked, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a run holds the key it staged
    try:
        result = home_cli("issue", NAME, "--out", str(out), *_pass(home_cli))
        assert result.exit_code == 0, result.stderr
    finally:
        os.close(holder)
    assert not stale_key.exists() and not stale_crt.exists()
    assert all(path.exists() for path in [*kept, locked])

    stale_previous = _leftover(out, f".{NAME}.key.previous.privca-zzzz0000.tmp")
    result = home_cli("renew", NAME, "--out", str(out), *_pass(home_cli))
    assert result.exit_code == 0, result.stderr
    assert not stale_previous.exists()
    assert not locked.exists()  # no longer locked, and old: taken this time
    assert all(path.exists() for path in kept)
