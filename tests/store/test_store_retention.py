"""`tidy` keeps a tombstone of each long-expired certificate: the serial stays taken, a
revoked one stays revoked, the counters never go down, and the rest of the row goes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.errors import InputError
from privca.store import retention
from privca.store.inventory import Intent, Store
from privca.store.schema import certificate_names, certificates
from privca.x509.encoding import serial_hex


@pytest.fixture
def aged(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
) -> dict[str, int]:
    """Certificates that expired 200 days ago (one revoked), 10 days ago, and a live one."""
    long_ago = now - dt.timedelta(days=300)
    [old, old_revoked] = issue_records(
        make_intent("old.corp.internal", days=-200, not_before=long_ago),
        make_intent("old-revoked.corp.internal", days=-200, not_before=long_ago),
    )
    store.revoke(old_revoked, "keyCompromise", now - dt.timedelta(days=250), "ab" * 32)
    [recent] = issue_records(make_intent("recent.corp.internal", days=-10, not_before=long_ago))
    [live] = issue_records(make_intent("live.corp.internal", days=30))
    [pending] = store.reserve([make_intent("pending.corp.internal", days=-200)], now)
    return {"old": old, "old_revoked": old_revoked, "recent": recent, "live": live,
            "pending": pending}  # fmt: skip


def test_dry_run_counts_without_writing(
    store: Store, aged: dict[str, int], now: dt.datetime
) -> None:
    assert store.count_tidy(now - dt.timedelta(days=90)) == 2
    assert store.count_tidy(now) == 3
    record = store.get(aged["old"])
    assert record is not None and record.der is not None


def test_tidy_leaves_tombstones(store: Store, aged: dict[str, int], now: dt.datetime) -> None:
    before = store.certificate_counts(now)
    assert store.tidy(now - dt.timedelta(days=90), now) == 2
    assert store.tidy(now - dt.timedelta(days=90), now) == 0  # idempotent

    for label in ("old", "old_revoked"):
        tombstone = store.get(aged[label])
        assert tombstone is not None
        assert tombstone.der is None and tombstone.names == () and tombstone.subject == ""
        assert tombstone.public_key_sha256 == ""
    revoked = store.get(aged["old_revoked"])
    assert revoked is not None and revoked.status == "revoked"
    assert revoked.revocation_reason == "keyCompromise" and revoked.revoked_at is not None
    # keyCompromise keeps its key barred: blocked_keys is not the inventory.
    assert store.blocked(["ab" * 32]) == {"ab" * 32}

    # The tombstones are gone from lookups, lists and the name index ...
    assert store.find_by_name("old.corp.internal", now) == []
    listed = {r.serial for r in store.find(now=now)}
    assert listed == {aged["recent"], aged["live"]}
    with store.engine.connect() as connection:
        names = connection.execute(sa.select(certificate_names.c.name)).scalars().all()
    assert "old.corp.internal" not in names and "recent.corp.internal" in names
    # ... but still counted: issued_total/revoked_total on /metrics never go down.
    assert store.certificate_counts(now) == before
    pending = store.get(aged["pending"])
    assert pending is not None and pending.status == "pending"  # intents are left alone


def test_a_tidied_serial_is_never_drawn_again(
    store: Store, aged: dict[str, int], make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    store.tidy(now - dt.timedelta(days=90), now)
    draws = iter([aged["old"], aged["old_revoked"], 0x5EED])
    [serial] = store.reserve([make_intent("new.corp.internal")], now, lambda: next(draws))
    assert serial == 0x5EED


def test_crls_never_list_expired_certificates(
    store: Store, aged: dict[str, int], issuer_id: int, now: dt.datetime
) -> None:
    listed = {e.serial for e in store.revoked_entries(issuer_id, now)}
    assert aged["old_revoked"] not in listed  # expired: already gone from the CRL
    store.tidy(now - dt.timedelta(days=90), now)
    assert aged["old_revoked"] not in {e.serial for e in store.revoked_entries(issuer_id, now)}


def test_tidy_works_in_batches(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention, "TIDY_BATCH", 3)
    start = now - dt.timedelta(days=400)
    serials = issue_records(
        *(make_intent(f"b{i}.corp.internal", days=-100 - i, not_before=start) for i in range(8))
    )
    assert store.tidy(now - dt.timedelta(days=90), now) == 8
    with store.engine.connect() as connection:
        tidied = connection.execute(
            sa.select(certificates.c.serial).where(certificates.c.tidied_at.is_not(None))
        ).scalars()
        assert set(tidied) == {serial_hex(s) for s in serials}


def test_tidy_refuses_a_time_in_the_future(store: Store, now: dt.datetime) -> None:
    with pytest.raises(InputError, match="already expired"):
        store.tidy(now + dt.timedelta(days=1), now)
