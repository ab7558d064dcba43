"""What an archive's contents must be before anything is restored from it.

The manifest's hashes are unkeyed: whoever can write an archive can change a member and
seal it again (build_archive is anyone's to call). So the restored home is checked for
what privca itself would have written, on the staged copy, before it is put in place or
loaded into PostgreSQL. `privca restore` runs these checks and `privca backup verify`
runs them through restore: the one place that decides what an archive may hold.
"""

from __future__ import annotations

import functools
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from privca._text import printable
from privca.errors import InputError
from privca.store.database import create_engine, migrate, sqlite_url
from privca.store.schema import authorities
from privca.x509.encoding import pem_certificate_ders

ALTERED = "this archive was altered after it was written: restore another backup"

# (type, name) -> (table, sql) of every object in sqlite_master.
SchemaObjects = dict[tuple[str, str], tuple[str, str | None]]

# The certs/ files a client installs or is handed, with the roles their certificates
# must have in the store (None: any CA certificate of the store).
CLIENT_FILES: dict[str, frozenset[str] | None] = {
    "root.crt": frozenset({"root"}),
    "roots.pem": frozenset({"root"}),
    "previous-root.crt": frozenset({"root"}),
    "issuing.crt": frozenset({"issuing"}),
    "chain.pem": None,
    "cross.pem": None,
}


def _schema_objects(path: Path) -> SchemaObjects:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        connection.close()
    return {(str(r[0]), str(r[1])): (str(r[2]), r[3]) for r in rows}


@functools.cache
def privca_schema() -> SchemaObjects:
    """What privca's migrations create in a new SQLite store (the same, text for text,
    as in a store made at any older revision and migrated since)."""
    with tempfile.TemporaryDirectory(prefix="privca-schema-") as scratch:
        path = Path(scratch) / "privca.db"
        engine = create_engine(sqlite_url(path))
        try:
            migrate(engine)
        finally:
            engine.dispose()
        return _schema_objects(path)


def check_schema(snapshot: Path) -> None:
    """The store (migrated to this privca's revision) holds exactly the tables, indexes,
    triggers and views privca's migrations make. Anything else runs inside every later
    command: a trigger can move each new revocation to another CA's CRL, or undo it."""
    found, expected = _schema_objects(snapshot), privca_schema()
    for key in sorted(found.keys() | expected.keys()):
        kind, name = key
        what = f"{'an' if kind == 'index' else 'a'} {kind} {printable(name, 60)!r}"
        if key not in expected:
            problem = f"holds {what} that privca's schema does not create"
        elif key not in found:
            problem = f"lacks privca's {kind} {printable(name, 60)!r}"
        elif found[key] != expected[key]:
            problem = f"has {what} that differs from privca's"
        else:
            continue
        raise InputError(f"the backup's store {problem}", ALTERED)


def _authority_ders(snapshot: Path) -> Iterator[tuple[str, bytes]]:
    engine = sa.create_engine(sqlite_url(snapshot), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(authorities.c.role, authorities.c.der)).all()
    finally:
        engine.dispose()
    return ((str(r[0]), bytes(r[1])) for r in rows)


def _file_certificates(data: bytes) -> list[bytes] | None:
    """The DER of each certificate in a PEM file; None when it holds anything else (a
    block of another kind, damaged base64, DER): nothing privca writes there."""
    ders = pem_certificate_ders(data)
    if data.count(b"-----BEGIN ") != len(ders) or (data.strip() and not ders):
        return None
    return ders


def check_certificate_files(home: Path, snapshot: Path) -> None:
    """Every certificate in the certs/ files clients install is a CA certificate of the
    store, in the role the file is for: a root.crt swapped for another CA's root would be
    installed as the trust anchor, and nothing else in the archive would say so."""
    by_role: dict[str, set[bytes]] = {}
    for role, der in _authority_ders(snapshot):
        by_role.setdefault(role, set()).add(der)
    for name, roles in CLIENT_FILES.items():
        path = home / "certs" / name
        if not path.is_file():
            continue
        allowed = set().union(*(d for r, d in by_role.items() if roles is None or r in roles))
        ders = _file_certificates(path.read_bytes())
        if ders is None or any(der not in allowed for der in ders):
            kind = "CA certificate" if roles is None else " or ".join(sorted(roles)) + " CA"
            raise InputError(
                f"the backup's certs/{name} holds a certificate that is not a {kind} of its "
                "store (a client installing it would trust another CA)",
                ALTERED,
            )


__all__ = ["CLIENT_FILES", "check_certificate_files", "check_schema", "privca_schema"]
