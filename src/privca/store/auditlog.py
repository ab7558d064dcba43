"""The audit log: a hash chain of every change of state, appended in the change's own
transaction. This module is the one owner of the entry encoding and the hashing.

Encoding (version 1, documented in docs/audit.md): an entry is the JSON object

    {"action": A, "actor": W, "at": T, "detail": D, "prev": P, "seq": N, "serial": S}

written canonically: keys sorted, no whitespace (separators "," and ":"), ASCII only
(everything else as \\uXXXX escapes), T as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), S the
lowercase hex serial or null, D an object, P the previous entry's hash (64 zeros before
the first entry). Its hash is the lowercase hex SHA-256 of the bytes `privca-audit-v1\\n`
followed by that encoding. `detail` is stored as its own canonical JSON text (packed,
store/columns.py, unpacking to the same text), so what is stored is what was hashed.

Each row stores its own hash but not the previous one (migration 0012): an entry's `prev`
is the hash of the row before it, read back from there. A verifier recomputes every hash
anyway; what must be stored apart from the entries is the head (the last hash) and the
signed checkpoints.

Concurrent writers stay linear: the head (sequence number and hash of the last entry) is
one row of `audit_head`, read FOR UPDATE on PostgreSQL and under SQLite's write lock
(BEGIN IMMEDIATE), and updated with each append; `seq` is the primary key besides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from privca._actor import current_actor
from privca._time import as_utc
from privca.errors import EnvironmentRefused
from privca.store.columns import HexBytes, PackedDetail
from privca.store.schema import (
    AUDIT_SERIAL_INDEX,
    SETTINGS_CHANGED,
    audit_checkpoints,
    audit_head,
    audit_log,
    authorities,
    blocked_keys,
    certificates,
)

GENESIS = "0" * 64
DOMAIN = b"privca-audit-v1\n"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Detail = Mapping[str, Any]


def canonical_json(value: Any) -> str:
    """The one canonical JSON text privca hashes and signs."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)


def der_fingerprint(der: bytes) -> str:
    """The SHA-256 of a certificate's DER, as issue and import entries record it."""
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: dt.datetime
    action: str
    actor: str
    serial: str | None
    detail: str  # canonical JSON text of an object
    prev_hash: str  # the hash of the row before ("" when that row is missing)
    hash: str
    # How the stored serial differs from what privca writes (serial_form); None if not.
    serial_form: str | None = None

    def document(self) -> dict[str, Any]:
        """The entry as hashed (without its own hash)."""
        return {
            "action": self.action,
            "actor": self.actor,
            "at": format_time(self.at),
            "detail": _detail_value(self.detail),
            "prev": self.prev_hash,
            "seq": self.seq,
            "serial": self.serial,
        }

    def computed_hash(self) -> str:
        return entry_hash(self.document())

    @property
    def details(self) -> dict[str, Any]:
        value = _detail_value(self.detail)
        return value if isinstance(value, dict) else {}


def _detail_value(text: str) -> Any:
    """The detail object; a text that is not JSON (altered in the store) as the text
    itself, which hashes differently from any object, so the entry shows as altered."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _stored_detail() -> Any:
    """The detail column, read as bytes whatever SQLite's storage class: an SQL text
    function over the packed bytes (someone editing the file) makes TEXT that need not be
    UTF-8, which the driver would refuse to read; as bytes it unpacks to a text whose
    hash does not match."""
    return sa.type_coerce(sa.cast(audit_log.c.detail, sa.LargeBinary), PackedDetail()).label(
        "detail"
    )


_SERIAL = HexBytes(serial=True)


def _stored_serial(column: sa.ColumnElement[Any], dialect: str) -> list[Any]:
    """A serial column read as its stored bytes whatever SQLite's storage class (a TEXT
    need not be UTF-8, which the driver would refuse to read), and "serial_storage": NULL
    when the value is as privca writes it (HexBytes: bytes that do not begin with a zero
    byte) or NULL, otherwise its storage class ("blob" on PostgreSQL's bytea), for
    serial_form. Decided in SQL: nearly every row is as written and costs no Python."""
    data = sa.type_coerce(sa.cast(column, sa.LargeBinary), sa.LargeBinary).label("serial_data")
    raw = sa.type_coerce(column, sa.LargeBinary)
    as_written = sa.func.substr(raw, 1, 1) > sa.literal(b"\x00", sa.LargeBinary)
    storage: sa.ColumnElement[Any] = sa.literal("blob")
    if dialect == "sqlite":
        storage = sa.func.typeof(column)
        as_written = sa.and_(storage == "blob", as_written)
    misstored = sa.case((sa.or_(column.is_(None), as_written), sa.null()), else_=storage)
    return [data, misstored.label("serial_storage")]


def serial_form(data: bytes | None, storage: str | None) -> str | None:
    """How a serial that _stored_serial found not as privca writes it is stored, to name
    in a verdict; None for one that is (storage None). A serial with a leading zero byte
    reads back as the serial without it: a copied row or entry could pass for another."""
    if storage is None or data is None:
        return None
    data = bytes(data)
    if storage != "blob":  # the text as it is (the CLI escapes the verdict), cut short
        text = data[:160].decode("utf-8", "replace")
        return f"as {storage} '{text if len(text) <= 40 else text[:39] + '…'}'"
    if not data:
        return "as no bytes"
    shown = data.hex()
    return f"with a leading zero byte ({shown if len(shown) <= 48 else shown[:47] + '…'})"


def _serial_of(data: bytes | None) -> str | None:
    return None if data is None else _SERIAL.process_result_value(data, None)


def entry_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(DOMAIN + canonical_json(document).encode("ascii")).hexdigest()


def as_detail(detail: Detail | str | None) -> str:
    """The canonical text of a detail: an object, a note ({"note": ...}) or nothing ({})."""
    if detail is None:
        return "{}"
    if isinstance(detail, str):
        return canonical_json({"note": detail})
    return canonical_json(dict(detail))


def _canonical_serial(serial: str | None) -> str | None:
    """The serial as the log hashes it and reads it back from its stored bytes (lowercase,
    no leading zeros), so that a caller's spelling cannot break the chain."""
    return None if serial is None else format(int(serial, 16), "x")


# The statements of every append, built once: a statement built per call costs SQLAlchemy
# a new cache key each time, and every audited change (each issuance) appends.
_READ_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
_LOCK_HEAD = _READ_HEAD.with_for_update()  # PostgreSQL: appenders queue on the head row
_INSERT_ENTRIES = audit_log.insert()
_MOVE_HEAD = (
    audit_head.update()
    .where(audit_head.c.id == 1)
    .values(seq=sa.bindparam("head_seq"), hash=sa.bindparam("head_hash"))
)


def _head(connection: sa.Connection) -> tuple[int, str]:
    query = _LOCK_HEAD if connection.dialect.name == "postgresql" else _READ_HEAD
    row = connection.execute(query).first()
    if row is None:
        # The migration that made the log made its head (0009): a log without one had it
        # deleted, and with it the record of how many entries there were. Starting a new
        # head at the last entry left would erase that evidence for good.
        if head(connection)[0]:
            raise EnvironmentRefused(
                "the audit log's head row is gone while the log holds entries: the store "
                "was altered (its newest entries may have been deleted too); nothing is "
                "written until it is repaired",
                "run `privca audit verify`, then restore the store from a backup (privca restore)",
            )
        connection.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS))
        return 0, GENESIS
    return int(row.seq), str(row.hash)


def chain_entries(
    seq: int,
    previous: str,
    at: dt.datetime,
    actor: str,
    happened: Iterable[tuple[str, str | None, Detail | str | None]],
) -> list[AuditEntry]:
    """The entries that follow the head (seq, previous hash), hashed; nothing written."""
    at = at.astimezone(dt.UTC)
    entries: list[AuditEntry] = []
    for action, given_serial, detail in happened:
        seq += 1
        serial = _canonical_serial(given_serial)
        text = as_detail(detail)
        document = {
            "action": action,
            "actor": actor,
            "at": format_time(at),
            "detail": json.loads(text),
            "prev": previous,
            "seq": seq,
            "serial": serial,
        }
        digest = entry_hash(document)
        entries.append(AuditEntry(seq, at, action, actor, serial, text, previous, digest))
        previous = digest
    return entries


def append(
    connection: sa.Connection,
    now: dt.datetime,
    happened: Iterable[tuple[str, str | None, Detail | str | None]],
    actor: str | None = None,
) -> list[AuditEntry]:
    """Append entries (action, hex serial, detail) after the head, in the caller's
    transaction (which must be a write transaction)."""
    items = list(happened)
    if not items:
        return []
    who = actor if actor is not None else current_actor()
    seq, previous = _head(connection)
    entries = chain_entries(seq, previous, now, who, items)
    connection.execute(
        _INSERT_ENTRIES,
        [
            {
                "seq": e.seq,
                "at": e.at,
                "action": e.action,
                "actor": e.actor,
                "serial": e.serial,
                "detail": e.detail,
                "hash": e.hash,
            }
            for e in entries
        ],
    )
    last = entries[-1]
    connection.execute(_MOVE_HEAD, {"head_seq": last.seq, "head_hash": last.hash})
    return entries


def row_to_entry(row: sa.Row[Any], prev_hash: str) -> AuditEntry:
    """An entry from a row of read_entries (its serial as _stored_serial reads it)."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
    return AuditEntry(
        int(row.seq),
        at.astimezone(dt.UTC),
        row.action,
        row.actor,
        _serial_of(row.serial_data),
        row.detail,
        prev_hash,
        row.hash,
        None if row.serial_storage is None else serial_form(row.serial_data, row.serial_storage),
    )


def _hash_before(connection: sa.Connection, seq: int) -> str:
    """The hash of entry seq - 1: GENESIS before the first, "" if that row is missing."""
    if seq <= 1:
        return GENESIS
    found = connection.execute(
        sa.select(audit_log.c.hash).where(audit_log.c.seq == seq - 1)
    ).scalar_one_or_none()
    return "" if found is None else str(found)


def read_entries(
    connection: sa.Connection,
    *,
    since: dt.datetime | None = None,
    actor: str | None = None,
    serial: str | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> Iterator[AuditEntry]:
    """Entries in seq order, filtered; streamed. Each carries the hash of the row before
    it: carried over from the previous row when the rows follow each other (the whole
    log), read from the row before otherwise (a filter, a gap)."""
    c = audit_log.c
    stored_serial = _stored_serial(c.serial, connection.dialect.name)
    columns: list[Any] = [c.seq, c.at, c.action, c.actor, *stored_serial, _stored_detail(), c.hash]
    filtered = since is not None or actor is not None or serial is not None
    if filtered:
        before = audit_log.alias("before")
        columns.append(
            sa.select(before.c.hash)
            .where(before.c.seq == c.seq - 1)
            .scalar_subquery()
            .label("prev_hash")
        )
    query: sa.Select[Any] = sa.select(*columns).where(c.seq > after_seq).order_by(c.seq)
    if since is not None:
        query = query.where(c.at >= since)
    if actor is not None:
        query = query.where(c.actor == actor)
    if serial is not None:
        canonical = _canonical_serial(serial) or ""
        query = query.where(AUDIT_SERIAL_INDEX.match(c.serial, canonical))
    if limit is not None:
        query = query.limit(limit)
    last_seq: int | None = None
    last_hash = ""
    for row in connection.execution_options(yield_per=2000).execute(query):
        seq = int(row.seq)
        if filtered:
            previous = GENESIS if seq <= 1 else (row.prev_hash or "")
        elif last_seq is not None and seq == last_seq + 1:
            previous = last_hash
        else:
            previous = _hash_before(connection, seq)
        yield row_to_entry(row, previous)
        last_seq, last_hash = seq, str(row.hash)


def head(connection: sa.Connection) -> tuple[int, str]:
    """(entry count, hash of the last entry) as the log itself says."""
    last = connection.execute(
        sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    return (int(last.seq), str(last.hash)) if last is not None else (0, GENESIS)


@dataclass(frozen=True)
class ChainBreak:
    """The first entry where the chain does not hold, and how."""

    seq: int
    problem: str


def check_chain(entries: Iterable[AuditEntry]) -> tuple[int, str, ChainBreak | None]:
    """Walk the chain: (entries seen, head hash, the first break or None).

    Names the first entry that was altered (its hash), deleted (a gap in seq or a prev
    that is not its predecessor's hash) or reordered (seq out of order)."""
    expected_seq = 1
    previous = GENESIS
    count = 0
    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                return (
                    count,
                    previous,
                    ChainBreak(
                        expected_seq,
                        f"entry {expected_seq} is missing (deleted): next is {entry.seq}",
                    ),
                )
            return count, previous, ChainBreak(entry.seq, f"entry {entry.seq} is out of order")
        if entry.computed_hash() != entry.hash:
            return (
                count,
                previous,
                ChainBreak(
                    entry.seq,
                    f"entry {entry.seq} ({entry.action}) was altered: its hash does not match"
                    + (f" (or entry {entry.seq - 1} was rewritten)" if entry.seq > 1 else ""),
                ),
            )
        if entry.prev_hash != previous:
            return (
                count,
                previous,
                ChainBreak(
                    entry.seq,
                    f"entry {entry.seq} ({entry.action}) does not follow entry {entry.seq - 1}: "
                    "an entry was deleted, reordered or rewritten",
                ),
            )
        previous = entry.hash
        count += 1
        expected_seq += 1
    return count, previous, None


def stored_head(connection: sa.Connection) -> tuple[int, str] | None:
    row = connection.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).first()
    return (int(row.seq), str(row.hash)) if row is not None else None


def hashes_at(connection: sa.Connection, seqs: Sequence[int]) -> dict[int, str]:
    if not seqs:
        return {}
    rows = connection.execute(
        sa.select(audit_log.c.seq, audit_log.c.hash).where(audit_log.c.seq.in_(list(seqs)))
    )
    return {int(r.seq): str(r.hash) for r in rows}


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int  # entries covered
    head_hash: str
    at: dt.datetime
    document: str  # the checkpoint file's JSON, as published


def read_checkpoints(connection: sa.Connection) -> list[StoredCheckpoint]:
    c = audit_checkpoints.c
    return [
        StoredCheckpoint(
            int(r.seq),
            r.head_hash,
            (r.at if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC),
            r.document,
        )
        for r in connection.execute(sa.select(audit_checkpoints).order_by(c.seq))
    ]


def latest_checkpoint(connection: sa.Connection) -> str | None:
    c = audit_checkpoints.c
    row = connection.execute(sa.select(c.document).order_by(c.seq.desc()).limit(1)).first()
    return str(row.document) if row is not None else None


def checkpoint_state(connection: sa.Connection) -> tuple[int, int]:
    """(entries in the log, entries the latest checkpoint covers), in one round trip."""
    appended = sa.select(sa.func.coalesce(sa.func.max(audit_log.c.seq), 0)).scalar_subquery()
    covered = sa.select(sa.func.coalesce(sa.func.max(audit_checkpoints.c.seq), 0)).scalar_subquery()
    row = connection.execute(sa.select(appended, covered)).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class CertificateFacts:
    """What `audit verify` checks of one certificate row against the log."""

    serial: str
    status: str
    der: bytes | None
    tidied: bool
    reason: str | None = None  # the revocation reason the row holds
    # How the stored serial differs from what privca writes (serial_form); None if not.
    serial_form: str | None = None
    revoked_at: dt.datetime | None = None  # the revocation date the row holds
    revoke_after: dt.datetime | None = None  # a revocation the row holds scheduled
    # The columns privca finds, lists and publishes a certificate by: each must say what
    # the issue entry recorded (issuer, profile, names, key) or what the DER says (dates).
    issuer_id: int | None = None
    profile: str | None = None
    names: str | None = None  # the JSON text of the row
    key_sha256: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    superseded_by: str | None = None  # the successor's serial, hex


def read_certificate_facts(connection: sa.Connection) -> Iterator[CertificateFacts]:
    c = certificates.c
    stored_serial = _stored_serial(c.serial, connection.dialect.name)
    query = sa.select(
        *stored_serial,
        c.status,
        c.der,
        c.tidied_at,
        c.revocation_reason,
        c.revoked_at,
        c.revoke_after,
        c.issuer_id,
        c.profile,
        c.names,
        c.public_key_sha256,
        c.not_before,
        c.not_after,
        c.superseded_by,
    ).order_by(c.serial)
    for row in connection.execution_options(yield_per=2000).execute(query):
        yield CertificateFacts(
            _serial_of(row.serial_data) or "",
            row.status,
            row.der,
            row.tidied_at is not None,
            row.revocation_reason,
            None
            if row.serial_storage is None
            else serial_form(row.serial_data, row.serial_storage),
            revoked_at=row.revoked_at,
            revoke_after=row.revoke_after,
            issuer_id=row.issuer_id,
            profile=row.profile,
            names=row.names,
            key_sha256=row.public_key_sha256,
            not_before=row.not_before,
            not_after=row.not_after,
            superseded_by=row.superseded_by,
        )


class AuditSnapshot:
    """The log, its checkpoints and the certificate rows as of one moment (one read
    transaction, REPEATABLE READ on PostgreSQL), so a concurrent change cannot look like
    tampering to `audit verify`."""

    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def entries(
        self,
        *,
        since: dt.datetime | None = None,
        actor: str | None = None,
        serial: str | None = None,
    ) -> Iterator[AuditEntry]:
        return read_entries(self._connection, since=since, actor=actor, serial=serial)

    def head(self) -> tuple[int, str]:
        return head(self._connection)

    def stored_head(self) -> tuple[int, str] | None:
        return stored_head(self._connection)

    def checkpoints(self) -> list[StoredCheckpoint]:
        return read_checkpoints(self._connection)

    def certificate_facts(self) -> Iterator[CertificateFacts]:
        return read_certificate_facts(self._connection)

    def barred(self, public_key_hashes: Iterable[str]) -> set[str]:
        """Those of `public_key_hashes` the store bars (blocked_keys)."""
        wanted = sorted(set(public_key_hashes))
        found: set[str] = set()
        column = blocked_keys.c.public_key_sha256
        for start in range(0, len(wanted), 500):
            query = sa.select(column).where(column.in_(wanted[start : start + 500]))
            found.update(str(row[0]) for row in self._connection.execute(query))
        return found

    def name_rows_problem(self) -> str | None:
        """Whether the name index (certificate_names, what `show`, `revoke` and `renew`
        find a certificate by) says what each row's names say, or None: a name row
        deleted hides a certificate from lookups by that name, one added or moved makes a
        name find another certificate. Three index-driven queries, no scan per row."""
        dialect = self._connection.dialect.name
        for problem, query in _NAME_ROW_CHECKS[dialect]:
            try:
                row = self._connection.execute(sa.text(query)).first()
            except sa.exc.DatabaseError:  # JSON functions refuse a names column
                return "a certificate row's names are not a JSON list: the row was altered"
            if row is not None:
                return problem.format(serial=_serial_of(row[0]) or "?")
        return None

    def revoked_authorities(self) -> dict[str, tuple[str, dt.datetime, bool]]:
        """Serial -> (reason, date, still active) of every revoked CA certificate."""
        a = authorities.c
        query = sa.select(a.serial, a.revocation_reason, a.revoked_at, a.active).where(
            a.revoked_at.is_not(None)
        )
        return {
            str(r.serial): (str(r.revocation_reason or ""), as_utc(r.revoked_at), bool(r.active))
            for r in self._connection.execute(query)
        }

    def certificates(self, serials: Iterable[str]) -> dict[str, bytes]:
        """The DER of the given serials that the inventory holds."""
        wanted = sorted(set(serials))
        found: dict[str, bytes] = {}
        c = certificates.c
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = sa.select(c.serial, c.der).where(c.serial.in_(chunk), c.der.is_not(None))
            found.update({r.serial: r.der for r in self._connection.execute(query)})
        return found


# (problem, query) per dialect: each query returns the serial of a row that breaks the
# rule, or nothing. certificate_names is keyed (name, serial): every lookup below is by
# that key or by the certificates' primary key.
_NAME_ROW_CHECKS: dict[str, list[tuple[str, str]]] = {
    "sqlite": [
        (
            "certificate {serial} lists a name the name index does not hold: the index "
            "row was deleted, and lookups by that name miss the certificate",
            "SELECT c.serial FROM certificates c, json_each(c.names) j "
            "WHERE NOT EXISTS (SELECT 1 FROM certificate_names n "
            "WHERE n.name = j.value AND n.serial = c.serial) LIMIT 1",
        ),
        (
            "the name index holds a name for certificate {serial} that its row does not "
            "list: the index was altered",
            "SELECT n.serial FROM certificate_names n LEFT JOIN certificates c "
            "ON c.serial = n.serial WHERE c.serial IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM json_each(c.names) j WHERE j.value = n.name) LIMIT 1",
        ),
    ],
    "postgresql": [
        (
            "certificate {serial} lists a name the name index does not hold: the index "
            "row was deleted, and lookups by that name miss the certificate",
            "SELECT c.serial FROM certificates c, jsonb_array_elements_text(c.names::jsonb) j "
            "WHERE NOT EXISTS (SELECT 1 FROM certificate_names n "
            "WHERE n.name = j AND n.serial = c.serial) LIMIT 1",
        ),
        (
            "the name index holds a name for certificate {serial} that its row does not "
            "list: the index was altered",
            "SELECT n.serial FROM certificate_names n LEFT JOIN certificates c "
            "ON c.serial = n.serial WHERE c.serial IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM jsonb_array_elements_text(c.names::jsonb) j WHERE j = n.name) "
            "LIMIT 1",
        ),
    ],
}


SETTINGS_ACTION = "settings-changed"


def last_settings_sha256(connection: sa.Connection) -> str | None:
    c = audit_log.c
    row = connection.execute(
        sa.select(_stored_detail())
        .where(sa.text(SETTINGS_CHANGED))  # verbatim: the partial index's condition
        .order_by(c.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    details = _detail_value(row.detail)
    value = details.get("sha256") if isinstance(details, dict) else None
    return str(value) if value is not None else None


class AuditWrites:
    """What the audit log records beyond the inventory's own changes (those append their
    entries themselves): host changes, settings, checkpoints."""

    database: Any  # store.database.Database (not imported: it imports this module)

    def record(self, action: str, detail: Detail, now: dt.datetime) -> None:
        """Append one entry for a change outside the store (trust install on this host)."""
        with self.database.change(now) as change:
            change.record(action, None, detail)

    def note_settings(self, sha256: str, now: dt.datetime) -> bool:
        """Append `settings-changed` when privca.toml is not what the log last saw (by
        privca or by hand: noticed when the home is next opened); True if appended."""
        with self.database.read() as connection:
            if last_settings_sha256(connection) == sha256:
                return False
        with self.database.change(now) as change:
            previous = last_settings_sha256(change.connection)  # again, under the lock
            if previous == sha256:
                return False
            change.record(SETTINGS_ACTION, None, {"sha256": sha256, "previous": previous})
        return True

    def add_checkpoint(self, seq: int, head_hash: str, at: dt.datetime, document: str) -> bool:
        """Keep a signed checkpoint; False if one for `seq` is already kept."""
        with self.database.change(at) as change:
            exists = change.execute(
                sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == seq)
            ).first()
            if exists is not None:
                return False
            try:
                # Two replicas over PostgreSQL can both find none and insert the same
                # seq (a renewal storm did: the loser's ACME finalize answered 500).
                with change.connection.begin_nested():
                    change.execute(
                        audit_checkpoints.insert().values(
                            seq=seq, head_hash=head_hash, at=at, document=document
                        )
                    )
            except sa.exc.IntegrityError:
                return False  # the other replica's checkpoint covers the same entries
        return True


__all__ = [
    "DOMAIN",
    "GENESIS",
    "AuditEntry",
    "AuditSnapshot",
    "AuditWrites",
    "CertificateFacts",
    "ChainBreak",
    "StoredCheckpoint",
    "append",
    "as_detail",
    "canonical_json",
    "chain_entries",
    "check_chain",
    "der_fingerprint",
    "entry_hash",
    "format_time",
    "head",
    "parse_time",
    "read_entries",
]
