"""Paths the user gave (--out, --home, a certificate file) are shown escaped on success,
as everything else privca prints: `issue --out $'o\\e]0;pwn\\a'` printed the OSC sequence
raw, which a terminal acts on (retitles the window; OSC 52 writes the clipboard)."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result

from tests.conftest import Cli

NAME = "db.corp.internal"
HOSTILE = "o\x1b]0;pwn\x07"


def _clean(result: Result) -> None:
    assert result.exit_code in (0, 1), result.output + result.stderr
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text and "\x07" not in text, text
    assert "o\\x1b]0;pwn\\x07" in result.stdout + result.stderr


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


def test_issue_renew_csr_sign_and_needs_renewal(home_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / HOSTILE
    _clean(home_cli("issue", NAME, "--out", str(out), *_pass(home_cli)))
    _clean(home_cli("renew", NAME, "--out", str(out), *_pass(home_cli)))
    _clean(home_cli("needs-renewal", str(out / f"{NAME}.crt")))
    csr_out = tmp_path / "csr" / HOSTILE
    _clean(home_cli("csr", "web.corp.internal", "--out", str(csr_out)))
    csr = csr_out / "web.corp.internal.csr"
    _clean(home_cli("sign", str(csr), "--out", str(csr_out), *_pass(home_cli)))


def test_init_and_export(run_cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / HOSTILE
    _clean(run_cli("init", "--name", "T", "--no-passphrase", home=home))
    _clean(run_cli("export", "root", "--out", str(tmp_path / f"{HOSTILE}.crt"), home=home))
