"""InventoryView: everything that reads the inventory, and nothing that writes it.

`CertificateAuthority.inventory` is one of these; code outside the authority layer
(server, monitoring, the CLI, adopt, tls_scan) reads the store through it only. Statuses
come from store/status.py, so a revocation scheduled by `renew --revoke-old-after` reads
as revoked from the moment it is due, although nothing has written it yet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from privca._time import as_utc
from privca.errors import NotFound
from privca.store import auditlog
from privca.store.auditlog import AuditSnapshot
from privca.store.database import ChangeCounter, Database, DatabaseFile, OwnConnection
from privca.store.expiry import (
    ExpiringCertificate,
    SeverityCounts,
    expiring,
    expiry_counts,
    severity_counts,
)
from privca.store.metrics import (
    certificate_counts,
    soonest_expiry,
    valid_by_issuer,
    write_position,
)
from privca.store.names import subject_of
from privca.store.records import (
    AuthorityRecord,
    CertificateCount,
    CertificateRecord,
    CrlState,
    IssuerRecord,
    Revocation,
    RevokedEntry,
    ValidLeaves,
)
from privca.store.schema import (
    KEY_HASH_INDEX,
    audit_log,
    authorities,
    blocked_keys,
    certificate_names,
    certificates,
    crl_state,
    issuers,
)
from privca.store.status import (
    SCHEDULED_REASON,
    CertificateStatus,
    StoredStatus,
    live_clause,
    parse_listed,
    status_clause,
)
from privca.x509.encoding import serial_hex

KEY_COMPROMISE = "keyCompromise"
# Rows fetched per round trip when streaming (a server-side cursor on PostgreSQL).
STREAM_CHUNK = 500
# In place of the DER column when a listing does not need it.
_NO_DER = sa.null().label("der")

# Statements an ACME server runs for every order, built once (a statement built per call
# costs SQLAlchemy a new cache key each time): the issuers (read to see an issuer another
# process disabled) and the blocked keys among a request's.
_ISSUERS = issuers.select()
# The audit action of a certificate this CA signed (audit/verify.py's name for it); not
# "imported": an adoption brings in thousands at once, certificates nobody may ask about.
_SIGNED_ACTIONS = ("issued",)
_BLOCKED = sa.select(blocked_keys.c.public_key_sha256).where(
    blocked_keys.c.public_key_sha256.in_(sa.bindparam("hashes", expanding=True))
)


def row_to_certificate(row: sa.Row[tuple[object, ...]]) -> CertificateRecord:
    m = row._mapping
    names = tuple(json.loads(m["names"]))
    return CertificateRecord(
        serial=int(m["serial"], 16),
        issuer_id=int(m["issuer_id"]),
        status=str(m["status"]),
        profile=str(m["profile"]),
        names=names,
        subject=subject_of(m["subject"], names),
        not_before=as_utc(m["not_before"]),
        not_after=as_utc(m["not_after"]),
        public_key_sha256=str(m["public_key_sha256"]),
        der=m["der"],
        created_at=as_utc(m["created_at"]),
        revoked_at=as_utc(m["revoked_at"]) if m["revoked_at"] else None,
        revocation_reason=m["revocation_reason"],
        superseded_by=int(m["superseded_by"], 16) if m["superseded_by"] else None,
        revoke_after=as_utc(m["revoke_after"]) if m["revoke_after"] else None,
    )


def row_to_authority(row: sa.Row[tuple[object, ...]]) -> AuthorityRecord:
    m = row._mapping
    return AuthorityRecord(
        id=int(m["id"]),
        role=str(m["role"]),
        common_name=str(m["common_name"]),
        serial=int(m["serial"], 16),
        der=bytes(m["der"]),
        key_ref=str(m["key_ref"]),
        active=bool(m["active"]),
        not_after=as_utc(m["not_after"]),
        issuer=str(m["issuer"]) if m["issuer"] is not None else None,
        revoked_at=as_utc(m["revoked_at"]) if m["revoked_at"] is not None else None,
        revocation_reason=m["revocation_reason"],
    )


def row_to_issuer(row: sa.Row[tuple[object, ...]]) -> IssuerRecord:
    return mapping_to_issuer(row._mapping)


def mapping_to_issuer(m: Mapping[Any, Any]) -> IssuerRecord:
    return IssuerRecord(
        name=str(m["name"]),
        disabled=bool(m["disabled"]),
        default=bool(m["is_default"]),
        permitted=tuple(json.loads(m["permitted"])),
        excluded=tuple(json.loads(m["excluded"])),
        profiles=tuple(json.loads(m["profiles"])),
        created_at=as_utc(m["created_at"]),
    )


def _sorted_issuers(records: Iterable[IssuerRecord]) -> list[IssuerRecord]:
    # Sorted here: SQLite compares the migration's and the store's time texts as text.
    return sorted(records, key=lambda i: (i.created_at, i.name))


class IssuersReader:
    """`InventoryView.issuers` on a SQLite connection of its own: no pool, no SQLAlchemy
    statement, no transaction left open; ~0.01 ms where the pooled read took ~0.2 ms.
    An ACME server reads the issuers several times per order (an issuer that another
    process disabled must stop issuing at its next order), so it reads them here.

    Every call reads the table: what it returns is exactly what the pooled read would
    (each column converted by its own type's result processor, as the pool's result
    does); only the records built from rows seen before are reused. It reads the file the
    store opened and no other (DatabaseFile), as the pool does."""

    def __init__(self, file: DatabaseFile, dialect: sa.Dialect) -> None:
        columns = list(issuers.columns)
        self._names = [column.name for column in columns]
        self._sql = f"SELECT {', '.join(self._names)} FROM {issuers.name}"
        self._processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._records: dict[tuple[Any, ...], IssuerRecord] = {}
        self._own = OwnConnection(file)

    def issuers(self) -> list[IssuerRecord] | None:
        """Every named issuer, oldest first; None when the caller must read through the
        pool instead (see OwnConnection.read)."""
        read = self._own.read(self._sql)
        if read is None:
            return None
        rows, _connection_number = read
        if len(self._records) > 256:  # issuers are few: only ever-changing rows grow it
            self._records.clear()
        return _sorted_issuers(self._record(tuple(row)) for row in rows)

    def _record(self, row: tuple[Any, ...]) -> IssuerRecord:
        record = self._records.get(row)
        if record is None:
            values = (
                value if process is None else process(value)
                for value, process in zip(row, self._processors, strict=True)
            )
            record = mapping_to_issuer(dict(zip(self._names, values, strict=True)))
            self._records[row] = record
        return record

    def close(self) -> None:
        self._own.close()


class InventoryView:
    """Read-only queries over one inventory database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # CA certificates ----------------------------------------------------------------------

    def authorities(self) -> list[AuthorityRecord]:
        """Every CA certificate ever recorded, oldest first (none is ever deleted)."""
        with self.database.read() as connection:
            rows = connection.execute(authorities.select().order_by(authorities.c.id)).all()
        return [row_to_authority(row) for row in rows]

    def issuers(self) -> list[IssuerRecord]:
        """Every named issuer, oldest first."""
        with self.database.read() as connection:
            rows = connection.execute(_ISSUERS).all()
        return _sorted_issuers(row_to_issuer(row) for row in rows)

    def issuers_reader(self) -> IssuersReader | None:
        """A cheaper `issuers` for a server that reads them often (SQLite); None where
        every read is a round trip anyway (PostgreSQL)."""
        file = self.database.file
        if file is None:
            return None
        return IssuersReader(file, self.database.engine.dialect)

    def active_authorities(self) -> frozenset[int]:
        """The ids of the active CA certificates: a small read that tells a server when a
        CA was added or ended (a root rollover retired) without parsing certificates."""
        with self.database.read() as connection:
            rows = connection.execute(
                sa.select(authorities.c.id).where(authorities.c.active.is_(True))
            ).all()
        return frozenset(int(row[0]) for row in rows)

    def has_certificates(self, issuer_id: int) -> bool:
        """Whether the CA has signed at least one end-entity certificate (an index seek)."""
        with self.database.read() as connection:
            row = connection.execute(
                sa.select(certificates.c.serial).where(certificates.c.issuer_id == issuer_id)
            ).first()
        return row is not None

    def issuer_ids_with_certificates(self) -> set[int]:
        """The CAs that have signed at least one end-entity certificate."""
        with self.database.read() as connection:
            rows = connection.execute(sa.select(certificates.c.issuer_id).distinct()).all()
        return {int(row[0]) for row in rows}

    # certificates -------------------------------------------------------------------------

    def get(self, serial: int) -> CertificateRecord | None:
        """The record of `serial`, signed or not (an intent has no `der` yet)."""
        with self.database.read() as connection:
            row = connection.execute(
                certificates.select().where(certificates.c.serial == serial_hex(serial))
            ).first()
        return row_to_certificate(row) if row else None

    def with_key(self, public_key_sha256: str) -> list[CertificateRecord]:
        """The signed certificates that carry this public key (by its SHA-256), oldest
        first: an index search (KEY_HASH_INDEX)."""
        c = certificates.c
        with self.database.read() as connection:
            rows = connection.execute(
                certificates.select()
                .where(KEY_HASH_INDEX.match(c.public_key_sha256, public_key_sha256))
                .where(c.der.is_not(None))
                .order_by(c.created_at)
            ).all()
        return [row_to_certificate(row) for row in rows]

    def issued_since(
        self, after_seq: int | None, limit: int
    ) -> tuple[int, list[CertificateRecord]]:
        """The certificates signed since audit entry `after_seq` (by any process: the
        audit log is the store's one ordered record of changes), at most `limit` of them,
        oldest first, and the seq to ask from next time. `after_seq` None: none, only
        where the log ends now. One query, a range of the audit log's primary key (its
        other entries are skipped, but counted in `limit`)."""
        with self.database.read() as connection:
            if after_seq is None:
                return auditlog.head(connection)[0], []
            recent = (
                sa.select(audit_log.c.seq, audit_log.c.action, audit_log.c.serial)
                .where(audit_log.c.seq > after_seq)
                .order_by(audit_log.c.seq)
                .limit(limit)
                .subquery()
            )
            rows = connection.execute(
                sa.select(recent.c.seq, recent.c.action, certificates)
                .select_from(recent)
                .outerjoin(
                    certificates,
                    sa.and_(
                        certificates.c.serial == recent.c.serial,
                        recent.c.action.in_(_SIGNED_ACTIONS),
                    ),
                )
                .order_by(recent.c.seq)
            ).all()
        if not rows:
            return after_seq, []
        issued = [
            row_to_certificate(row)
            for row in rows
            if row.serial is not None and row.der is not None
        ]
        return int(rows[-1].seq), issued

    def find(
        self,
        *,
        name_pattern: str | None = None,
        status: str | None = None,
        expiring_before: dt.datetime | None = None,
        expiring_between: tuple[dt.datetime, dt.datetime] | None = None,
        now: dt.datetime,
        include_unsigned: bool = False,
        with_der: bool = True,
    ) -> list[CertificateRecord]:
        """Signed certificates, soonest expiry first; `status` is one of LISTED_STATUSES
        (InputError otherwise), `name_pattern` a substring with * and ? wildcards,
        `expiring_before` only live ones, `expiring_between` any with notAfter in [a, b].
        `with_der=False`: the records' `der` is None (listings that show no certificate
        skip reading and inflating it)."""
        return list(
            self.stream(
                name_pattern=name_pattern,
                status=status,
                expiring_before=expiring_before,
                expiring_between=expiring_between,
                now=now,
                include_unsigned=include_unsigned,
                with_der=with_der,
            )
        )

    def stream(
        self,
        *,
        name_pattern: str | None = None,
        status: str | None = None,
        expiring_before: dt.datetime | None = None,
        expiring_between: tuple[dt.datetime, dt.datetime] | None = None,
        now: dt.datetime,
        include_unsigned: bool = False,
        after: int | None = None,
        limit: int | None = None,
        with_der: bool = True,
    ) -> Generator[CertificateRecord, None, None]:
        """As `find`, read STREAM_CHUNK rows at a time (memory does not grow with the
        inventory): in (not_after, serial) order, from just after certificate `after`
        (NotFound if it is not in the inventory), at most `limit` of them.

        The statement is checked (status, `after`) before the first row is asked for;
        `with_der` as for `find`."""
        c = certificates.c
        columns = [column if with_der or column is not c.der else _NO_DER for column in c]
        query = sa.select(*columns).where(c.tidied_at.is_(None)).order_by(c.not_after, c.serial)
        if not include_unsigned:
            query = query.where(c.status.in_((StoredStatus.ISSUED, StoredStatus.REVOKED)))
        if status is not None:
            query = query.where(status_clause(parse_listed(status), now))
        if expiring_before is not None:
            query = query.where(c.not_after <= expiring_before, live_clause(now))
        if expiring_between is not None:
            query = query.where(c.not_after.between(*expiring_between))
        if name_pattern:
            # Only * and ? are wildcards: a name's own _ or % (LIKE's) matches itself.
            literal = name_pattern.lower()
            for special in ("\\", "%", "_"):
                literal = literal.replace(special, "\\" + special)
            like = "%" + literal.replace("*", "%").replace("?", "_") + "%"
            query = query.where(sa.func.lower(c.names).like(like, escape="\\"))
        if after is not None:
            query = query.where(self._after_clause(after))
        if limit is not None:
            query = query.limit(limit)
        return self._rows(query)

    def _after_clause(self, serial: int) -> sa.ColumnElement[bool]:
        c = certificates.c
        hex_serial = serial_hex(serial)
        with self.database.read() as connection:
            not_after = connection.execute(
                sa.select(c.not_after).where(c.serial == hex_serial)
            ).scalar()
        if not_after is None:
            raise NotFound(
                f"no certificate with serial {hex_serial} in the inventory",
                "--after takes a serial from the previous page of `privca list`",
            )
        # The first term lets the database seek the expiry index instead of scanning.
        return sa.and_(
            c.not_after >= not_after,
            sa.or_(c.not_after > not_after, c.serial > hex_serial),
        )

    def _rows(
        self, query: sa.Select[tuple[object, ...]]
    ) -> Generator[CertificateRecord, None, None]:
        with self.database.read() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=STREAM_CHUNK
            ).execute(query)
            for row in result:
                yield row_to_certificate(row)

    def find_by_name(self, name: str, now: dt.datetime) -> list[CertificateRecord]:
        """Signed certificates whose SAN list contains exactly `name`, newest first
        (an index seek in certificate_names, whatever the size of the inventory)."""
        c = certificates.c
        query = (
            certificates.select()
            .join(certificate_names, certificate_names.c.serial == c.serial)
            .where(
                certificate_names.c.name == name,
                c.status.in_((StoredStatus.ISSUED, StoredStatus.REVOKED)),
                c.tidied_at.is_(None),
            )
            .order_by(c.not_before.desc(), c.serial)
        )
        with self.database.read() as connection:
            rows = connection.execute(query).all()
        return [row_to_certificate(row) for row in rows]

    def count(self) -> int:
        """Every record, signed or not."""
        with self.database.read() as connection:
            value = connection.execute(sa.select(sa.func.count()).select_from(certificates))
            return int(value.scalar() or 0)

    def counts_by_status(self) -> dict[tuple[int, str], int]:
        """(issuer id, stored status) -> number of certificates."""
        c = certificates.c
        with self.database.read() as connection:
            rows = connection.execute(
                sa.select(c.issuer_id, c.status, sa.func.count()).group_by(c.issuer_id, c.status)
            ).all()
        return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}

    def certificate_counts(self, now: dt.datetime) -> list[CertificateCount]:
        """Certificates by issuer, profile and status as operators see it."""
        return certificate_counts(self.database, now)

    def soonest_expiry(
        self, issuer_ids: Iterable[int], now: dt.datetime, skip_profiles: Iterable[str] = ()
    ) -> dict[int, dt.datetime]:
        """Per CA, when its first valid certificate expires."""
        return soonest_expiry(self.database, issuer_ids, now, skip_profiles)

    def valid_by_issuer(
        self, issuer_ids: Iterable[int], now: dt.datetime, skip_profiles: Iterable[str] = ()
    ) -> dict[int, ValidLeaves]:
        """Per CA, how many valid certificates it signed and when the last one expires
        (CAs with none are left out): `find(status="valid")` counted in SQL."""
        return valid_by_issuer(self.database, issuer_ids, now, skip_profiles)

    def expiring(
        self,
        now: dt.datetime,
        until: dt.datetime | None,
        *,
        since: dt.datetime | None = None,
        skip_profiles: Iterable[str] = (),
        limit: int | None = None,
        part: int | None = None,
    ) -> Iterator[ExpiringCertificate]:
        """Certificates nobody renewed with notAfter in [since, until] ((now, until] when
        `since` is None), soonest first, five values each; with `part`, only the live ones
        due by their lifetime (store/expiry.py)."""
        return expiring(
            self.database,
            now,
            until,
            since=since,
            skip_profiles=skip_profiles,
            limit=limit,
            part=part,
        )

    def expiry_counts(
        self,
        now: dt.datetime,
        bounds: Sequence[dt.datetime],
        *,
        since: dt.datetime | None = None,
        skip_profiles: Iterable[str] = (),
    ) -> dict[tuple[int, str], list[int]]:
        """The same certificates counted per (issuer id, profile) between `bounds`."""
        return expiry_counts(self.database, now, bounds, since=since, skip_profiles=skip_profiles)

    def severity_counts(
        self,
        now: dt.datetime,
        warn: dt.timedelta,
        crit: dt.timedelta,
        *,
        since: dt.datetime,
        skip_profiles: Iterable[str] = (),
    ) -> SeverityCounts:
        """`check`'s verdicts on them counted in SQL: expired, critical, warning."""
        return severity_counts(
            self.database, now, warn, crit, since=since, skip_profiles=skip_profiles
        )

    def write_position(self) -> str | None:
        """Where PostgreSQL's WAL stands (it moves with every write), None elsewhere."""
        return write_position(self.database)

    # revocation ---------------------------------------------------------------------------

    def blocked(self, public_key_hashes: Iterable[str]) -> set[str]:
        """Those of `public_key_hashes` barred by a keyCompromise revocation."""
        hashes = list(public_key_hashes)
        if not hashes:
            return set()
        with self.database.read() as connection:
            rows = connection.execute(_BLOCKED, {"hashes": hashes}).all()
        return {str(row[0]) for row in rows}

    def revoked_entries(
        self, issuer_id: int, now: dt.datetime, expired_since: dt.datetime | None = None
    ) -> list[RevokedEntry]:
        """Revoked certificates of one CA that had not expired by `expired_since` (default
        `now`), scheduled revocations that are due included, dated at their scheduled
        time. RFC 5280 3.3 lets an entry go only once a regularly scheduled CRL issued
        after the certificate expired has listed it: a CRL signer passes `now` minus one
        CRL period, so a relying party whose clock is a little behind never sees a
        certificate still valid to it on no list."""
        c = certificates.c
        scheduled = c.status == StoredStatus.ISSUED.value
        revoked_at = sa.case((scheduled, c.revoke_after), else_=c.revoked_at)
        reason = sa.case((scheduled, sa.literal(SCHEDULED_REASON)), else_=c.revocation_reason)
        with self.database.read() as connection:
            rows = connection.execute(
                sa.select(c.serial, revoked_at, reason)
                .where(
                    c.issuer_id == issuer_id,
                    status_clause(CertificateStatus.REVOKED, now),
                    c.not_after > (now if expired_since is None else expired_since),
                )
                .order_by(revoked_at, c.serial)
            ).all()
        return [RevokedEntry(int(r[0], 16), as_utc(r[1]), r[2]) for r in rows]

    def revocation_fingerprints(self) -> dict[int, tuple[int, str]]:
        """Per CA, a value that changes whenever one of its certificates is revoked or its
        revocation reason changes to keyCompromise (a cheap cache key), for every CA in one
        query (one round trip on PostgreSQL)."""
        return self.revocation_state()[0]

    def revocation_state(
        self,
    ) -> tuple[dict[int, tuple[int, str]], dict[int, Revocation]]:
        """The revocation fingerprints (as `revocation_fingerprints`) and, read with them,
        the revocation of each revoked CA certificate by its id: a server answers for the
        certificates under a CA with the CA's revocation its fingerprint was read with."""
        c = certificates.c
        compromised = sa.func.sum(sa.case((c.revocation_reason == KEY_COMPROMISE, 1), else_=0))
        a = authorities.c
        with self.database.read() as connection:
            rows = connection.execute(
                sa.select(c.issuer_id, sa.func.count(), sa.func.max(c.revoked_at), compromised)
                .where(c.status == StoredStatus.REVOKED.value)
                .group_by(c.issuer_id)
            ).all()
            ids = connection.execute(sa.select(a.id)).scalars().all()
            cas = connection.execute(
                sa.select(a.id, a.revoked_at, a.revocation_reason).where(a.revoked_at.is_not(None))
            ).all()
        # A revoked issuing CA changes every CA's value (a rare event): the root that
        # signed it lists it, and the root may be one whose CRL a server signs.
        revoked_cas = f"|ca:{len(cas)}:{max(r[1] for r in cas)}" if cas else ""
        found = {int(r[0]): (int(r[1]), f"{r[2]}|{int(r[3] or 0)}{revoked_cas}") for r in rows}
        fingerprints = {int(i): found.get(int(i), (0, f"None{revoked_cas}")) for i in ids}
        return fingerprints, {int(r[0]): Revocation(as_utc(r[1]), r[2]) for r in cas}

    def crl_states(self) -> list[CrlState]:
        """The last CRLNumber and dates of every CA that has published a CRL."""
        with self.database.read() as connection:
            rows = connection.execute(crl_state.select()).all()
        return [
            CrlState(int(r.issuer_id), int(r.number), as_utc(r.this_update), as_utc(r.next_update))
            for r in rows
        ]

    def change_counter(self) -> ChangeCounter | None:
        """A cheap "has anyone committed since?" probe, or None where the database has none."""
        return self.database.change_counter()

    @contextlib.contextmanager
    def audit_snapshot(self) -> Iterator[AuditSnapshot]:
        """The audit log and the certificate rows as of one moment (see AuditSnapshot)."""
        with self.database.read() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield AuditSnapshot(connection)

    def audit_head(self) -> tuple[int, str]:
        """(entries, hash of the last entry) of the audit log."""
        with self.database.read() as connection:
            return auditlog.head(connection)

    def checkpoint_state(self) -> tuple[int, int]:
        """(audit entries, entries the latest kept checkpoint covers)."""
        with self.database.read() as connection:
            return auditlog.checkpoint_state(connection)

    @property
    def appended_seq(self) -> int:
        """The newest audit entry this process committed (0: none yet)."""
        return self.database.appended_seq

    def latest_checkpoint(self) -> str | None:
        """The latest signed checkpoint of the audit log (its JSON), if any."""
        with self.database.read() as connection:
            return auditlog.latest_checkpoint(connection)

    def any_serial_taken(self, serials: Sequence[int]) -> bool:
        with self.database.read() as connection:
            row = connection.execute(
                sa.select(certificates.c.serial).where(
                    certificates.c.serial.in_([serial_hex(s) for s in serials])
                )
            ).first()
        return row is not None


__all__ = ["InventoryView", "row_to_authority", "row_to_certificate", "row_to_issuer"]
