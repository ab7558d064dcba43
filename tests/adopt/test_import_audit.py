"""What `audit verify` knows of an adopted CA's revocations, even without their files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.adopt.test_import_easyrsa import adopt
from tests.conftest import Cli


def _adopt_without_files(run_cli: Cli, easyrsa_pki: Path) -> str:
    """Adopt the PKI with its revoked certificate's files gone; its serial."""
    for copy in (
        *(easyrsa_pki / "revoked").rglob("*.crt"),
        *(easyrsa_pki / "certs_by_serial").glob("*.pem"),
    ):
        copy.unlink()
    revoked = next(
        row.split("\t")
        for row in (easyrsa_pki / "index.txt").read_text().splitlines()
        if row.startswith("R")
    )
    (easyrsa_pki / "issued" / "cli1.crt").unlink(missing_ok=True)  # moved by revoke
    adopt(run_cli, easyrsa_pki)
    before = run_cli("audit", "verify")
    assert before.exit_code == 0, before.stderr
    return revoked[3].lower().lstrip("0")


def test_a_deleted_revocation_without_its_certificate_file_is_named(
    run_cli: Cli, easyrsa_pki: Path
) -> None:
    """index.txt says R (keyCompromise) for a certificate whose file is gone: privca keeps
    the revocation without a DER, and its CRLs list it. Deleting that row dropped the
    revocation from the next CRL, and the log (whose `imported` entry has no fingerprint
    then) was still called intact."""
    serial = _adopt_without_files(run_cli, easyrsa_pki)
    with sqlite3.connect(run_cli.home / "privca.db") as db:
        gone = db.execute("DELETE FROM certificates WHERE der IS NULL AND status = 'revoked'")
        assert gone.rowcount == 1
    result = run_cli("audit", "verify")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"certificate {serial} " in result.stderr and "is gone" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "change", ["issuer_id = issuer_id + 1000", "profile = 'server'"], ids=["issuer", "profile"]
)
def test_a_revocation_without_its_file_moved_in_the_store_is_named(
    run_cli: Cli, easyrsa_pki: Path, change: str
) -> None:
    """Such a row was checked for its revocation only: its issuer (whose CRL lists it)
    and profile could be changed unseen, though its `imported` entry records them."""
    serial = _adopt_without_files(run_cli, easyrsa_pki)
    with sqlite3.connect(run_cli.home / "privca.db") as db:
        moved = db.execute(f"UPDATE certificates SET {change} WHERE der IS NULL")
        assert moved.rowcount == 1
    result = run_cli("audit", "verify")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"certificate {serial} no longer has the issuer" in result.stderr, result.stderr
