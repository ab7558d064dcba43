"""A CRL that could not be signed is not one: `check` keeps calling the CA's CRL overdue.

`privca crl` reserved the CRL number, moved the CA's nextUpdate and logged `crl-issued`
before signing; a signing that then failed (a wrong passphrase here; a token key that
cannot sign, in the review that found it) silenced `check` and /metrics about a CRL that
was never made.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import Cli


def _crl_items(cli: Cli) -> dict[str, str]:
    result = cli("check", "--json")
    items = json.loads(result.stdout)["items"]
    return {item["label"]: item["severity"] for item in items if item["kind"] == "crl"}


def test_a_failed_crl_signing_leaves_the_crl_overdue(run_cli: Cli) -> None:
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Crl Test", "--passphrase-file", secret).exit_code == 0
    database = run_cli.home / "privca.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE crl_state SET next_update = '2020-01-01 00:00:00.000000'")
        entries = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    overdue = _crl_items(run_cli)
    assert overdue and set(overdue.values()) == {"critical"}, overdue

    # A revoked row with a serial no CRL can carry (21 octets), put there behind
    # privca's back: the CRL fails after its number was reserved.
    with sqlite3.connect(database) as db:
        issuing = db.execute("SELECT id FROM authorities WHERE role = 'issuing'").fetchone()[0]
        db.execute(
            "INSERT INTO certificates (serial, issuer_id, status, profile, names, not_before, "
            "not_after, public_key_sha256, created_at, revoked_at, revocation_reason) VALUES "
            f"(x'{'01' * 21}', {issuing}, 'revoked', 'server', '[]', 0, 4102444800000000, "
            "x'', 0, 0, 'keyCompromise')"
        )
    failed = run_cli("crl", "--passphrase-file", secret)
    assert failed.exit_code == 3, failed.stderr
    assert "run `privca audit verify`" in failed.stderr

    # Still overdue, and the issuing CA, whose first CRL this was, has one due now.
    after = _crl_items(run_cli)
    assert set(after) >= set(overdue) and set(after.values()) == {"critical"}, after
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == entries
    with sqlite3.connect(database) as db:
        db.execute(f"DELETE FROM certificates WHERE serial = x'{'01' * 21}'")
    for extra in ((), ("--root",)):
        done = run_cli("crl", *extra, "--passphrase-file", secret)
        assert done.exit_code == 0, done.stderr
    assert "critical" not in _crl_items(run_cli).values()


def test_a_crl_whose_files_could_not_be_written_leaves_it_overdue(run_cli: Cli) -> None:
    """`privca crl` recorded the CRL as made before writing its files: with crl/ not
    writable it exited 3 and `check` went quiet about a CRL nobody could fetch."""
    import subprocess

    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Crl Files", "--passphrase-file", secret).exit_code == 0
    with sqlite3.connect(run_cli.home / "privca.db") as db:
        db.execute("UPDATE crl_state SET next_update = '2020-01-01 00:00:00.000000'")
    overdue = _crl_items(run_cli)
    crl_dir = run_cli.home / "crl"
    frozen = subprocess.run(["chattr", "+i", str(crl_dir)], capture_output=True, check=False)
    if frozen.returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a supporting file system)")
    try:
        failed = run_cli("crl", "--root", "--passphrase-file", secret)
        assert failed.exit_code == 3, failed.stderr
    finally:
        subprocess.run(["chattr", "-i", str(crl_dir)], check=True)
    assert _crl_items(run_cli) == overdue
