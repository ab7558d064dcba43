"""A CA home with a history worth auditing, and helpers to tamper with its store."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cli, require_tool


@pytest.fixture
def audited_home(run_cli: Cli) -> Path:
    """init, three certificates, one revoked, a CRL and a signed checkpoint."""
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Audit Test CA", "--passphrase-file", secret).exit_code == 0
    out = str(run_cli.home.parent / "out")
    for name in ("one", "two", "three"):
        result = run_cli(
            "issue", f"{name}.corp.internal", "--out", out, "--passphrase-file", secret
        )
        assert result.exit_code == 0, result.stderr
    assert run_cli("revoke", "two.corp.internal").exit_code == 0
    assert run_cli("crl", "--passphrase-file", secret).exit_code == 0
    checkpoint = run_cli("audit", "checkpoint", "--passphrase-file", secret)
    assert checkpoint.exit_code == 0, checkpoint.stderr
    return run_cli.home


def sqlite3_cli(database: Path, *statements: str) -> str:
    """Run SQL with the real sqlite3 command-line tool, as someone with the file would."""
    tool = require_tool("sqlite3")
    result = subprocess.run(
        [tool, str(database), ";".join(statements)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def copy_home(home: Path, target: Path) -> Path:
    shutil.copytree(home, target)
    return target


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return list(connection.execute(sql))
