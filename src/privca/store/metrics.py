"""The aggregate queries behind `/metrics` and `privca check`: counts from the tally the
database keeps (SQLite, store/tally.py) or from a covering index (PostgreSQL), the
soonest expiry from an index seek per CA."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa

from privca._time import as_utc
from privca.errors import PrivcaError
from privca.store.database import Database
from privca.store.records import CertificateCount, ValidLeaves
from privca.store.schema import certificates
from privca.store.status import (
    CertificateStatus,
    StoredStatus,
    due_clause,
    status_at,
    status_clause,
    status_column,
)
from privca.store.tally import DAY, certificate_tally

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _tallied(connection: sa.Connection, now: dt.datetime) -> Counter[tuple[int, str, str]]:
    """The counts from certificate_tally (SQLite, store/tally.py), except today's expiries,
    which are counted from the table: a range of one day in the expiry index.

    Every row of a tally group expires on the same day, before or after today, so the
    group's status is that of any one of its rows: status_at decides, with the start of
    that day standing in for every row's notAfter."""
    today = (now - _EPOCH) // _MICROSECOND // DAY
    t = certificate_tally.c
    totals: Counter[tuple[int, str, str]] = Counter()
    groups = sa.select(t.issuer_id, t.profile, t.status, t.superseded, t.expiry_day, t.n).where(
        t.expiry_day != today, t.n != 0
    )
    for issuer_id, profile, stored, superseded, day, n in connection.execute(groups):
        status = status_at(
            stored=str(stored),
            not_after=_EPOCH + dt.timedelta(days=int(day)),
            superseded_by=1 if superseded else None,
            revoke_after=None,
            now=now,
        )
        totals[(int(issuer_id), str(profile), status.value)] += int(n)
    c = certificates.c
    start = _EPOCH + dt.timedelta(days=today)
    status_of = status_column(now, scheduled=False).label("status")
    todays = (
        sa.select(c.issuer_id, c.profile, status_of, sa.func.count())
        .where(c.not_after >= start, c.not_after < start + dt.timedelta(days=1))
        .group_by(c.issuer_id, c.profile, status_of)
    )
    for issuer_id, profile, status, n in connection.execute(todays):
        totals[(int(issuer_id), str(profile), str(status))] += int(n)
    return totals


def _counted(connection: sa.Connection, now: dt.datetime) -> Counter[tuple[int, str, str]]:
    """The counts from a walk of the covering metrics index (PostgreSQL)."""
    c = certificates.c
    status = status_column(now, scheduled=False).label("status")
    columns = (c.issuer_id, c.profile, status)
    totals: Counter[tuple[int, str, str]] = Counter()
    everything = sa.select(*columns, sa.func.count()).group_by(*columns)
    for issuer_id, profile, base, count in connection.execute(everything).all():
        totals[(int(issuer_id), str(profile), str(base))] += int(count)
    return totals


def certificate_counts(database: Database, now: dt.datetime) -> list[CertificateCount]:
    """Certificates by issuer, profile and status as operators see it (status_at).

    Without the scheduled revocations that are due but not yet written: those few are
    found through their own index and moved to `revoked`, so no scrape ever has to visit
    the table rows."""
    c = certificates.c
    status = status_column(now, scheduled=False).label("status")
    columns = (c.issuer_id, c.profile, status)
    due = sa.select(*columns, sa.func.count()).where(due_clause(now)).group_by(*columns)
    with database.read() as connection:
        if connection.dialect.name == "sqlite":
            totals = _tallied(connection, now)
        else:
            totals = _counted(connection, now)
        for issuer_id, profile, base, count in connection.execute(due).all():
            totals[(int(issuer_id), str(profile), str(base))] -= int(count)
            totals[(int(issuer_id), str(profile), CertificateStatus.REVOKED.value)] += int(count)
    return [
        CertificateCount(i, p, CertificateStatus(s), n)
        for (i, p, s), n in sorted(totals.items())
        if n > 0
    ]


def soonest_expiry(
    database: Database,
    issuer_ids: Iterable[int],
    now: dt.datetime,
    skip_profiles: Iterable[str] = (),
) -> dict[int, dt.datetime]:
    """Per CA, when its first valid certificate expires: one index seek per CA, walking
    its certificates in expiry order."""
    c = certificates.c
    skipped = tuple(skip_profiles)
    found: dict[int, dt.datetime] = {}
    with database.read() as connection:
        for issuer_id in issuer_ids:
            query = (
                sa.select(c.not_after)
                .where(c.issuer_id == issuer_id, status_clause(CertificateStatus.VALID, now))
                .order_by(c.not_after)
                .limit(1)
            )
            if skipped:
                query = query.where(c.profile.not_in(skipped))
            value = connection.execute(query).scalar()
            if value is not None:
                found[issuer_id] = as_utc(value)
    return found


def valid_by_issuer(
    database: Database,
    issuer_ids: Iterable[int],
    now: dt.datetime,
    skip_profiles: Iterable[str] = (),
) -> dict[int, ValidLeaves]:
    """Per CA of `issuer_ids` that has any, its valid certificates: what `privca list
    --status valid` lists (signed, not tidied, status_clause VALID), counted in SQL. One
    statement, an index search per CA (issuer_id, status, not_after): a root rollover over
    a million certificates asks this instead of reading each one."""
    ids = sorted(set(issuer_ids))
    if not ids:
        return {}
    c = certificates.c
    # The terms of InventoryView.stream for status="valid", so that "valid" here is what a
    # listing says it is, and the expiry again (VALID implies it) for the index range.
    query = (
        sa.select(c.issuer_id, sa.func.count(), sa.func.max(c.not_after))
        .where(
            c.issuer_id.in_(ids),
            c.tidied_at.is_(None),
            c.status.in_((StoredStatus.ISSUED.value, StoredStatus.REVOKED.value)),
            status_clause(CertificateStatus.VALID, now),
            c.not_after > now,
        )
        .group_by(c.issuer_id)
    )
    skipped = tuple(skip_profiles)
    if skipped:
        query = query.where(c.profile.not_in(skipped))
    with database.read() as connection:
        rows = connection.execute(query).all()
    return {int(i): ValidLeaves(int(n), as_utc(last)) for i, n, last in rows if n}


def write_position(database: Database) -> str | None:
    """PostgreSQL's WAL insert position: every write moves it, before the write can be
    seen. A "has anything changed?" marker for caches on stores without SQLite's
    data_version; None on SQLite, or when the server will not say (then cache nothing)."""
    if database.engine.dialect.name != "postgresql":
        return None
    try:
        with database.read() as connection:
            position = connection.execute(sa.text("SELECT pg_current_wal_insert_lsn()")).scalar()
    except (PrivcaError, sa.exc.DBAPIError):
        return None
    return None if position is None else str(position)


__all__ = [
    "certificate_counts",
    "soonest_expiry",
    "valid_by_issuer",
    "write_position",
]
