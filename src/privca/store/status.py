"""Certificate status: the one owner of "is this certificate valid, and if not, why".

Two views of one rule, side by side so they cannot drift apart: `status_at` decides for a
record in memory, `status_clause` says the same in SQL for queries over the inventory.

A revocation scheduled by `privca renew --revoke-old-after` counts as done from the
moment it is due, whether or not anything has written it yet: reads never write. Only
`privca crl` and the server's scheduler carry it out in the store (`Store.apply_due_revocations`),
dated at the scheduled time, so the written record says what reads already said.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa

from privca.errors import InputError
from privca.store.schema import certificates


class StoredStatus(StrEnum):
    """What the `status` column holds: the life of a record, not what operators see."""

    PENDING = "pending"  # the intent is recorded; the CA key has not signed yet
    ISSUED = "issued"  # signed and recorded
    FAILED = "failed"  # signing failed; the serial is never reused
    REVOKED = "revoked"


class CertificateStatus(StrEnum):
    """A certificate's status as operators see it (list, show, check, metrics, ACME)."""

    VALID = "valid"
    SUPERSEDED = "superseded"  # renewed; the old one has not expired yet
    EXPIRED = "expired"
    REVOKED = "revoked"
    PENDING = "pending"
    FAILED = "failed"


# The statuses `privca list --status` filters on (pending and failed are never listed).
LISTED_STATUSES = (
    CertificateStatus.VALID,
    CertificateStatus.SUPERSEDED,
    CertificateStatus.REVOKED,
    CertificateStatus.EXPIRED,
)
# The reason of a revocation that was scheduled (renew's grace period).
SCHEDULED_REASON = "superseded"


def is_due(stored: str, revoke_after: dt.datetime | None, now: dt.datetime) -> bool:
    """A scheduled revocation whose time has come on a certificate not yet revoked."""
    return stored == StoredStatus.ISSUED and revoke_after is not None and revoke_after <= now


def status_at(
    *,
    stored: str,
    not_after: dt.datetime,
    superseded_by: int | None,
    revoke_after: dt.datetime | None,
    now: dt.datetime,
) -> CertificateStatus:
    """The in-memory rule (`status_clause` is the same rule in SQL)."""
    if stored == StoredStatus.REVOKED or is_due(stored, revoke_after, now):
        return CertificateStatus.REVOKED
    if stored in (StoredStatus.PENDING, StoredStatus.FAILED):
        return CertificateStatus(stored)
    if not_after <= now:
        return CertificateStatus.EXPIRED
    return CertificateStatus.SUPERSEDED if superseded_by is not None else CertificateStatus.VALID


def parse_listed(text: str) -> CertificateStatus:
    """A status a listing may filter on, or InputError naming the ones it may."""
    try:
        status = CertificateStatus(text)
    except ValueError:
        status = None
    if status not in LISTED_STATUSES:
        names = ", ".join(LISTED_STATUSES)
        raise InputError(
            f"status '{text}' is not one of {names}",
            "use --status " + "|".join(LISTED_STATUSES),
        )
    return CertificateStatus(text)


# the same rule in SQL ---------------------------------------------------------------------


def due_clause(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Rows whose scheduled revocation is due but not yet written (see `is_due`)."""
    c = certificates.c
    return sa.and_(
        c.status == StoredStatus.ISSUED.value, c.revoke_after.is_not(None), c.revoke_after <= now
    )


def _not_due(now: dt.datetime) -> sa.ColumnElement[bool]:
    c = certificates.c
    return sa.or_(c.revoke_after.is_(None), c.revoke_after > now)


def live_clause(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Signed, not revoked (nor due to be), not expired: valid or superseded."""
    c = certificates.c
    return sa.and_(c.status == StoredStatus.ISSUED.value, c.not_after > now, _not_due(now))


def status_clause(status: CertificateStatus, now: dt.datetime) -> sa.ColumnElement[bool]:
    """The rows that `status_at` gives `status` at `now` (the in-memory rule above)."""
    c = certificates.c
    if status is CertificateStatus.REVOKED:
        return sa.or_(c.status == StoredStatus.REVOKED.value, due_clause(now))
    if status is CertificateStatus.EXPIRED:
        return sa.and_(c.status == StoredStatus.ISSUED.value, c.not_after <= now, _not_due(now))
    if status is CertificateStatus.VALID:
        return sa.and_(live_clause(now), c.superseded_by.is_(None))
    if status is CertificateStatus.SUPERSEDED:
        return sa.and_(live_clause(now), c.superseded_by.is_not(None))
    return c.status == status.value


def status_column(now: dt.datetime, *, scheduled: bool = True) -> sa.ColumnElement[str]:
    """`status_at` as a column, for grouping. With `scheduled=False` a due scheduled
    revocation is left out (it reads no column outside the metrics index); the caller
    then counts `due_clause` rows apart (see store/metrics.py)."""
    c = certificates.c
    cases: list[tuple[sa.ColumnElement[bool], str]] = []
    if scheduled:
        cases.append((due_clause(now), CertificateStatus.REVOKED.value))
    cases += [
        (c.status != StoredStatus.ISSUED.value, c.status),  # type: ignore[list-item]
        (c.not_after <= now, CertificateStatus.EXPIRED.value),
        (c.superseded_by.is_not(None), CertificateStatus.SUPERSEDED.value),
    ]
    return sa.case(*cases, else_=CertificateStatus.VALID.value)


__all__ = [
    "LISTED_STATUSES",
    "SCHEDULED_REASON",
    "CertificateStatus",
    "StoredStatus",
    "due_clause",
    "is_due",
    "live_clause",
    "parse_listed",
    "status_at",
    "status_clause",
]
