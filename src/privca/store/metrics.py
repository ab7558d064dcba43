"""The aggregate queries behind `/metrics`, each answered from an index (migration
0006_serve_indexes), so a scrape costs the same with ten certificates or a million."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa

from privca._time import as_utc
from privca.store.database import Database
from privca.store.records import CertificateCount
from privca.store.schema import certificates
from privca.store.status import (
    CertificateStatus,
    due_clause,
    status_clause,
    status_column,
)


def certificate_counts(database: Database, now: dt.datetime) -> list[CertificateCount]:
    """Certificates by issuer, profile and status as operators see it (status_at).

    The main query reads only the metrics index; the few certificates whose scheduled
    revocation is due but not yet written are found through their own index and moved
    to `revoked`, so no scrape ever has to visit the table rows."""
    c = certificates.c
    status = status_column(now, scheduled=False).label("status")
    columns = (c.issuer_id, c.profile, status)
    everything = sa.select(*columns, sa.func.count()).group_by(*columns)
    due = everything.where(due_clause(now))
    totals: Counter[tuple[int, str, str]] = Counter()
    with database.read() as connection:
        for issuer_id, profile, base, count in connection.execute(everything).all():
            totals[(int(issuer_id), str(profile), str(base))] += int(count)
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


__all__ = ["certificate_counts", "soonest_expiry"]
