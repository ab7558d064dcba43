"""click's own usage errors in privca's one-line form: the command that was being parsed
in the hint, the value shown once escaped (click quotes it with repr(), which escapes some
characters already), and never echoed whole when it is huge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _privca(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privca", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PRIVCA_HOME": str(tmp_path / "home")},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("check", "--warn"), "privca check"),
        (("issuer", "revoke", "--reason"), "privca issuer revoke"),
        (("--home", "/nonexistent", "issuer", "revoke", "--reason"), "privca issuer revoke"),
        (("--home=/nonexistent", "check", "--crit"), "privca check"),
        (("-v", "issuer", "bogus"), "privca issuer"),
        (("--home",), "privca"),
        (("bogus", "--warn"), "privca"),
    ],
)
def test_the_hint_names_the_command_being_parsed(
    tmp_path: Path, args: tuple[str, ...], command: str
) -> None:
    result = _privca(tmp_path, *args)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("privca: error: "), result.stderr
    assert lines[1] == f"  hint: see '{command} --help'", result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "home").exists()


def test_a_control_character_is_escaped_once(tmp_path: Path) -> None:
    result = _privca(tmp_path, "--bogus\x1b[31m")
    assert result.returncode == 2, result
    first = result.stderr.splitlines()[0]
    assert first == "privca: error: No such option '--bogus\\x1b[31m'.", first


def test_a_huge_unknown_option_is_not_echoed_whole(tmp_path: Path) -> None:
    result = _privca(tmp_path, "check", "--" + "A" * 100_000)
    assert result.returncode == 2, result
    first = result.stderr.splitlines()[0]
    assert first.startswith("privca: error: No such option '--AAA") and first.endswith("…")
    assert len(first) < 400, len(first)


def test_a_huge_unknown_option_is_cut_on_the_nagios_line(tmp_path: Path) -> None:
    result = _privca(tmp_path, "check", "--format", "nagios", "--\x1b" + "A" * 100_000)
    assert result.returncode == 3, result
    (line,) = result.stdout.splitlines()
    assert line.startswith("PRIVCA UNKNOWN - No such option '--\\x1bAAA"), line[:80]
    assert len(line) < 450, len(line)
