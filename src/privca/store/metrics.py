"""The aggregate queries behind `/metrics`, each answered from an index (migration
0006_serve_indexes), so a scrape costs the same with ten certificates or a million."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from privca._time import as_utc
from privca.store.inventory import Store
from privca.store.schema import certificates


@dataclass(frozen=True)
class CertificateCount:
    issuer_id: int
    profile: str
    status: str  # valid | superseded | expired | revoked | pending | failed
    count: int


def certificate_counts(store: Store, now: dt.datetime) -> list[CertificateCount]:
    """Certificates by issuer, profile and status as operators see it (status_at)."""
    c = certificates.c
    live = sa.case((c.not_after > now, 1), else_=0).label("live")
    superseded = sa.case((c.superseded_by.is_(None), 0), else_=1).label("superseded")
    query = sa.select(c.issuer_id, c.profile, c.status, live, superseded, sa.func.count()).group_by(
        c.issuer_id, c.profile, c.status, live, superseded
    )
    with store._connect() as connection:
        rows = connection.execute(query).all()
    totals: dict[tuple[int, str, str], int] = {}
    for issuer_id, profile, stored, is_live, is_superseded, count in rows:
        if stored != "issued":
            status = stored
        elif not is_live:
            status = "expired"
        else:
            status = "superseded" if is_superseded else "valid"
        key = (int(issuer_id), str(profile), status)
        totals[key] = totals.get(key, 0) + int(count)
    return [CertificateCount(i, p, s, n) for (i, p, s), n in sorted(totals.items())]


def soonest_expiry(
    store: Store, issuer_ids: Iterable[int], now: dt.datetime, skip_profiles: Iterable[str] = ()
) -> dict[int, dt.datetime]:
    """Per CA, when its first live (not superseded) certificate expires: one index seek
    per CA, walking its certificates in expiry order."""
    c = certificates.c
    skipped = tuple(skip_profiles)
    found: dict[int, dt.datetime] = {}
    with store._connect() as connection:
        for issuer_id in issuer_ids:
            query = (
                sa.select(c.not_after)
                .where(
                    c.issuer_id == issuer_id,
                    c.status == "issued",
                    c.not_after > now,
                    c.superseded_by.is_(None),
                )
                .order_by(c.not_after)
                .limit(1)
            )
            if skipped:
                query = query.where(c.profile.not_in(skipped))
            value = connection.execute(query).scalar()
            if value is not None:
                found[issuer_id] = as_utc(value)
    return found


__all__ = ["CertificateCount", "certificate_counts", "soonest_expiry"]
