"""What migration 0013_crl_published keeps: the newest CRL a server published for a CA,
beside its CRL number (the store keeps the higher number whichever replica publishes
last; SQLite and PostgreSQL), and SQLite's revocation counter (which a CA's revocation
moves too: migration 0016)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from privca.store.inventory import Intent, Store

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_store_keeps_the_highest_published_crl(store: Store, issuer_id: int) -> None:
    assert store.publish_crl(issuer_id, 5, b"five", "1|a", NOW) is None  # no CRL state yet
    store.next_crl_number(issuer_id, NOW)
    assert store.published_crl(issuer_id) is None
    assert store.published_crl_numbers() == {}

    kept = store.publish_crl(issuer_id, 5, b"five", "1|a", NOW)
    assert kept is not None and (kept.number, kept.der, kept.basis) == (5, b"five", "1|a")
    # A replica that signed an older number publishes after: the newer one stays.
    kept = store.publish_crl(issuer_id, 3, b"three", "0|None", NOW)
    assert kept is not None and (kept.number, kept.der) == (5, b"five")
    kept = store.publish_crl(issuer_id, 8, b"eight", "2|b", NOW)
    assert kept is not None and (kept.number, kept.der, kept.basis) == (8, b"eight", "2|b")
    assert store.published_crl_numbers() == {issuer_id: 8}
    stored = store.published_crl(issuer_id)
    assert stored is not None and stored.der == b"eight"


def test_the_sqlite_revocation_clock_moves_with_revocations_only(
    store: Store,
    backend: str,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
) -> None:
    clock = store.revocation_clock()
    if backend != "sqlite":
        assert clock is None  # replicas poll instead (server/watch.py)
        return
    assert clock is not None
    try:
        start = clock.value()
        [first, second] = issue_records(make_intent("a.example"), make_intent("b.example"))
        assert clock.value() == start  # issuing (pending -> issued) revokes nothing
        store.schedule_revocation(first, NOW + dt.timedelta(days=1), NOW)
        assert clock.value() == start
        store.revoke(first, "superseded", NOW, None)
        after_revoke = clock.value()
        assert after_revoke is not None and start is not None and after_revoke > start
        store.revoke(first, "keyCompromise", NOW, None)  # the reason changes
        after_reason = clock.value()
        assert after_reason is not None and after_reason > after_revoke
        store.revoke(second, None, NOW, None)
        assert (clock.value() or 0) > after_reason
    finally:
        clock.close()


def test_an_issuing_ca_revocation_moves_the_clock_and_is_read_with_the_fingerprints(
    store: Store, backend: str, issuer_id: int
) -> None:
    """Migration 0016: a server's OCSP cache hits rely on the counter alone while it stands
    still, so a CA revocation by another process must move it too; and the CA's revocation
    is read with the fingerprints that change with it (what OCSP answers are filed under)."""
    from privca.store.records import Revocation

    before, revoked = store.revocation_state()
    assert revoked == {}
    clock = store.revocation_clock()
    start = clock.value() if clock is not None else None
    try:
        store.revoke_authority(issuer_id, "caCompromise", NOW)
        if backend == "sqlite":
            assert clock is not None and start is not None
            assert (clock.value() or 0) > start
    finally:
        if clock is not None:
            clock.close()
    after, revoked = store.revocation_state()
    assert revoked == {issuer_id: Revocation(NOW, "caCompromise")}
    assert after[issuer_id] != before[issuer_id]
    assert after == store.revocation_fingerprints()
