"""Bulk insertion of certificates another CA signed before privca took it over.

Unlike issuance (reserve, then complete), these certificates already exist: they are
recorded in one transaction with their real serials, their status (issued or revoked),
and the revocation date and reason the old records give.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from privca.errors import InputError
from privca.store.inventory import Store
from privca.store.schema import blocked_keys, certificates, crl_state, events
from privca.x509.encoding import serial_hex


@dataclass(frozen=True)
class ImportedRow:
    serial: int
    status: str  # issued | revoked
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str  # "" when only the revocation of a lost certificate is known
    der: bytes | None
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    source: str | None = None


def add_imported_certificates(
    store: Store, issuer_id: int, rows: Sequence[ImportedRow], now: dt.datetime
) -> int:
    """Insert all rows or none. keyCompromise revocations also block their keys, as
    privca's own revoke does. Returns how many were recorded."""
    if not rows:
        return 0
    values = [
        {
            "serial": serial_hex(row.serial),
            "issuer_id": issuer_id,
            "status": row.status,
            "profile": row.profile,
            "names": json.dumps(list(row.names)),
            "subject": row.subject[:1024],
            "not_before": row.not_before,
            "not_after": row.not_after,
            "public_key_sha256": row.public_key_sha256,
            "der": row.der,
            "created_at": now,
            "issued_at": row.not_before,
            "revoked_at": row.revoked_at,
            "revocation_reason": row.reason,
        }
        for row in rows
    ]
    audit = [
        {"at": now, "action": "imported", "serial": serial_hex(row.serial), "detail": row.source}
        for row in rows
    ]
    blocked: dict[str, dict[str, object]] = {}
    for row in rows:
        if row.reason == "keyCompromise" and row.public_key_sha256:
            blocked.setdefault(
                row.public_key_sha256,
                {
                    "public_key_sha256": row.public_key_sha256,
                    "serial": serial_hex(row.serial),
                    "at": row.revoked_at or now,
                },
            )
    try:
        with store._begin() as connection:
            connection.execute(certificates.insert(), values)
            connection.execute(events.insert(), audit)
            if blocked:
                existing = {
                    r[0]
                    for r in connection.execute(
                        sa.select(blocked_keys.c.public_key_sha256).where(
                            blocked_keys.c.public_key_sha256.in_(list(blocked))
                        )
                    )
                }
                fresh = [v for k, v in blocked.items() if k not in existing]
                if fresh:
                    connection.execute(blocked_keys.insert(), fresh)
    except sa.exc.IntegrityError as exc:
        raise InputError(
            "a certificate to import has a serial already in the inventory",
            "import into a new, empty --home",
        ) from exc
    return len(rows)


def set_crl_number(
    store: Store,
    issuer_id: int,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> None:
    """Continue the old CA's CRLNumber sequence: the next CRL privca publishes is number+1,
    so clients that cached the old CA's CRL take privca's as newer."""
    with store._begin() as connection:
        connection.execute(
            crl_state.insert().values(
                issuer_id=issuer_id,
                number=number,
                this_update=this_update,
                next_update=next_update,
            )
        )
