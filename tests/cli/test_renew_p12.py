"""`renew` rewrites the NAME.p12 that `issue --p12` left beside the files it renews: a
Java or Windows service loading it must get the successor, not the superseded (and soon
revoked) certificate. The bundle's passphrase is the one it was made with; without it,
renew refuses before anything is issued or written. Read back with the real openssl."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import Cli, assert_user_error, openssl, tree_snapshot, write

NAME = "app.corp.internal"
P12_PASS = "bundle pass"


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


@pytest.fixture
def p12_pass(tmp_path: Path) -> Path:
    return write(tmp_path / "p12.txt", P12_PASS + "\n", 0o600)


def _issue_p12(cli: Cli, out: Path, p12_pass: Path) -> None:
    result = cli(
        "issue", NAME, "--p12", "--p12-passphrase-file", str(p12_pass), "--out", str(out),
        *_pass(cli),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def _bundle(path: Path) -> tuple[int, str]:
    """The serial of the certificate in the PKCS#12 file and the public key (PEM) of the
    key in it, as openssl reads them."""
    certs = openssl(
        "pkcs12", "-in", str(path), "-passin", f"pass:{P12_PASS}", "-nokeys", "-clcerts"
    )
    assert certs.returncode == 0, certs.stderr
    serial = openssl("x509", "-noout", "-serial", input=certs.stdout.encode())
    assert serial.returncode == 0, serial.stderr
    keys = openssl("pkcs12", "-in", str(path), "-passin", f"pass:{P12_PASS}", "-nocerts", "-nodes")
    assert keys.returncode == 0, keys.stderr
    public = openssl("pkey", "-pubout", input=keys.stdout.encode())
    assert public.returncode == 0, public.stderr
    return int(serial.stdout.strip().removeprefix("serial="), 16), public.stdout


def _certificate(path: Path) -> tuple[int, str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    public = openssl("x509", "-noout", "-pubkey", "-in", str(path))
    assert public.returncode == 0, public.stderr
    return cert.serial_number, public.stdout


def _count(cli: Cli) -> int:
    return len(json.loads(cli("list", "--all", "--json").stdout))


def test_renew_rewrites_the_p12_with_the_new_certificate_and_key(
    home_cli: Cli, tmp_path: Path, p12_pass: Path
) -> None:
    out = tmp_path / "ssl"
    _issue_p12(home_cli, out, p12_pass)
    p12 = out / f"{NAME}.p12"
    p12.chmod(0o640)  # e.g. readable by the Java service's group
    old_bundle = p12.read_bytes()
    old_serial, old_public = _bundle(p12)

    result = home_cli(
        "renew", NAME, "--out", str(out), "--p12-passphrase-file", str(p12_pass), *_pass(home_cli)
    )
    assert result.exit_code == 0, result.stderr

    new_serial, new_public = _certificate(out / f"{NAME}.crt")
    assert new_serial != old_serial
    assert _bundle(p12) == (new_serial, new_public)
    assert new_public != old_public
    assert stat.S_IMODE(p12.stat().st_mode) == 0o640
    previous = out / f"{NAME}.p12.previous"
    assert previous.read_bytes() == old_bundle
    assert stat.S_IMODE(previous.stat().st_mode) == 0o640
    assert "p12:" in result.stdout


def test_reuse_key_puts_the_same_key_under_the_new_certificate(
    home_cli: Cli, tmp_path: Path, p12_pass: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ssl"
    _issue_p12(home_cli, out, p12_pass)
    p12 = out / f"{NAME}.p12"
    old_serial, old_public = _bundle(p12)
    monkeypatch.setenv("PRIVCA_P12_PASSPHRASE", P12_PASS)  # issue's other source

    result = home_cli("renew", NAME, "--out", str(out), "--reuse-key", *_pass(home_cli))
    assert result.exit_code == 0, result.stderr

    new_serial, new_public = _certificate(out / f"{NAME}.crt")
    assert new_serial != old_serial and new_public == old_public
    assert _bundle(p12) == (new_serial, old_public)


@pytest.mark.parametrize("given", ["none", "wrong"])
def test_without_the_p12_passphrase_nothing_is_issued_or_written(
    home_cli: Cli, tmp_path: Path, p12_pass: Path, given: str
) -> None:
    out = tmp_path / "ssl"
    _issue_p12(home_cli, out, p12_pass)
    before, count = tree_snapshot(out), _count(home_cli)
    extra = []
    if given == "wrong":
        extra = ["--p12-passphrase-file", str(write(tmp_path / "wrong.txt", "wrong\n", 0o600))]

    result = home_cli("renew", NAME, "--out", str(out), *extra, *_pass(home_cli))

    assert_user_error(result, "nothing was issued")
    assert f"{NAME}.p12" in result.stderr
    assert tree_snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporaries
    assert _count(home_cli) == count


def test_p12_passphrase_file_without_a_p12_is_refused(
    home_cli: Cli, tmp_path: Path, p12_pass: Path
) -> None:
    out = tmp_path / "ssl"
    result = home_cli("issue", NAME, "--out", str(out), *_pass(home_cli))
    assert result.exit_code == 0, result.stderr
    before, count = tree_snapshot(out), _count(home_cli)

    result = home_cli(
        "renew", NAME, "--out", str(out), "--p12-passphrase-file", str(p12_pass), *_pass(home_cli)
    )

    assert_user_error(result, "--p12-passphrase-file is for a PKCS#12 file")
    assert tree_snapshot(out) == before
    assert _count(home_cli) == count
