"""Bulk insertion of certificates another CA signed before privca took it over.

Unlike issuance (reserve, then complete), these certificates already exist: they are
recorded in one transaction with their real serials, their status (issued or revoked),
and the revocation date and reason the old records give.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import sqlalchemy as sa

from privca.errors import InputError
from privca.store.auditlog import der_fingerprint
from privca.store.database import Change, Database, Event
from privca.store.names import insert_certificates
from privca.store.records import ImportedRow
from privca.store.revocation import revoke_same_key
from privca.store.schema import blocked_keys
from privca.store.view import KEY_COMPROMISE
from privca.x509.encoding import serial_hex


def _values(row: ImportedRow, issuer_id: int, now: dt.datetime) -> dict[str, object]:
    return {
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


def _block_compromised_keys(change: Change, rows: Sequence[ImportedRow]) -> None:
    """keyCompromise revocations bar their keys, as privca's own revoke does."""
    blocked: dict[str, dict[str, object]] = {}
    for row in rows:
        if row.reason == KEY_COMPROMISE and row.public_key_sha256:
            blocked.setdefault(
                row.public_key_sha256,
                {
                    "public_key_sha256": row.public_key_sha256,
                    "serial": serial_hex(row.serial),
                    "at": row.revoked_at or change.now,
                },
            )
    if not blocked:
        return
    existing = {
        r[0]
        for r in change.execute(
            sa.select(blocked_keys.c.public_key_sha256).where(
                blocked_keys.c.public_key_sha256.in_(list(blocked))
            )
        )
    }
    fresh = [v for k, v in blocked.items() if k not in existing]
    if fresh:
        change.execute(blocked_keys.insert(), fresh)


def _revoke_barred_keys(change: Change, rows: Sequence[ImportedRow]) -> None:
    """A certificate put back that carries a key barred for keyCompromise (before, or by
    another row of this import) is revoked for it at once, as privca's own revoke does for
    every certificate of that key: listing it as valid would undo the bar."""
    keys = list({row.public_key_sha256 for row in rows if row.public_key_sha256})
    if not keys:
        return
    barred = change.execute(
        sa.select(blocked_keys.c.public_key_sha256, blocked_keys.c.serial).where(
            blocked_keys.c.public_key_sha256.in_(keys)
        )
    ).all()
    for bar in barred:
        revoke_same_key(change, bar.public_key_sha256, bar.serial or "", change.now)


def _import_entries(rows: Sequence[ImportedRow], issuer_id: int) -> list[Event]:
    entries: list[Event] = []
    for row in rows:
        detail: dict[str, object] = {
            "issuer": issuer_id,
            "status": row.status,
            "profile": row.profile,
            "names": list(row.names),
            "key_sha256": row.public_key_sha256,
            "source": row.source,
        }
        if row.der is not None:
            detail["fingerprint"] = der_fingerprint(row.der)
        if row.reason is not None:
            detail["reason"] = row.reason
        entries.append(("imported", row.serial, detail))
    return entries


def add_imported_certificates(
    database: Database, issuer_id: int, rows: Sequence[ImportedRow], now: dt.datetime
) -> int:
    """Insert all rows or none; returns how many were recorded."""
    if not rows:
        return 0
    try:
        with database.change(now) as change:
            insert_certificates(change, [_values(r, issuer_id, now) for r in rows])
            change.record_all(_import_entries(rows, issuer_id))
            _block_compromised_keys(change, rows)
            _revoke_barred_keys(change, rows)
    except sa.exc.IntegrityError as exc:
        raise InputError(
            "a certificate to import has a serial already in the inventory",
            "import into a new, empty --home",
        ) from exc
    return len(rows)


__all__ = ["ImportedRow", "add_imported_certificates"]
