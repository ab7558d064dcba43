"""Errors the review found breaking the one `privca: error:` line + `  hint:` form: a
missing hint (--cn with a control character, needs-renewal --fraction, an empty
passphrase file, a refused scan, which is also the environment's refusal: exit 3),
init's unencrypted-keys warning printed before every input error, a value escaped twice
(`subject CN 'a\\\\x07'`), and a size-limit hint asking whether a passphrase file or a
checkpoint is "really a certificate, key or CSR"."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import Cli, assert_user_error, write

NAME = "db.corp.internal"


def _hinted(result_stderr: str) -> None:
    assert "\n  hint: " in result_stderr, result_stderr


def test_a_cn_with_a_control_character_is_escaped_once_and_hinted(
    home_cli: Cli, tmp_path: Path
) -> None:
    result = home_cli("issue", NAME, "--cn", "a\x07", "--out", str(tmp_path / "o"))
    assert_user_error(result, "subject CN 'a\\x07' contains control")
    assert "\\\\" not in result.stderr
    _hinted(result.stderr)


def test_needs_renewal_fraction_not_understood(home_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "o"
    issued = home_cli(
        "issue", NAME, "--out", str(out), "--passphrase-file", str(home_cli.passphrase_file)
    )
    assert issued.exit_code == 0, issued.stderr
    result = home_cli("needs-renewal", "--fraction", "x", str(out / f"{NAME}.crt"))
    assert_user_error(result, "is not a fraction")
    _hinted(result.stderr)


def test_an_empty_passphrase_file(home_cli: Cli, tmp_path: Path) -> None:
    empty = write(tmp_path / "empty", b"", 0o600)
    result = home_cli("issue", NAME, "--out", str(tmp_path / "o"), "--passphrase-file", str(empty))
    assert_user_error(result, "is empty")
    _hinted(result.stderr)


def test_an_oversized_passphrase_file_names_what_was_expected(
    home_cli: Cli, tmp_path: Path
) -> None:
    big = write(tmp_path / "big", b"x" * 5000, 0o600)
    result = home_cli("issue", NAME, "--out", str(tmp_path / "o"), "--passphrase-file", str(big))
    assert_user_error(result, "larger than 4 KiB")
    assert "certificate, key or CSR" not in result.stderr
    assert "passphrase file" in result.stderr.splitlines()[1]


def test_a_refused_scan_is_the_environment(home_cli: Cli) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = home_cli("import", "certificates", "--from-scan", f"127.0.0.1:{port}")
    assert_user_error(result, "cannot scan", code=3)
    _hinted(result.stderr)


def test_init_warns_about_unencrypted_keys_only_once_it_succeeds(
    run_cli: Cli, tmp_path: Path
) -> None:
    refused = run_cli("init", "--name", "\x1b", "--no-passphrase")
    assert_user_error(refused, "CA name")
    assert "warning" not in refused.stderr
    made = run_cli("init", "--name", "T", "--no-passphrase")
    assert made.exit_code == 0, made.stderr
    assert "privca: warning: CA keys are stored unencrypted" in made.stderr
