"""The newest CRL a server published for a CA, kept beside its CRL number: the store
keeps the higher number whichever replica publishes last (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from privca.store.inventory import Store

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_store_keeps_the_highest_published_crl(store: Store, issuer_id: int) -> None:
    assert store.publish_crl(issuer_id, 5, b"five", "1|a", NOW) is None  # no CRL state yet
    store.next_crl_number(issuer_id, NOW, NOW + dt.timedelta(days=7))
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
