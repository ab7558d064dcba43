"""EAB keys in the store, on SQLite and PostgreSQL: sealed, bounded under concurrency, and
revoked together with their accounts."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from privca.acme.repository import AccountRow, EabBindingRefused, EabKeyRow
from privca.errors import KeyUnavailable
from privca.keys.sealing import SealingKey
from privca.store.acme import AcmeStore
from privca.store.inventory import Store

SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def acme(store: Store, tmp_path: Path) -> AcmeStore:
    private = tmp_path / "home" / "private"
    private.mkdir(parents=True, mode=0o700)
    return AcmeStore(store.engine, SealingKey(private / "eab.key"))


def _key(kid: str, max_accounts: int = 1) -> EabKeyRow:
    return EabKeyRow(kid, "label", None, dt.datetime.now(dt.UTC), None, 0, max_accounts)


def _account(index: int, eab_kid: str | None) -> AccountRow:
    return AccountRow(
        id=f"acct-{index}",
        thumbprint=f"thumb-{index}",
        jwk="{}",
        status="valid",
        contact=(),
        eab_kid=eab_kid,
        created_at=dt.datetime.now(dt.UTC),
    )


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrent_new_accounts_never_exceed_max_accounts(acme: AcmeStore, limit: int) -> None:
    acme.add_eab_key(_key("kid-race", limit), SECRET)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create(index: int) -> None:
        barrier.wait()
        try:
            acme.add_account(_account(index, "kid-race"))
            results.append("created")
        except EabBindingRefused:
            results.append("refused")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == ["created"] * limit + ["refused"] * (8 - limit)
    key = acme.eab_key("kid-race")
    assert key is not None and key.accounts == limit
    assert len(acme.accounts_of_eab_keys()["kid-race"]) == limit


def test_revoking_a_key_revokes_its_accounts_only(acme: AcmeStore) -> None:
    acme.add_eab_key(_key("kid-a", 2), SECRET)
    acme.add_eab_key(_key("kid-b"), SECRET)
    acme.add_account(_account(1, "kid-a"))
    acme.add_account(_account(2, "kid-a"))
    acme.add_account(_account(3, "kid-b"))
    acme.add_account(_account(4, None))
    assert acme.revoke_eab_key("kid-a", dt.datetime.now(dt.UTC)) == (True, 2)
    assert acme.revoke_eab_key("kid-a", dt.datetime.now(dt.UTC)) == (False, 0)
    statuses = {a.id: a.status for a in acme.accounts()}
    assert statuses == {
        "acct-1": "revoked",
        "acct-2": "revoked",
        "acct-3": "valid",
        "acct-4": "valid",
    }
    with pytest.raises(EabBindingRefused):
        acme.add_account(_account(5, "kid-a"))


def test_secrets_are_sealed_and_bound_to_their_key_id(acme: AcmeStore, store: Store) -> None:
    import sqlalchemy as sa

    acme.add_eab_key(_key("kid-1"), SECRET)
    acme.add_eab_key(_key("kid-2"), SECRET)
    assert acme.eab_secret("kid-1") == SECRET
    assert acme.eab_secret("missing") is None
    with store.engine.begin() as connection:
        rows = dict(
            connection.execute(sa.text("SELECT kid, sealed_hmac_key FROM acme_eab_keys")).all()
        )
        assert SECRET.hex() not in str(rows) and SECRET.decode() not in str(rows)
        # A sealed value moved onto another row does not open there.
        connection.execute(
            sa.text("UPDATE acme_eab_keys SET sealed_hmac_key = :s WHERE kid = 'kid-2'"),
            {"s": rows["kid-1"]},
        )
    with pytest.raises(KeyUnavailable, match="does not open"):
        acme.eab_secret("kid-2")


def test_a_store_without_the_homes_sealing_key_cannot_add_eab_keys(store: Store) -> None:
    with pytest.raises(KeyUnavailable, match="sealing key"):
        AcmeStore(store.engine).add_eab_key(_key("kid-x"), SECRET)
