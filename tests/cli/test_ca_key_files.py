"""No CA key file without the record that names it, and no new CA recorded whose
certs/issuing.crt and chain.pem could not be written.

`rotate issuing` and `issuer create` kept the new key in private/ before writing the
store; when the write failed (a locked database), the key stayed with no row naming it.
`rotate issuing` with an unwritable certs/ recorded the new CA and then exited 3 with
certs/issuing.crt and chain.pem naming the old one (and a retry made yet another CA)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority
from privca.errors import StoreUnavailable
from privca.issuers import NewIssuer
from tests.conftest import Cli, assert_user_error


@pytest.fixture
def locked_ca(
    make_ca: Callable[..., CertificateAuthority], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CertificateAuthority]:
    """A CA whose database another connection holds BEGIN EXCLUSIVE on (as the review did
    with sqlite3), with a short busy timeout so the write gives up quickly."""
    from privca.store import database as store_database

    monkeypatch.setattr(store_database, "SQLITE_BUSY_TIMEOUT_MS", 300)
    ca = make_ca()
    holder = sqlite3.connect(ca.home.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield ca
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _keys(ca: CertificateAuthority) -> set[str]:
    return {p.name for p in ca.home.private.iterdir() if p.is_file()}


def test_rotate_issuing_leaves_no_key_when_the_record_fails(
    locked_ca: CertificateAuthority,
) -> None:
    before = _keys(locked_ca)
    with pytest.raises(StoreUnavailable, match="locked"):
        locked_ca.rotate_issuing()
    assert _keys(locked_ca) == before


def test_issuer_create_leaves_no_key_when_the_record_fails(
    locked_ca: CertificateAuthority,
) -> None:
    before = _keys(locked_ca)
    with pytest.raises(StoreUnavailable, match="locked"):
        locked_ca.create_issuer(NewIssuer("team-a", permitted=["a.example"]))
    assert _keys(locked_ca) == before


@pytest.fixture
def immutable_certs(home_cli: Cli) -> Iterator[Path]:
    """certs/ made immutable (chattr +i, as the review did: root only)."""
    certs = home_cli.home / "certs"
    made = subprocess.run(["chattr", "+i", str(certs)], capture_output=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {made.stderr.decode(errors='replace')}")
    try:
        yield certs
    finally:
        subprocess.run(["chattr", "-i", str(certs)], capture_output=True, timeout=30)


def test_rotate_issuing_with_an_unwritable_certs_records_nothing(
    home_cli: Cli, immutable_certs: Path
) -> None:
    before = {p.name: p.read_bytes() for p in immutable_certs.iterdir()}
    private = home_cli.home / "private"
    keys = {p.name for p in private.iterdir()}
    listed = home_cli("issuer", "list", "--json")
    assert listed.exit_code == 0, listed.stderr

    result = home_cli("rotate", "issuing", "--passphrase-file", str(home_cli.passphrase_file))
    assert_user_error(result, "cannot write", code=3)
    assert {p.name: p.read_bytes() for p in immutable_certs.iterdir()} == before
    assert {p.name for p in private.iterdir()} == keys
    # The store still names the same issuing CA: no new one was recorded.
    again = home_cli("issuer", "list", "--json")
    assert again.exit_code == 0 and again.stdout == listed.stdout
