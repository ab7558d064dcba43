"""The certificates `privca check` and `/metrics` name one by one: those that expire
inside a window and nobody renewed, read lean and counted in SQL.

At a million certificates with 5 % inside a 30-day window that is 50,000 rows, and the
full record of each (CertificateRecord: seven times, names, subject, key hash, through
the compact column types) cost ~20-45 us of CPU apiece: a second or more per `check` or
scrape. What the listings show is four values (serial, first name, issuing CA, notAfter),
so only those columns are read, raw as the driver returns them, and the status is decided
in the WHERE clause instead of row by row.

"Unrenewed" is what `check` lists: signed, not revoked (nor due to be by a scheduled
revocation), never superseded, not tidied; valid while notAfter is ahead, expired after.
It is the rule of store/status.py for VALID and for EXPIRED without a successor, spelled
out here as one clause (tests/test_monitoring_equivalence.py holds it to the record path).

How soon is too soon scales with the certificate's lifetime (`due`): the Python rule and
its SQL clause live side by side here so that `check`'s listing, its counts and its
severities cannot disagree. The scaled windows are never wider than --warn and --crit, so
the reads stay a range of the expiry index within [now, now + warn], filtered by notBefore
(in the same row).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from privca.store.database import Database
from privca.store.schema import certificates
from privca.store.status import StoredStatus
from privca.store.tally import certificate_tally

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The JSON decoder's string scanner (C): what json.loads runs on each string (not in typeshed).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
# Rows fetched per round trip (a server-side cursor on PostgreSQL).
CHUNK = 2000


# Clients renew when a third of the lifetime is left (certbot, lego, Caddy, `privca
# needs-renewal`'s default): past that point renewal is late, a warning; at half of it
# (a sixth) it has been failing for a while, critical. A 7-day certificate always has
# less than --crit (7d) left, so absolute windows alone would keep it critical forever.
WARN_PART = 3
CRIT_PART = 6


def due(left: dt.timedelta, lifetime: dt.timedelta, window: dt.timedelta, part: int) -> bool:
    """Less than min(`window`, `lifetime` / `part`) is left (at most, as check has always
    counted its edges), to the microsecond: part x left <= lifetime, exactly what the SQL
    clause (`_due_clause`) computes, with no rounding of lifetime / part."""
    return left <= window and left * part <= lifetime


def _due_clause(now: dt.datetime, part: int) -> sa.ColumnElement[bool]:
    """`due`'s lifetime part in SQL (the window is the range on notAfter): integers of
    microseconds on SQLite, intervals on PostgreSQL, compared without division."""
    c = certificates.c
    return sa.literal(part) * (c.not_after - now) <= c.not_after - c.not_before


class ExpiringCertificate(NamedTuple):
    """One certificate inside a window, as the listings show it."""

    serial: str  # lowercase hex, as serial_hex writes it
    label: str  # its first name, else its subject (as stored: may be hostile text)
    issuer_id: int
    not_after: dt.datetime
    not_before: dt.datetime  # with not_after, its lifetime (`due`)


def unrenewed_clause(now: dt.datetime, skip_profiles: Iterable[str]) -> sa.ColumnElement[bool]:
    """Signed, not revoked nor due to be, not superseded, not tidied, and of a profile
    that is not skipped (the ones privca renews by itself)."""
    c = certificates.c
    clause = sa.and_(
        c.status == StoredStatus.ISSUED.value,
        c.superseded_by.is_(None),
        c.tidied_at.is_(None),
        sa.or_(c.revoke_after.is_(None), c.revoke_after > now),
    )
    skipped = tuple(skip_profiles)
    return sa.and_(clause, c.profile.not_in(skipped)) if skipped else clause


def _range(now: dt.datetime, since: dt.datetime | None, until: dt.datetime | None) -> Any:
    """notAfter in [since, until], or in (now, until] (live only) when `since` is None."""
    c = certificates.c
    lower = c.not_after > now if since is None else c.not_after >= since
    return lower if until is None else sa.and_(lower, c.not_after <= until)


def _raw(column: Any) -> Any:
    # The driver's own value: no per-row conversion by the column type (store/columns.py).
    return sa.type_coerce(column, sa.types.NullType())


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, int):  # SQLite: microseconds since the epoch (store/columns.py)
        return _EPOCH + dt.timedelta(microseconds=value)
    if isinstance(value, str):  # SQLite text from before migration 0011 (never on a store)
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    moment: dt.datetime = value  # PostgreSQL: a timestamptz
    return moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _label(names: str, subject: str | None) -> str:
    """The first name of the JSON list `names`, else the subject. The list is written by
    json.dumps (store/names.py), so it starts with '["' when it has a name: the decoder's
    own string scanner reads that first string, escapes and all, without the rest."""
    if names.startswith('["'):
        return _scanstring(names, 2)[0]
    listed = json.loads(names)
    return str(listed[0]) if listed else (subject or "")


def expiring(
    database: Database,
    now: dt.datetime,
    until: dt.datetime | None,
    *,
    since: dt.datetime | None = None,
    skip_profiles: Iterable[str] = (),
    limit: int | None = None,
    part: int | None = None,
) -> Iterator[ExpiringCertificate]:
    """Unrenewed certificates with notAfter in [since, until] (in (now, until] when
    `since` is None: the valid ones; `until` None: no upper bound), soonest first, then
    by serial (the order of InventoryView.find), at most `limit`; read CHUNK at a time
    from the expiry index. With `part`, of the live ones only those due by their
    lifetime (`due`: part x time left <= lifetime); the expired ones all."""
    c = certificates.c
    query = (
        sa.select(
            _raw(c.serial),
            _raw(c.names),
            _raw(c.subject),
            c.issuer_id,
            _raw(c.not_after),
            _raw(c.not_before),
        )
        .where(_range(now, since, until), unrenewed_clause(now, skip_profiles))
        .order_by(c.not_after, c.serial)
    )
    if part is not None:
        query = query.where(sa.or_(c.not_after <= now, _due_clause(now, part)))
    if limit is not None:
        query = query.limit(limit)
    with database.read() as connection:
        result = connection.execution_options(stream_results=True).execute(query)
        for rows in result.partitions(CHUNK):
            for serial, names, subject, issuer_id, not_after, not_before in rows:
                yield ExpiringCertificate(
                    bytes(serial).hex().lstrip("0") or "0",
                    _label(names, subject),
                    issuer_id,
                    _instant(not_after),
                    _instant(not_before),
                )


def _buckets(bounds: Sequence[dt.datetime]) -> list[Any]:
    c = certificates.c
    return [sa.func.sum(sa.case((c.not_after <= bound, 1), else_=0)) for bound in bounds]


def _live_pairs(connection: sa.Connection, skipped: tuple[str, ...]) -> list[tuple[int, str]]:
    """SQLite: the (issuer id, profile) pairs that have certificates, from the tally."""
    t = certificate_tally.c
    pairs = sa.select(t.issuer_id, t.profile).where(t.n != 0).distinct()
    return [(int(i), str(p)) for i, p in connection.execute(pairs) if p not in skipped]


def _live_counts(
    connection: sa.Connection,
    now: dt.datetime,
    bounds: Sequence[dt.datetime],
    skipped: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """The valid certificates in (now, last bound] on SQLite, counted in the covering
    metrics index (issuer, profile, status, notAfter, superseded_by): a seek per pair of
    the tally, no row read. A live row is never tidied (tidy takes expired ones only);
    the few whose scheduled revocation is due are counted apart and taken off."""
    c = certificates.c
    pairs = _live_pairs(connection, skipped)
    if not pairs:
        return []
    window = sa.and_(
        c.status == StoredStatus.ISSUED.value,
        c.superseded_by.is_(None),
        c.not_after > now,
        c.not_after <= bounds[-1],
    )
    counted = (
        sa.select(c.issuer_id, c.profile, *_buckets(bounds))
        .where(
            c.issuer_id.in_(sorted({i for i, _ in pairs})),
            c.profile.in_(sorted({p for _, p in pairs})),
            window,
        )
        .group_by(c.issuer_id, c.profile)
    )
    due = (
        sa.select(c.issuer_id, c.profile, *_buckets(bounds))
        .where(c.revoke_after.is_not(None), c.revoke_after <= now, window)
        .group_by(c.issuer_id, c.profile)
    )
    totals = {(r[0], r[1]): [int(n or 0) for n in r[2:]] for r in connection.execute(counted)}
    for issuer_id, profile, *upto in connection.execute(due):
        if (issuer_id, profile) in totals:
            found = totals[(issuer_id, profile)]
            totals[(issuer_id, profile)] = [
                a - int(b or 0) for a, b in zip(found, upto, strict=True)
            ]
    return [(i, p, *n) for (i, p), n in totals.items() if p not in skipped]


def expiry_counts(
    database: Database,
    now: dt.datetime,
    bounds: Sequence[dt.datetime],
    *,
    since: dt.datetime | None = None,
    skip_profiles: Iterable[str] = (),
) -> dict[tuple[int, str], list[int]]:
    """Unrenewed certificates per (issuer id, profile), by notAfter: for ascending
    `bounds` b0 < b1 < ..., how many fall in [since, b0] (in (now, b0] when `since` is
    None), (b0, b1], (b1, b2], ... One grouped count over the window's part of the
    expiry index (of the covering metrics index for valid ones on SQLite); nothing is
    listed."""
    c = certificates.c
    if not bounds:
        return {}
    skipped = tuple(skip_profiles)
    query = (
        sa.select(c.issuer_id, c.profile, *_buckets(bounds))
        .where(_range(now, since, bounds[-1]), unrenewed_clause(now, skipped))
        .group_by(c.issuer_id, c.profile)
    )
    counts: dict[tuple[int, str], list[int]] = {}
    with database.read() as connection:
        if since is None and connection.dialect.name == "sqlite":
            rows = _live_counts(connection, now, bounds, skipped)
        else:
            rows = list(connection.execute(query))
        for issuer_id, profile, *upto in rows:
            totals = [int(n or 0) for n in upto]
            counts[(int(issuer_id), str(profile))] = [
                n - (totals[i - 1] if i else 0) for i, n in enumerate(totals)
            ]
    return counts


class SeverityCounts(NamedTuple):
    """How many unrenewed certificates `check` flags: expired (in [since, now]), live and
    critical, live and warning (not critical)."""

    expired: int
    critical: int
    warning: int


def severity_counts(
    database: Database,
    now: dt.datetime,
    warn: dt.timedelta,
    crit: dt.timedelta,
    *,
    since: dt.datetime,
    skip_profiles: Iterable[str] = (),
) -> SeverityCounts:
    """`check`'s verdicts counted in SQL, by the rule of `due`: one count over the
    expiry index's range [since, now + warn], each row filtered by its lifetime."""
    c = certificates.c
    expired = c.not_after <= now
    critical = sa.and_(c.not_after > now, c.not_after <= now + crit, _due_clause(now, CRIT_PART))
    query = sa.select(
        sa.func.sum(sa.case((expired, 1), else_=0)),
        sa.func.sum(sa.case((critical, 1), else_=0)),
        sa.func.count(),
    ).where(
        _range(now, since, now + warn),
        unrenewed_clause(now, skip_profiles),
        sa.or_(expired, _due_clause(now, WARN_PART)),
    )
    with database.read() as connection:
        row = connection.execute(query).one()
    gone, worst, flagged = (int(n or 0) for n in row)
    return SeverityCounts(gone, worst, flagged - gone - worst)


__all__ = [
    "CHUNK",
    "CRIT_PART",
    "WARN_PART",
    "ExpiringCertificate",
    "SeverityCounts",
    "due",
    "expiring",
    "expiry_counts",
    "severity_counts",
    "unrenewed_clause",
]
