"""Certificate status has one owner (store/status.py): the in-memory rule and the SQL
clause give every record the same status, on SQLite and PostgreSQL, and reading a
certificate whose scheduled revocation is due never writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.store.inventory import Intent, Store
from privca.store.schema import audit_log, certificates
from privca.store.status import (
    LISTED_STATUSES,
    CertificateStatus,
    status_at,
)
from privca.x509.encoding import serial_hex

DAY = dt.timedelta(days=1)
S = CertificateStatus

# (id, stored status, days to notAfter, superseded, days to a scheduled revocation, status)
RULE = [
    ("valid", "issued", 30, False, None, S.VALID),
    ("superseded", "issued", 30, True, None, S.SUPERSEDED),
    ("expired", "issued", -1, False, None, S.EXPIRED),
    ("expired-and-renewed", "issued", -1, True, None, S.EXPIRED),
    ("revoked", "revoked", 30, False, None, S.REVOKED),
    ("revoked-and-expired", "revoked", -1, False, None, S.REVOKED),
    ("scheduled-not-due", "issued", 30, True, 1, S.SUPERSEDED),
    ("scheduled-due", "issued", 30, True, -1, S.REVOKED),
    ("scheduled-due-expired", "issued", -1, True, -2, S.REVOKED),
    ("pending", "pending", 30, False, None, S.PENDING),
    ("failed", "failed", 30, False, None, S.FAILED),
]


@pytest.mark.parametrize(
    ("stored", "days", "superseded", "revoke_in", "expected"),
    [row[1:] for row in RULE],
    ids=[row[0] for row in RULE],
)
def test_the_in_memory_rule(
    stored: str, days: int, superseded: bool, revoke_in: int | None, expected: S
) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert (
        status_at(
            stored=stored,
            not_after=now + days * DAY,
            superseded_by=1 if superseded else None,
            revoke_after=now + revoke_in * DAY if revoke_in is not None else None,
            now=now,
        )
        is expected
    )


def _rows_of_every_kind(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> dict[int, S]:
    """One record per RULE row, written straight into the table; serial -> expected."""
    intents = [make_intent(f"{row[0]}.corp.internal", days=30) for row in RULE]
    serials = store.reserve(intents, now - 3 * DAY)
    expected: dict[int, S] = {}
    with store.engine.begin() as connection:
        for serial, (_id, stored, days, superseded, revoke_in, status) in zip(
            serials, RULE, strict=True
        ):
            connection.execute(
                certificates.update()
                .where(certificates.c.serial == serial_hex(serial))
                .values(
                    status=stored,
                    der=None if stored in ("pending", "failed") else b"der",
                    not_after=now + days * DAY,
                    superseded_by=serial_hex(serials[0]) if superseded else None,
                    revoke_after=now + revoke_in * DAY if revoke_in is not None else None,
                    revoked_at=now - DAY if stored == "revoked" else None,
                    revocation_reason="unspecified" if stored == "revoked" else None,
                )
            )
            expected[serial] = status
    return expected


def test_the_sql_clause_agrees_with_the_rule(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    expected = _rows_of_every_kind(store, make_intent, now)
    every = store.find(now=now, include_unsigned=True)
    assert {r.serial: r.status_at(now) for r in every} == expected
    for status in LISTED_STATUSES:
        found = {r.serial for r in store.find(status=status, now=now)}
        assert found == {s for s, e in expected.items() if e is status}, status


def test_counts_and_crl_entries_read_a_due_revocation_as_done(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime, issuer_id: int
) -> None:
    expected = _rows_of_every_kind(store, make_intent, now)
    counted = {(c.status, c.count) for c in store.certificate_counts(now)}
    tally: dict[S, int] = {}
    for status in expected.values():
        tally[status] = tally.get(status, 0) + 1
    assert counted == set(tally.items())
    listed = {e.serial: (e.revoked_at, e.reason) for e in store.revoked_entries(issuer_id, now)}
    due = next(s for s, (row) in zip(expected, RULE, strict=True) if row[0] == "scheduled-due")
    assert listed[due] == (now - DAY, "superseded")  # dated when it was due
    live_revoked = {
        s for s, row in zip(expected, RULE, strict=True) if row[5] is S.REVOKED and row[2] > 0
    }
    assert set(listed) == live_revoked  # expired ones leave the CRL


def test_reading_never_applies_a_scheduled_revocation(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime, issuer_id: int
) -> None:
    """Only `privca crl` and the server's scheduler write it (apply_due_revocations)."""
    _rows_of_every_kind(store, make_intent, now)

    def table() -> list[tuple[object, ...]]:
        with store.engine.connect() as connection:
            rows = connection.execute(sa.select(certificates).order_by(certificates.c.serial))
            written = connection.execute(sa.select(sa.func.count()).select_from(audit_log))
            return [tuple(r) for r in rows] + [(written.scalar(),)]

    before = table()
    store.find(now=now)
    store.find(status="revoked", now=now)
    store.certificate_counts(now)
    store.revoked_entries(issuer_id, now)
    store.soonest_expiry([issuer_id], now)
    for serial in [r.serial for r in store.find(now=now, include_unsigned=True)]:
        store.get(serial)
    assert table() == before
    assert len(store.apply_due_revocations(now)) == 2  # the writer still finds them
    assert table() != before
