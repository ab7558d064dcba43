"""A CA home whose store a newer privca migrated (one host upgraded before the others):
every command, the Nagios plugin and serve say so in one line, exit 3, and change nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import Cli, tree_snapshot


@pytest.fixture
def newer(home_cli: Cli) -> Cli:
    database = sqlite3.connect(home_cli.home / "privca.db")
    with database:
        database.execute("UPDATE alembic_version SET version_num = '0099_from_a_newer_privca'")
    database.close()
    return home_cli


def _privca(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(cli.home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PRIVCA_PASSPHRASE_FILE": str(cli.passphrase_file)},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [("list",), ("show", "x"), ("crl",), ("serve", "--no-tls", "--listen", "127.0.0.1:1")],
)
def test_every_command_names_the_newer_schema(newer: Cli, args: tuple[str, ...]) -> None:
    before = tree_snapshot(newer.home)
    result = _privca(newer, *args)
    assert result.returncode == 3, result
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "privca: error: the store is at schema revision '0099_from_a_newer_privca', which "
        "this privca (at '" + _revision() + "') does not know: a newer privca migrated it"
    ), result.stderr
    assert lines[1].startswith("  hint: run that newer privca here too"), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert tree_snapshot(newer.home) == before


def test_the_nagios_plugin_says_unknown(newer: Cli) -> None:
    result = _privca(newer, "check", "--format", "nagios")
    assert result.returncode == 3, result
    assert result.stdout.startswith("PRIVCA UNKNOWN - the store is at schema revision"), result


def _revision() -> str:
    from privca.store.schema import SCHEMA_REVISION

    return SCHEMA_REVISION
