"""What an archive's contents must be before anything is restored from it.

The manifest's hashes are unkeyed: whoever can write an archive can change a member and
seal it again (build_archive is anyone's to call). So the restored home is checked for
what privca itself would have written, on the staged copy, before it is put in place or
loaded into PostgreSQL. `privca restore` runs these checks and `privca backup verify`
runs them through restore: the one place that decides what an archive may hold.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from privca._text import printable
from privca.audit.verify import verify_audit_of_store
from privca.backup.archive import Manifest
from privca.backup.snapshot import StoreSummary, summarize_file, upgrade_snapshot
from privca.errors import CheckFailed, InputError
from privca.store.database import Database, create_engine, migrate, sqlite_url
from privca.store.schema import authorities, certificates
from privca.store.view import InventoryView
from privca.x509.encoding import pem_certificate_ders, serial_hex

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


@contextlib.contextmanager
def _snapshot_connection(snapshot: Path) -> Iterator[sa.Connection]:
    """One connection to the staged store, its engine gone with it."""
    engine = sa.create_engine(sqlite_url(snapshot), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _authority_rows(snapshot: Path) -> list[tuple[int, bytes, str]]:
    with _snapshot_connection(snapshot) as connection:
        rows = connection.execute(
            sa.select(authorities.c.id, authorities.c.der, authorities.c.role)
        ).all()
    return [(int(r[0]), bytes(r[1]), str(r[2])) for r in rows]


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
    for _, der, role in _authority_rows(snapshot):
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


def _check_integrity(snapshot: Path) -> None:
    """SQLite's own check, then privca's: a store with no schema revision is not one
    (a 0-byte file passes SQLite's check, and migrating it made an empty store)."""
    connection = sqlite3.connect(snapshot)
    try:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        tables = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'"
        ).fetchone()[0]
    except sqlite3.Error as exc:
        raise CheckFailed(f"the backup's store is not a readable database: {exc}") from exc
    finally:
        connection.close()
    if verdict != "ok":
        raise CheckFailed(f"the backup's store fails SQLite's integrity check: {verdict}")
    if not tables:
        raise CheckFailed(
            "the backup's store is empty or not privca's (it has no schema revision)", ALTERED
        )


def _check_audit(snapshot: Path) -> None:
    """What an edited store cannot fake is its own audit log's agreement."""
    database = Database(sqlite_url(snapshot))
    try:
        verdict = verify_audit_of_store(InventoryView(database))
    finally:
        database.close()
    if not verdict.intact:
        raise CheckFailed(f"the backup's audit log does not hold: {verdict.problem}", ALTERED)


def _check_summary(summary: StoreSummary, manifest: Manifest) -> None:
    """A store that holds no root is no CA (every command after the restore failed), and
    one whose certificate count is not the manifest's is not the store it describes."""
    if not any(a.role == "root" for a in summary.authorities):
        raise CheckFailed("the backup's store holds no root CA", ALTERED)
    expected = manifest.summary.get("certificates")
    if expected != summary.certificates:
        raise CheckFailed(
            f"the backup's store holds {summary.certificates} certificates, "
            f"its manifest says {printable(str(expected), 40)}",
            ALTERED,
        )


def _signed_rows(snapshot: Path) -> Iterator[tuple[str, int, bytes]]:
    with _snapshot_connection(snapshot) as connection:
        result = connection.execute(
            sa.select(certificates.c.serial, certificates.c.issuer_id, certificates.c.der)
            .where(certificates.c.der.is_not(None))
            .order_by(certificates.c.serial)
        )
        yield from ((r[0], int(r[1]), bytes(r[2])) for r in result)


def check_certificates(snapshot: Path) -> int:
    """Every stored certificate parses and is signed by the CA the store says issued it;
    returns how many were checked."""
    issuers = {
        key: x509.load_der_x509_certificate(der) for key, der, _ in _authority_rows(snapshot)
    }
    checked = 0
    for serial, issuer_id, der in _signed_rows(snapshot):
        try:
            certificate = x509.load_der_x509_certificate(der)
            certificate.verify_directly_issued_by(issuers[issuer_id])
        except (ValueError, TypeError, KeyError, InvalidSignature) as exc:
            raise CheckFailed(
                f"certificate {serial} in the backup does not verify against its CA: {exc}",
                ALTERED,
            ) from exc
        if serial_hex(certificate.serial_number) != serial:
            raise CheckFailed(f"certificate {serial} in the backup holds another serial", ALTERED)
        checked += 1
    return checked


@dataclass(frozen=True)
class CheckedStore:
    summary: StoreSummary
    certificates_verified: int


def check_staged(home: Path, snapshot: Path, manifest: Manifest) -> CheckedStore:
    """Every check of a staged restore (`home`, and its store at `snapshot` migrated to
    this privca's revision on the way), in order; the first failure raises."""
    _check_integrity(snapshot)
    upgrade_snapshot(snapshot)
    check_schema(snapshot)
    summary = summarize_file(snapshot)
    _check_summary(summary, manifest)
    _check_audit(snapshot)
    verified = check_certificates(snapshot)
    check_certificate_files(home, snapshot)
    return CheckedStore(summary, verified)


__all__ = [
    "CLIENT_FILES",
    "CheckedStore",
    "check_certificate_files",
    "check_certificates",
    "check_schema",
    "check_staged",
    "privca_schema",
]
