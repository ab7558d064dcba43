"""A certificate signed with the CA key behind privca's back (the real `openssl x509
-req` with the decrypted issuing key): `privca verify` and `privca scan` call it CRITICAL;
`privca import` puts it back, once, with an audit entry; another CA's is refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, assert_user_error, openssl
from tests.tls_server import serve_tls

OUTSIDE = "CRITICAL: issued outside privca's records"


@pytest.fixture
def rogue(run_cli: Cli, audited_home: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(certificate with its chain, key) for rogue.corp.internal, signed with the issuing
    CA's key by openssl, so the inventory and the audit log never saw it."""
    work = tmp_path / "rogue"
    work.mkdir()
    ca_key = work / "issuing-clear.pem"
    run = openssl(
        "pkey", "-in", str(audited_home / "private" / "issuing.key"),
        "-passin", f"file:{run_cli.passphrase_file}", "-out", str(ca_key),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    key, csr = work / "rogue.key", work / "rogue.csr"
    run = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-subj", "/CN=rogue.corp.internal", "-out", str(csr),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    extensions = work / "ext.cnf"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:rogue.corp.internal\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    leaf = work / "rogue.crt"
    run = openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(audited_home / "certs" / "issuing.crt"),
        "-CAkey", str(ca_key), "-set_serial", "0x5eed0000000000000000000000000001",
        "-days", "30", "-extfile", str(extensions), "-out", str(leaf),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    chain = work / "rogue-chain.pem"
    chain.write_bytes(leaf.read_bytes() + (audited_home / "certs" / "issuing.crt").read_bytes())
    return chain, key


def _audit_entries(home: Path) -> int:
    with sqlite3.connect(home / "privca.db") as connection:
        return int(connection.execute("SELECT count(*) FROM audit_log").fetchone()[0])


def test_verify_calls_it_critical(run_cli: Cli, rogue: tuple[Path, Path]) -> None:
    chain, _key = rogue
    result = run_cli("verify", str(chain), "--json")
    assert result.exit_code == 1
    assert any(OUTSIDE in p for p in json.loads(result.stdout)["problems"])


def test_scan_calls_it_critical(run_cli: Cli, rogue: tuple[Path, Path], tmp_path: Path) -> None:
    chain, key = rogue
    with serve_tls(chain.read_bytes(), key.read_bytes(), tmp_path / "served") as port:
        result = run_cli("scan", f"127.0.0.1:{port}", "--name", "rogue.corp.internal", "--json")
    assert result.exit_code == 1, result.output
    [found] = json.loads(result.stdout)
    assert any(OUTSIDE in f for f in found["findings"]), found


def test_import_puts_it_back_once(
    run_cli: Cli, audited_home: Path, rogue: tuple[Path, Path]
) -> None:
    chain, _key = rogue
    first = run_cli("import", str(chain), "--json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout) == {
        "imported": ["5eed0000000000000000000000000001"],
        "already": [],
    }
    entries = _audit_entries(audited_home)
    again = run_cli("import", str(chain), "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["already"] == ["5eed0000000000000000000000000001"]
    assert _audit_entries(audited_home) == entries  # idempotent: nothing appended

    assert run_cli("verify", str(chain)).exit_code == 0
    log = json.loads(
        run_cli("audit", "log", "--serial", "5eed0000000000000000000000000001", "--json").stdout
    )
    assert [e["action"] for e in log] == ["imported"]
    assert log[0]["detail"]["names"] == ["rogue.corp.internal"]
    assert run_cli("audit", "verify").exit_code == 0


def test_import_from_a_scan(
    run_cli: Cli, audited_home: Path, rogue: tuple[Path, Path], tmp_path: Path
) -> None:
    chain, key = rogue
    with serve_tls(chain.read_bytes(), key.read_bytes(), tmp_path / "served") as port:
        result = run_cli("import", "--from-scan", f"127.0.0.1:{port}", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == ["5eed0000000000000000000000000001"]


def test_another_cas_certificate_is_refused(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert run_cli("init", "--name", "Other CA", "--no-passphrase", home=other).exit_code == 0
    out = tmp_path / "other-out"
    assert run_cli("issue", "x.corp.internal", "--out", str(out), home=other).exit_code == 0
    entries = _audit_entries(audited_home)
    result = run_cli("import", str(out / "x.corp.internal.crt"))
    assert_user_error(result, "is not signed by this CA's keys")
    assert _audit_entries(audited_home) == entries


def test_import_needs_something(run_cli: Cli, audited_home: Path) -> None:
    assert_user_error(run_cli("import", "certificates"), "nothing to import")
