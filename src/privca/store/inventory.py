"""Store: the inventory of CA certificates and issued certificates, with an audit trail.

Issuance is two commits: `reserve` records the intent (serial, names, profile) before the
CA key signs, `complete` records the signed certificate before anything is returned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from privca._time import as_utc
from privca.errors import InputError, PolicyError, StoreUnavailable
from privca.store.database import WRITE_OPTIONS, create_engine, driver_message, migrate
from privca.store.schema import authorities, blocked_keys, certificates, crl_state, events
from privca.x509.encoding import serial_hex

SERIAL_RETRIES = 5


KEY_COMPROMISE = "keyCompromise"


class RevocationOutcome(StrEnum):
    """What one revoke call did."""

    REVOKED = "revoked"  # it was valid; now it is revoked
    REASON_CHANGED = "reason-changed"  # it was revoked; now for keyCompromise
    UNCHANGED = "unchanged"  # it was already revoked for this very reason

    @property
    def changed(self) -> bool:
        return self is not RevocationOutcome.UNCHANGED


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


def random_serial() -> int:
    """126 CSPRNG bits under a fixed leading bit: positive, always 16 DER bytes and 32 hex
    digits, so a serial never looks like the sequential 01, 02 of `-CAcreateserial`."""
    return secrets.randbits(126) | (1 << 126)


@dataclass(frozen=True)
class AuthorityRecord:
    id: int
    role: str
    common_name: str
    serial: int
    der: bytes
    key_ref: str
    active: bool
    not_after: dt.datetime


@dataclass(frozen=True)
class Intent:
    """What is about to be signed, recorded before the CA key is used."""

    issuer_id: int
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str


@dataclass(frozen=True)
class CertificateRecord:
    serial: int
    issuer_id: int
    status: str
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str
    der: bytes | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    superseded_by: int | None = None

    def status_at(self, now: dt.datetime) -> str:
        """valid | superseded | expired | revoked | pending | failed, as shown to operators."""
        if self.status in ("revoked", "pending", "failed"):
            return self.status
        if self.not_after <= now:
            return "expired"
        return "superseded" if self.superseded_by is not None else "valid"


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: dt.datetime
    reason: str | None


@dataclass(frozen=True)
class CrlState:
    issuer_id: int
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


def _row_to_certificate(row: sa.Row) -> CertificateRecord:
    return CertificateRecord(
        serial=int(row.serial, 16),
        issuer_id=row.issuer_id,
        status=row.status,
        profile=row.profile,
        names=tuple(json.loads(row.names)),
        subject=row.subject,
        not_before=as_utc(row.not_before),
        not_after=as_utc(row.not_after),
        public_key_sha256=row.public_key_sha256,
        der=row.der,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        revocation_reason=row.revocation_reason,
        superseded_by=int(row.superseded_by, 16) if row.superseded_by else None,
    )


class ChangeCounter:
    """SQLite's `PRAGMA data_version` on one read-only connection: it changes when any
    other connection commits, and reading it takes no lock and no query plan."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self._sqlite3 = sqlite3
        self._connection: Any = sqlite3.connect(path, timeout=1.0, check_same_thread=False)

    def value(self) -> int | None:
        """The counter, or None if it cannot be read (callers then re-read the store)."""
        try:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        except self._sqlite3.Error:
            return None

    def close(self) -> None:
        with contextlib.suppress(self._sqlite3.Error):
            self._connection.close()


class Store:
    """One inventory database. Safe to use from several processes at once."""

    def __init__(self, url: str, *, password: str | None = None, sealer: Any = None) -> None:
        """`password` is the PostgreSQL password, never part of `url` (check_store_url);
        `sealer` seals the secrets the store keeps (store.acme.Sealer), if any."""
        self.url = url
        self.engine = create_engine(url, password)
        self.sealer = sealer

    def migrate(self) -> str | None:
        """Bring the schema up to date; returns the revision it had before."""
        return migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); connection failures -> exit 3."""
        try:
            with self.engine.connect() as connection:
                connection.execution_options(**WRITE_OPTIONS)
                with connection.begin():
                    yield connection
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(
                f"the inventory database is unavailable: {driver_message(exc)}",
                "check the store URL, that the database is reachable and the disk not full",
            ) from exc

    def _connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(
                f"the inventory database is unavailable: {driver_message(exc)}"
            ) from exc

    # authorities -----------------------------------------------------------------------

    def add_authority(
        self,
        role: str,
        common_name: str,
        serial: int,
        der: bytes,
        key_ref: str,
        not_after: dt.datetime,
        now: dt.datetime,
        *,
        active: bool = True,
    ) -> int:
        with self._begin() as connection:
            if active:
                connection.execute(
                    authorities.update().where(authorities.c.role == role).values(active=False)
                )
            result = connection.execute(
                authorities.insert().values(
                    role=role,
                    common_name=common_name,
                    serial=serial_hex(serial),
                    der=der,
                    key_ref=key_ref,
                    active=active,
                    not_after=not_after,
                    created_at=now,
                )
            )
            connection.execute(
                events.insert().values(
                    at=now, action=f"{role}-ca-created", serial=serial_hex(serial), detail=None
                )
            )
            return int(result.inserted_primary_key[0])

    def authorities(self) -> list[AuthorityRecord]:
        with self._connect() as connection:
            rows = connection.execute(authorities.select().order_by(authorities.c.id)).all()
        return [
            AuthorityRecord(
                id=row.id,
                role=row.role,
                common_name=row.common_name,
                serial=int(row.serial, 16),
                der=row.der,
                key_ref=row.key_ref,
                active=bool(row.active),
                not_after=as_utc(row.not_after),
            )
            for row in rows
        ]

    # issuance --------------------------------------------------------------------------

    def reserve(
        self,
        intents: Sequence[Intent],
        now: dt.datetime,
        serial_source: Callable[[], int] = random_serial,
    ) -> list[int]:
        """Commit one pending row per intent and return their serials.

        A serial collision (the primary key) retries the whole batch with fresh serials.
        """
        for _attempt in range(SERIAL_RETRIES):
            serials = [serial_source() for _ in intents]
            if len(set(serials)) != len(serials):
                continue
            rows = [
                {
                    "serial": serial_hex(serial),
                    "issuer_id": intent.issuer_id,
                    "status": "pending",
                    "profile": intent.profile,
                    "names": json.dumps(list(intent.names)),
                    "subject": intent.subject,
                    "not_before": intent.not_before,
                    "not_after": intent.not_after,
                    "public_key_sha256": intent.public_key_sha256,
                    "der": None,
                    "created_at": now,
                }
                for serial, intent in zip(serials, intents, strict=True)
            ]
            try:
                with self._begin() as connection:
                    connection.execute(certificates.insert(), rows)
            except sa.exc.IntegrityError as exc:
                if self._any_serial_taken(serials):
                    continue  # a collision: draw new serials
                raise StoreUnavailable(
                    f"the inventory refused the new records: {driver_message(exc)}",
                    "is the issuing CA recorded in this store? (privca doctor)",
                ) from exc
            return serials
        raise StoreUnavailable(
            f"could not find an unused serial in {SERIAL_RETRIES} attempts",
            "this should be impossible with 127 random bits; check the serial source",
        )

    def _any_serial_taken(self, serials: Sequence[int]) -> bool:
        with self._connect() as connection:
            row = connection.execute(
                sa.select(certificates.c.serial).where(
                    certificates.c.serial.in_([serial_hex(s) for s in serials])
                )
            ).first()
        return row is not None

    def complete(self, signed: Iterable[tuple[int, bytes]], now: dt.datetime) -> None:
        """Record the signed certificates; only then may they be returned or written."""
        params = [{"s": serial_hex(serial), "d": der, "now": now} for serial, der in signed]
        if not params:
            return
        statement = (
            certificates.update()
            .where(certificates.c.serial == sa.bindparam("s"))
            .values(status="issued", der=sa.bindparam("d"), issued_at=sa.bindparam("now"))
        )
        event_rows = [
            {"at": now, "action": "issued", "serial": p["s"], "detail": None} for p in params
        ]
        with self._begin() as connection:
            connection.execute(statement, params)
            connection.execute(events.insert(), event_rows)

    def abandon(self, serials: Iterable[int], now: dt.datetime, reason: str) -> None:
        """Mark intents whose signing failed; their serials are never reused."""
        hexes = [serial_hex(s) for s in serials]
        if not hexes:
            return
        with self._begin() as connection:
            connection.execute(
                certificates.update()
                .where(certificates.c.serial.in_(hexes), certificates.c.status == "pending")
                .values(status="failed")
            )
            connection.execute(
                events.insert(),
                [{"at": now, "action": "failed", "serial": h, "detail": reason} for h in hexes],
            )

    # queries ---------------------------------------------------------------------------

    def get(self, serial: int) -> CertificateRecord | None:
        with self._connect() as connection:
            row = connection.execute(
                certificates.select().where(certificates.c.serial == serial_hex(serial))
            ).first()
        return _row_to_certificate(row) if row else None

    def find(
        self,
        *,
        name_pattern: str | None = None,
        status: str | None = None,
        expiring_before: dt.datetime | None = None,
        now: dt.datetime,
        include_unsigned: bool = False,
    ) -> list[CertificateRecord]:
        query = certificates.select().order_by(certificates.c.not_after, certificates.c.serial)
        if not include_unsigned:
            query = query.where(certificates.c.status.in_(("issued", "revoked")))
        if status == "revoked":
            query = query.where(certificates.c.status == "revoked")
        elif status == "valid":
            query = query.where(
                certificates.c.status == "issued",
                certificates.c.not_after > now,
                certificates.c.superseded_by.is_(None),
            )
        elif status == "superseded":
            query = query.where(
                certificates.c.status == "issued",
                certificates.c.not_after > now,
                certificates.c.superseded_by.is_not(None),
            )
        elif status == "expired":
            query = query.where(certificates.c.status == "issued", certificates.c.not_after <= now)
        elif status is not None:
            raise InputError(
                f"status '{status}' is not one of valid, superseded, revoked, expired",
                "use --status valid|superseded|revoked|expired",
            )
        if expiring_before is not None:
            query = query.where(
                certificates.c.not_after <= expiring_before,
                certificates.c.not_after > now,
                certificates.c.status == "issued",
            )
        if name_pattern:
            like = "%" + name_pattern.lower().replace("*", "%").replace("?", "_") + "%"
            query = query.where(sa.func.lower(certificates.c.names).like(like))
        with self._connect() as connection:
            rows = connection.execute(query).all()
        return [_row_to_certificate(row) for row in rows]

    def find_by_name(self, name: str, now: dt.datetime) -> list[CertificateRecord]:
        """Certificates whose SAN list contains exactly `name`, newest first."""
        candidates = self.find(name_pattern=name, now=now)
        exact = [record for record in candidates if name in record.names]
        return sorted(exact, key=lambda r: r.not_before, reverse=True)

    # revocation -----------------------------------------------------------------------

    def revoke(
        self, serial: int, reason: str | None, now: dt.datetime, public_key_sha256: str | None
    ) -> tuple[CertificateRecord, RevocationOutcome]:
        """Mark revoked, or make an existing revocation worse: see `reason_change`.

        The first revocation date is kept whatever happens later (RFC 5280 5.3.2 lets the
        reason change; the date is when the certificate stopped being trustworthy as far as
        the CA knew). keyCompromise also blocks the public key from being certified again.
        """
        key = serial_hex(serial)
        with self._begin() as connection:
            query = certificates.select().where(certificates.c.serial == key)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            row = connection.execute(query).first()
            if row is None or row.der is None:
                raise InputError(
                    f"no issued certificate with serial {key} in the inventory",
                    "see `privca list`",
                )
            if row.status == "revoked":
                outcome = reason_change(key, row.revocation_reason, reason)
                if outcome is RevocationOutcome.UNCHANGED:
                    return _row_to_certificate(row), outcome
                connection.execute(
                    certificates.update()
                    .where(certificates.c.serial == key)
                    .values(revocation_reason=reason, revoke_after=None)
                )
                detail = f"{row.revocation_reason or 'unspecified'} -> {reason}"
                connection.execute(
                    events.insert().values(
                        at=now, action="revocation-reason-changed", serial=key, detail=detail
                    )
                )
            else:
                outcome = RevocationOutcome.REVOKED
                connection.execute(
                    certificates.update()
                    .where(certificates.c.serial == key)
                    .values(
                        status="revoked",
                        revoked_at=now,
                        revocation_reason=reason,
                        revoke_after=None,
                    )
                )
                connection.execute(
                    events.insert().values(at=now, action="revoked", serial=key, detail=reason)
                )
            if reason == KEY_COMPROMISE and public_key_sha256:
                exists = connection.execute(
                    sa.select(blocked_keys.c.public_key_sha256).where(
                        blocked_keys.c.public_key_sha256 == public_key_sha256
                    )
                ).first()
                if exists is None:
                    connection.execute(
                        blocked_keys.insert().values(
                            public_key_sha256=public_key_sha256, serial=key, at=now
                        )
                    )
            row = connection.execute(
                certificates.select().where(certificates.c.serial == key)
            ).one()
        return _row_to_certificate(row), outcome

    def blocked(self, public_key_hashes: Iterable[str]) -> set[str]:
        hashes = list(public_key_hashes)
        if not hashes:
            return set()
        with self._connect() as connection:
            rows = connection.execute(
                sa.select(blocked_keys.c.public_key_sha256).where(
                    blocked_keys.c.public_key_sha256.in_(hashes)
                )
            ).all()
        return {row[0] for row in rows}

    def revoked_entries(self, issuer_id: int, now: dt.datetime) -> list[RevokedEntry]:
        """Revoked certificates of one CA that have not expired (RFC 5280 lets expired go)."""
        with self._connect() as connection:
            rows = connection.execute(
                sa.select(
                    certificates.c.serial,
                    certificates.c.revoked_at,
                    certificates.c.revocation_reason,
                )
                .where(
                    certificates.c.issuer_id == issuer_id,
                    certificates.c.status == "revoked",
                    certificates.c.not_after > now,
                )
                .order_by(certificates.c.revoked_at, certificates.c.serial)
            ).all()
        return [
            RevokedEntry(int(r.serial, 16), as_utc(r.revoked_at), r.revocation_reason) for r in rows
        ]

    def issuer_ids_with_certificates(self) -> set[int]:
        """The CAs that have signed at least one end-entity certificate."""
        with self._connect() as connection:
            rows = connection.execute(sa.select(certificates.c.issuer_id).distinct()).all()
        return {int(row[0]) for row in rows}

    def revocation_fingerprints(self) -> dict[int, tuple[int, str]]:
        """Per CA, a value that changes whenever one of its certificates is revoked or its
        revocation reason changes to keyCompromise (a cheap cache key), for every CA in one
        query (one round trip on PostgreSQL)."""
        compromised = sa.func.sum(
            sa.case((certificates.c.revocation_reason == KEY_COMPROMISE, 1), else_=0)
        )
        with self._connect() as connection:
            rows = connection.execute(
                sa.select(
                    certificates.c.issuer_id,
                    sa.func.count(),
                    sa.func.max(certificates.c.revoked_at),
                    compromised,
                )
                .where(certificates.c.status == "revoked")
                .group_by(certificates.c.issuer_id)
            ).all()
            ids = connection.execute(sa.select(authorities.c.id)).scalars().all()
        found = {int(r[0]): (int(r[1]), f"{r[2]}|{int(r[3] or 0)}") for r in rows}
        return {i: found.get(i, (0, "None")) for i in ids}

    def change_counter(self) -> ChangeCounter | None:
        """A cheap "has anyone committed since?" probe, or None where the database has none."""
        if not self.url.startswith("sqlite:///"):
            return None
        return ChangeCounter(self.url.removeprefix("sqlite:///"))

    def next_crl_number(
        self, issuer_id: int, this_update: dt.datetime, next_update: dt.datetime
    ) -> int:
        """Reserve the next CRLNumber for a CA: strictly increasing across processes."""
        with self._begin() as connection:
            query = sa.select(crl_state.c.number).where(crl_state.c.issuer_id == issuer_id)
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            current = connection.execute(query).scalar()
            if current is None:
                number = 1
                try:
                    with connection.begin_nested():
                        connection.execute(
                            crl_state.insert().values(
                                issuer_id=issuer_id,
                                number=number,
                                this_update=this_update,
                                next_update=next_update,
                            )
                        )
                except sa.exc.IntegrityError:
                    # Another replica published its first CRL at the same moment.
                    current = connection.execute(query).scalar()
                else:
                    return number
            number = int(current) + 1
            connection.execute(
                crl_state.update()
                .where(crl_state.c.issuer_id == issuer_id)
                .values(number=number, this_update=this_update, next_update=next_update)
            )
        return number

    def crl_states(self) -> list[CrlState]:
        with self._connect() as connection:
            rows = connection.execute(crl_state.select()).all()
        return [
            CrlState(r.issuer_id, int(r.number), as_utc(r.this_update), as_utc(r.next_update))
            for r in rows
        ]

    def schedule_revocation(self, serial: int, at: dt.datetime, now: dt.datetime) -> None:
        """Revoke `serial` (reason superseded) once `at` has passed."""
        with self._begin() as connection:
            connection.execute(
                certificates.update()
                .where(certificates.c.serial == serial_hex(serial))
                .values(revoke_after=at)
            )
            connection.execute(
                events.insert().values(
                    at=now,
                    action="revocation-scheduled",
                    serial=serial_hex(serial),
                    detail=at.isoformat(),
                )
            )

    def apply_due_revocations(self, now: dt.datetime) -> list[int]:
        """Carry out scheduled revocations whose time has come; returns their serials.

        The revocation date is the scheduled time, not the moment this runs, so every
        process that applies it writes the same record."""
        with self._connect() as connection:
            due = connection.execute(
                sa.select(certificates.c.serial).where(
                    certificates.c.revoke_after <= now, certificates.c.status == "issued"
                )
            ).all()
        if not due:
            return []
        done: list[int] = []
        with self._begin() as connection:
            for (serial,) in due:
                updated = connection.execute(
                    certificates.update()
                    .where(certificates.c.serial == serial, certificates.c.status == "issued")
                    .values(
                        status="revoked",
                        revoked_at=certificates.c.revoke_after,
                        revocation_reason="superseded",
                        revoke_after=None,
                    )
                )
                if updated.rowcount:
                    done.append(int(serial, 16))
                    connection.execute(
                        events.insert().values(
                            at=now, action="revoked", serial=serial, detail="superseded (scheduled)"
                        )
                    )
        return done

    def mark_superseded(self, old: int, new: int, now: dt.datetime) -> None:
        with self._begin() as connection:
            connection.execute(
                certificates.update()
                .where(certificates.c.serial == serial_hex(old))
                .values(superseded_by=serial_hex(new))
            )
            connection.execute(
                events.insert().values(
                    at=now, action="superseded", serial=serial_hex(old), detail=serial_hex(new)
                )
            )

    def counts_by_status(self) -> dict[tuple[int, str], int]:
        """(issuer id, stored status) -> number of certificates: for metrics."""
        with self._connect() as connection:
            rows = connection.execute(
                sa.select(
                    certificates.c.issuer_id, certificates.c.status, sa.func.count()
                ).group_by(certificates.c.issuer_id, certificates.c.status)
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def count(self) -> int:
        with self._connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(certificates)).scalar()
            )
