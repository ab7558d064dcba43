"""An argument that is not UTF-8 (Python hands its bytes over as lone surrogates) is
refused once, before any command runs: exit 2, one line + hint, its bytes shown escaped.
Before, show, revoke, renew, list --name, audit log --actor and the ACME listings looked
it up in the database and crashed (UnicodeEncodeError, exit 70)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import Cli, assert_user_error

# b"a\xff" + an OSC sequence, as os.fsdecode (and so sys.argv) gives it
HOSTILE = "a\udcff\x1b]0;pwn\x07"


@pytest.fixture
def plain_home(run_cli: Cli) -> Cli:
    result = run_cli("init", "--name", "T", "--no-passphrase")
    assert result.exit_code == 0, result.stderr
    return run_cli


@pytest.mark.parametrize(
    "args",
    [
        ("show", HOSTILE),
        ("revoke", HOSTILE),
        ("renew", HOSTILE),
        ("list", "--name", HOSTILE),
        ("audit", "log", "--actor", HOSTILE),
        ("acme", "eab", "revoke", HOSTILE),
        ("acme", "accounts", "deactivate", HOSTILE),
        ("acme", "orders", "list", "--account", HOSTILE),
    ],
    ids=lambda args: "-".join(a for a in args if a != HOSTILE),
)
def test_a_non_utf8_argument_is_refused_before_any_command(
    plain_home: Cli, args: tuple[str, ...]
) -> None:
    result = plain_home(*args)
    assert_user_error(result, "is not UTF-8 text")
    assert result.stdout == ""  # not even list's header
    assert "'a\\xff\\x1b]0;pwn\\x07'" in result.stderr  # the byte as itself, escaped once
    assert "\x1b" not in result.stderr and "\\udc" not in result.stderr


def test_the_bytes_of_a_real_command_line(plain_home: Cli) -> None:
    env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    home = os.fsencode(plain_home.home)
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"privca", b"--home", home, b"show", b"caf\xe9.example"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == (
        "privca: error: argument 'caf\\xe9.example' is not UTF-8 text\n"
        "  hint: privca takes names, serials and paths as UTF-8; give the argument in UTF-8"
        " (or rename the file)\n"
    )


def test_utf8_arguments_are_untouched(plain_home: Cli) -> None:
    result = plain_home("show", "café.example")
    assert_user_error(result, "no certificate")
