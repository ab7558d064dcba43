"""Revocation in the inventory: revoke, schedule, carry out what is due, bar keys.

The reason rule lives here (`reason_change`); what a revocation means for a certificate's
status lives in store/status.py.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from privca.errors import InputError, PolicyError
from privca.store.database import Change, Database, DatabaseFile, OwnConnection
from privca.store.records import CertificateRecord, RevocationOutcome
from privca.store.schema import KEY_HASH_INDEX, blocked_keys, certificates
from privca.store.status import SCHEDULED_REASON, StoredStatus, due_clause
from privca.store.view import KEY_COMPROMISE, row_to_certificate
from privca.x509.encoding import serial_hex


def reason_change(serial: str, current: str | None, requested: str | None) -> RevocationOutcome:
    """The one rule for revoking what is already revoked: a reason may only get worse.

    keyCompromise replaces any other reason (the key must be barred and relying parties
    told, whatever was said first); the same reason again changes nothing; anything else,
    including the "better" reasons a stolen key's holder would like to pre-empt
    keyCompromise with, is refused. There is no un-revocation."""
    current, requested = current or "unspecified", requested or "unspecified"
    if requested == current:
        return RevocationOutcome.UNCHANGED
    if requested == KEY_COMPROMISE:
        return RevocationOutcome.REASON_CHANGED
    raise PolicyError(
        f"certificate {serial} is already revoked ({current}); a revocation reason can only "
        f"change to {KEY_COMPROMISE}, not to {requested}",
        "revocation is final; give --reason keyCompromise if its key is compromised",
    )


# SQLite only (migration 0013_crl_published creates it and its triggers): a counter the
# database itself bumps, in the same transaction, whenever a certificate row's revocation
# could change (a status change to or from revoked, its date or reason updated; a revoked
# row inserted or deleted), whatever code writes it; an issuance does not move it. The
# server's OCSP cache hits compare it (a one-row read) instead of re-reading every CA's
# revocation fingerprint after each commit: in a renewal storm every ACME commit moved
# `PRAGMA data_version`, and that re-read ran for nearly every OCSP request.
REVOCATION_CLOCK_TABLE = "revocation_clock"


class RevocationClock:
    """The SQLite revocation counter, read on a connection of its own (OwnConnection): no
    pool, no transaction, microseconds (fit for the event loop)."""

    def __init__(self, file: DatabaseFile) -> None:
        # The loop and the revocation threads both read: the OwnConnection's lock.
        self._own = OwnConnection(file)

    def value(self) -> int | None:
        """The counter, or None if it cannot be read (callers then re-read the store)."""
        read = self._own.read(f"SELECT tick FROM {REVOCATION_CLOCK_TABLE} WHERE id = 1")
        if read is None:
            return None
        rows, _connection_number = read  # the tick is the store's: the same on any
        return int(rows[0][0]) if rows else None

    def close(self) -> None:
        self._own.close()


def _block_key(change: Change, public_key_sha256: str, serial: str) -> None:
    exists = change.execute(
        sa.select(blocked_keys.c.public_key_sha256).where(
            blocked_keys.c.public_key_sha256 == public_key_sha256
        )
    ).first()
    if exists is None:
        change.execute(
            blocked_keys.insert().values(
                public_key_sha256=public_key_sha256, serial=serial, at=change.now
            )
        )


def revoke_same_key(
    change: Change, public_key_sha256: str, compromised: str, now: dt.datetime
) -> list[str]:
    """Revoke for keyCompromise every other unexpired certificate that carries the
    compromised key (an earlier, milder revocation made worse, its first date kept), in
    `change`'s transaction; returns their serials. The key is compromised whichever of
    its certificates it was reported through: barring it from new certificates left the
    others valid in the CRL, OCSP and `privca verify`."""
    c = certificates.c
    rows = change.execute(
        certificates.select().where(
            KEY_HASH_INDEX.match(c.public_key_sha256, public_key_sha256),
            c.serial != compromised,
            c.der.is_not(None),
            c.not_after > now,
        )
    ).all()
    revoked: list[str] = []
    for row in rows:
        record = row_to_certificate(row)
        serial = serial_hex(record.serial)
        current = record.revocation_at(now)
        if current is not None and current.reason == KEY_COMPROMISE:
            continue
        detail: dict[str, object] = {
            "reason": KEY_COMPROMISE,
            "same_key_as": compromised,
            "key_sha256": public_key_sha256,
        }
        if current is None:
            revoked_at = now
            change.record("revoked", serial, detail)
        else:
            revoked_at = current.revoked_at
            change.record("revocation-reason-changed", serial, {"from": current.reason, **detail})
        change.execute(
            certificates.update()
            .where(c.serial == serial)
            .values(
                status=StoredStatus.REVOKED.value,
                revoked_at=revoked_at,
                revocation_reason=KEY_COMPROMISE,
                revoke_after=None,
            )
        )
        revoked.append(serial)
    return revoked


class RevocationWrites:
    """The writes of revocation, over the Store's database."""

    database: Database

    def revocation_clock(self) -> RevocationClock | None:
        """The SQLite revocation counter (see SQLITE_REVOCATION_CLOCK); None elsewhere."""
        file = self.database.file
        if file is None:
            return None
        return RevocationClock(file)

    def revoke(
        self, serial: int, reason: str | None, now: dt.datetime, public_key_sha256: str | None
    ) -> tuple[CertificateRecord, RevocationOutcome]:
        """Mark revoked, or make an existing revocation worse: see `reason_change`.

        The first revocation date is kept whatever happens later (RFC 5280 5.3.2 lets the
        reason change; the date is when the certificate stopped being trustworthy as far as
        the CA knew). keyCompromise also blocks the public key from being certified again.
        """
        key = serial_hex(serial)
        with self.database.change(now) as change:
            query = certificates.select().where(certificates.c.serial == key)
            if change.connection.dialect.name == "postgresql":
                query = query.with_for_update()
                if reason == KEY_COMPROMISE and public_key_sha256:
                    # Every row of the key, in serial order, before any write: two
                    # revocations of the same key through different certificates would
                    # otherwise each hold one row and wait for the other's (a deadlock).
                    c = certificates.c
                    change.execute(
                        sa.select(c.serial)
                        .where(KEY_HASH_INDEX.match(c.public_key_sha256, public_key_sha256))
                        .order_by(c.serial)
                        .with_for_update()
                    ).all()
            row = change.execute(query).first()
            if row is None or row.der is None:
                raise InputError(
                    f"no issued certificate with serial {key} in the inventory",
                    "see `privca list`",
                )
            # A scheduled revocation that is due is one already (every read says so, a CRL
            # may list it): the reason rule and its date apply as to a written one.
            current = row_to_certificate(row).revocation_at(now)
            logged: dict[str, object] = {"reason": reason}
            if reason == KEY_COMPROMISE and public_key_sha256:
                # The key the bar is for, in the log: `audit verify` then notices a bar
                # lifted even once tidy has dropped the certificate's DER.
                logged["key_sha256"] = public_key_sha256
            if current is None:
                outcome, revoked_at = RevocationOutcome.REVOKED, now
                change.record("revoked", key, logged)
            else:
                outcome = reason_change(key, current.reason, reason)
                if outcome is RevocationOutcome.UNCHANGED:
                    return row_to_certificate(row), outcome
                revoked_at = current.revoked_at
                change.record("revocation-reason-changed", key, {"from": current.reason, **logged})
            change.execute(
                certificates.update()
                .where(certificates.c.serial == key)
                .values(
                    status=StoredStatus.REVOKED.value,
                    revoked_at=revoked_at,
                    revocation_reason=reason,
                    revoke_after=None,
                )
            )
            if reason == KEY_COMPROMISE and public_key_sha256:
                _block_key(change, public_key_sha256, key)
                revoke_same_key(change, public_key_sha256, key, now)
            row = change.execute(query).one()
        return row_to_certificate(row), outcome

    def schedule_revocation(self, serial: int, at: dt.datetime, now: dt.datetime) -> None:
        """Revoke `serial` (reason superseded) once `at` has passed: reads count it as
        revoked from then on; `apply_due_revocations` writes it.

        A schedule only ever moves earlier: a revoked certificate, or one whose earlier
        schedule is due (already revoked to every reader), is never made good again."""
        c = certificates.c
        with self.database.change(now) as change:
            updated = change.execute(
                certificates.update()
                .where(
                    c.serial == serial_hex(serial),
                    c.status == StoredStatus.ISSUED.value,
                    sa.or_(
                        c.revoke_after.is_(None), sa.and_(c.revoke_after > now, c.revoke_after > at)
                    ),
                )
                .values(revoke_after=at)
            )
            if updated.rowcount:
                change.record("revocation-scheduled", serial, {"at": at.isoformat()})

    def apply_due_revocations(self, now: dt.datetime) -> list[int]:
        """Carry out scheduled revocations whose time has come; returns their serials.

        Only `privca crl` and the server's scheduler call this: every read already treats
        a due revocation as done (store/status.py). The revocation date is the scheduled
        time, not the moment this runs, so every process that applies it writes the same
        record."""
        with self.database.read() as connection:
            due = connection.execute(sa.select(certificates.c.serial).where(due_clause(now))).all()
        if not due:
            return []
        done: list[int] = []
        with self.database.change(now) as change:
            for (serial,) in due:
                updated = change.execute(
                    certificates.update()
                    .where(
                        certificates.c.serial == serial,
                        certificates.c.status == StoredStatus.ISSUED.value,
                    )
                    .values(
                        status=StoredStatus.REVOKED.value,
                        revoked_at=certificates.c.revoke_after,
                        revocation_reason=SCHEDULED_REASON,
                        revoke_after=None,
                    )
                )
                if updated.rowcount:
                    done.append(int(serial, 16))
                    change.record(
                        "revoked", serial, {"reason": SCHEDULED_REASON, "scheduled": True}
                    )
        return done


__all__ = [
    "KEY_COMPROMISE",
    "RevocationClock",
    "RevocationWrites",
    "reason_change",
    "revoke_same_key",
]
