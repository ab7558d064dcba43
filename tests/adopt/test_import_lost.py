"""`privca import certificates FILE...` puts back leaves this CA issued; a CA certificate is
never one of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error, openssl


def _rows(home: Path) -> tuple[int, int]:
    """(certificates, audit entries) in the store."""
    with sqlite3.connect(home / "privca.db") as connection:
        counts = tuple(
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("certificates", "audit_log")
        )
    connection.close()
    return counts  # type: ignore[return-value]


@pytest.fixture
def lost(run_cli: Cli, tmp_path: Path) -> tuple[Cli, Path]:
    """A CA restored from a backup taken before `lost.corp.internal` was issued: the
    certificate is lost from its inventory, as `privca import` is for."""
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Import Test CA", "--passphrase-file", secret).exit_code == 0
    archive = tmp_path / "before.tar.gz"
    assert run_cli("backup", "--out", str(archive)).exit_code == 0
    out = tmp_path / "issued"
    issued = run_cli("issue", "lost.corp.internal", "--out", str(out), "--passphrase-file", secret)
    assert issued.exit_code == 0, issued.stderr
    restored = tmp_path / "restored"
    assert run_cli("restore", str(archive), "--home", str(restored)).exit_code == 0
    return Cli(restored, run_cli.passphrase_file), out / "lost.corp.internal.crt"


def _ca_signed_by_issuing(cli: Cli, tmp_path: Path) -> Path:
    """A CA:TRUE certificate the issuing CA's own key signed (behind privca's back)."""
    home = cli.home
    key, csr, crt = tmp_path / "sub.key", tmp_path / "sub.csr", tmp_path / "sub.crt"
    extensions = tmp_path / "ext.cnf"
    extensions.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-subj", "/CN=Sub CA", "-out", str(csr),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    signed = openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(home / "certs" / "issuing.crt"),
        "-CAkey", str(home / "private" / "issuing.key"),
        "-passin", f"file:{cli.passphrase_file}", "-days", "30", "-set_serial", "0x1234567",
        "-extfile", str(extensions), "-out", str(crt),
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    return crt


def test_the_homes_own_ca_certificates_are_refused(lost: tuple[Cli, Path]) -> None:
    """They gave "2 imported", listed as server-client leaves; revoking the issuing one
    put it on the root's CRL and broke `openssl verify -crl_check_all` for every leaf."""
    cli, _ = lost
    before = _rows(cli.home)
    certs = cli.home / "certs"
    result = cli("import", "certificates", str(certs / "root.crt"), str(certs / "issuing.crt"))
    assert_user_error(result, "root.crt' is a CA certificate of this home")
    assert _rows(cli.home) == before


def test_one_ca_certificate_refuses_the_whole_batch(lost: tuple[Cli, Path], tmp_path: Path) -> None:
    """A CA certificate our key signed is still no leaf; the lost leaf beside it waits
    until the batch is right, then comes in."""
    cli, leaf = lost
    before = _rows(cli.home)
    sub = _ca_signed_by_issuing(cli, tmp_path)
    result = cli("import", "certificates", str(leaf), str(sub))
    assert_user_error(result, "sub.crt' is a CA certificate")
    assert "nothing was imported" in result.stderr
    assert _rows(cli.home) == before
    again = cli("import", "certificates", str(leaf))
    assert again.exit_code == 0, again.stderr
    assert "1 imported" in again.stderr + again.stdout
