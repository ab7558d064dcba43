"""The store in a backup: one SQLite file, a consistent copy taken while the CA works.

A SQLite store is copied with SQLite's online backup API: one read transaction, so writers
carry on (WAL) and the copy holds exactly the commits made before it began. A PostgreSQL
store is read table by table inside one REPEATABLE READ transaction (one snapshot for
every table) into a new SQLite file of the same schema revision. Either way the archive
holds the same kind of file, and a restore can load it into SQLite (moved into place) or
into an empty PostgreSQL database (rows copied back in one transaction).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from privca._text import printable
from privca._time import as_utc, isoformat
from privca.errors import InputError, StoreUnavailable
from privca.home import create_private_file
from privca.store.database import (
    SQLITE_BUSY_TIMEOUT_MS,
    SchemaFromNewerPrivca,
    create_engine,
    current_revision,
    driver_message,
    migrate,
    sqlite_url,
    unreachable_hint,
    upgrade_schema,
)
from privca.store.schema import (
    SCHEMA_REVISION,
    audit_log,
    authorities,
    certificates,
    crl_state,
    metadata,
)

ROWS_PER_BATCH = 1000
# Tables whose integer id PostgreSQL draws from a sequence: set past the copied rows.
SEQUENCED = (authorities,)


@dataclass(frozen=True)
class AuthoritySummary:
    id: int
    role: str
    common_name: str
    serial: str
    active: bool
    not_after: dt.datetime
    key_ref: str

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "common_name": self.common_name,
            "serial": self.serial,
            "active": self.active,
            "not_after": isoformat(self.not_after),
            "key_ref": self.key_ref,
        }


@dataclass(frozen=True)
class StoreSummary:
    """What a store holds, as a backup reports it."""

    schema_revision: str | None
    authorities: tuple[AuthoritySummary, ...]
    certificates: int  # rows holding a signed certificate (issued or revoked)
    newest_record: dt.datetime | None
    crl_numbers: dict[int, int]  # authority id -> last CRLNumber

    def document(self) -> dict[str, Any]:
        return {
            "schema_revision": self.schema_revision,
            "authorities": [a.document() for a in self.authorities],
            "certificates": self.certificates,
            "newest_record": isoformat(self.newest_record) if self.newest_record else None,
            "crl_numbers": {str(k): v for k, v in sorted(self.crl_numbers.items())},
        }


def summarize(connection: sa.Connection) -> StoreSummary:
    a = authorities.c
    rows = connection.execute(sa.select(authorities).order_by(a.id)).all()
    found = tuple(
        AuthoritySummary(
            int(r.id),
            r.role,
            r.common_name,
            r.serial,
            bool(r.active),
            as_utc(r.not_after),
            r.key_ref,
        )
        for r in rows
    )
    count = connection.execute(
        sa.select(sa.func.count()).where(certificates.c.der.is_not(None))
    ).scalar_one()
    newest = [
        connection.execute(sa.select(sa.func.max(audit_log.c.at))).scalar(),
        connection.execute(sa.select(sa.func.max(certificates.c.created_at))).scalar(),
    ]
    known = [as_utc(value) for value in newest if value is not None]
    numbers = {
        int(r.issuer_id): int(r.number) for r in connection.execute(crl_state.select()).all()
    }
    return StoreSummary(
        current_revision(connection), found, int(count), max(known, default=None), numbers
    )


def summarize_file(path: Path) -> StoreSummary:
    engine = sa.create_engine(sqlite_url(path), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return summarize(connection)
    finally:
        engine.dispose()


def snapshot_sqlite(source: Path, destination: Path) -> None:
    """Copy a live SQLite store with the online backup API into `destination` (0600), as
    one self-contained file (rollback journal, no -wal beside it)."""
    create_private_file(destination)
    try:
        origin = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            copy = sqlite3.connect(destination)
            try:
                # pages=-1: the whole file in one step, under one read transaction.
                origin.backup(copy, pages=-1)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        finally:
            origin.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(
            f"cannot copy the inventory database '{source}': {exc}",
            "check that the database file is readable and the disk not full",
        ) from exc


def _rows(connection: sa.Connection, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    result = connection.execute(table.select())
    while batch := result.mappings().fetchmany(ROWS_PER_BATCH):
        yield [dict(row) for row in batch]


def copy_rows(source: sa.Connection, destination: sa.Connection) -> None:
    """Every row of privca's tables, parents first (foreign keys hold at every insert),
    into a freshly migrated store. What the migrations seeded there (the first issuer,
    `main`, the audit log's first entry and its head) goes first, children first: the
    source's rows are the truth."""
    for table in reversed(metadata.sorted_tables):
        destination.execute(table.delete())
    for table in metadata.sorted_tables:
        for batch in _rows(source, table):
            destination.execute(table.insert(), batch)


def snapshot_postgresql(url: str, password: str | None, destination: Path) -> None:
    """privca's tables of a PostgreSQL store, read in one REPEATABLE READ transaction, into
    a new SQLite file at the same schema revision."""
    source = create_engine(url, password)
    copy = create_engine(sqlite_url(destination))
    try:
        migrate(copy)
        with source.connect() as reading:
            reading = reading.execution_options(isolation_level="REPEATABLE READ")
            with reading.begin():
                revision = current_revision(reading)
                if revision != SCHEMA_REVISION:
                    raise StoreUnavailable(
                        f"the store is at schema revision {revision!r}, privca at "
                        f"{SCHEMA_REVISION!r}",
                        "run any privca command on the CA (it migrates the store), then "
                        "back up again",
                    )
                with copy.begin() as writing:
                    copy_rows(reading, writing)
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"cannot read the inventory database: {driver_message(exc)}",
            unreachable_hint(exc),
        ) from exc
    finally:
        source.dispose()
        copy.dispose()
    with sqlite3.connect(destination) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()


def upgrade_snapshot(path: Path) -> None:
    """Bring a restored snapshot to this privca's schema revision (InputError for a store
    from a newer privca: its revision is unknown here, and privca never downgrades)."""
    engine = create_engine(sqlite_url(path))
    try:
        migrate(engine)
    except SchemaFromNewerPrivca as exc:
        raise InputError(
            f"the backup's store is at schema revision {printable(exc.revision, 60)!r}, "
            f"unknown to this privca (at {SCHEMA_REVISION!r})",
            "restore it with the privca version that wrote it, or a newer one",
        ) from exc
    except sa.exc.DatabaseError as exc:
        # The migrations from the revision it names do not apply to the tables it holds:
        # the revision was edited (or the tables), which no privca writes.
        raise InputError(
            "the backup's store does not match the schema revision it names (a migration "
            f"from it failed: {driver_message(exc)})",
            "this archive was altered or damaged: restore another backup",
        ) from exc
    finally:
        engine.dispose()


def load_into_postgresql(snapshot: Path, url: str, password: str | None) -> None:
    """Copy a snapshot into an EMPTY PostgreSQL database (InputError if privca's tables are
    there already: a restore never merges into a live store)."""
    target = create_engine(url, password)
    source = sa.create_engine(sqlite_url(snapshot), poolclass=sa.NullPool)
    try:
        with target.connect() as probing:
            names = set(sa.inspect(probing).get_table_names())
        taken = sorted(names & {*metadata.tables, "alembic_version"})
        if taken:
            raise InputError(
                f"the PostgreSQL database already holds privca tables ({', '.join(taken[:3])})",
                "restore into a new, empty database (createdb NAME)",
            )
        # Schema and rows in one transaction (PostgreSQL's DDL is transactional): a copy
        # that fails leaves the database as empty as it was, to restore into again.
        with source.connect() as reading, target.begin() as writing:
            upgrade_schema(writing)
            copy_rows(reading, writing)
            for table in SEQUENCED:
                writing.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                    )
                )
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"cannot write the PostgreSQL database: {driver_message(exc)}",
            unreachable_hint(exc),
        ) from exc
    except sa.exc.DBAPIError as exc:  # a row SQLite kept and PostgreSQL refuses
        raise InputError(
            f"PostgreSQL refused a row of the backup's store: {driver_message(exc)}",
            "this archive was altered or damaged (the database is left empty): restore "
            "another backup",
        ) from exc
    finally:
        target.dispose()
        source.dispose()


__all__ = [
    "AuthoritySummary",
    "StoreSummary",
    "copy_rows",
    "load_into_postgresql",
    "snapshot_postgresql",
    "snapshot_sqlite",
    "summarize",
    "summarize_file",
    "upgrade_snapshot",
]
