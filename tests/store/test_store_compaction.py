"""Migration 0011 (the compact store): rows written before it read back the same after it,
on SQLite and on PostgreSQL, are stored in their compact forms, and come back as they
were when it is undone; the column types convert losslessly at the edges."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from privca.store.auditlog import append, check_chain, read_entries, stored_head
from privca.store.columns import HexBytes, deflate_der, inflate_der
from privca.store.inventory import Store
from privca.store.metrics import _counted, _tallied
from privca.store.schema import audit_head
from privca.x509.encoding import serial_hex
from tests.store.test_store_migrations import _downgrade_to, _index_definitions, _upgrade_to

BEFORE = "0007_names_and_tidy"
NOW = dt.datetime(2026, 12, 2, 6, 30, 15, 123456, tzinfo=dt.UTC)


def _der(name: str, serial: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


# serial -> (names, subject, superseded_by, tidied, status); the serials have an odd and
# an even number of digits, and digits that start with zero once padded.
ROWS = {
    "a1b2c3": (
        ["web.corp.internal", "www.corp.internal"],
        "CN=web.corp.internal",
        None,
        False,
        "issued",
    ),
    "5d8c1e0f4f3e5b9b2f4b8a1a6c3d2e1f": (
        ["web.corp.internal"],
        "CN=web.corp.internal",
        "a1b2c3",
        False,
        "issued",
    ),
    "f": (["other.corp.internal"], "O=Corp, CN=other.corp.internal", None, False, "revoked"),
    "10": ([], "", None, True, "issued"),  # a tombstone
    "abc": (["ops@corp.internal", "192.0.2.7"], "", None, False, "issued"),  # empty subject
    "7fffffffffffffffffffffffffffffff": (
        ["x'\"%_.corp.internal"],
        "CN=x'\"%_.corp.internal",
        None,
        False,
        "pending",
    ),
}


def _sqlalchemy_text(value: dt.datetime) -> str:
    """How SQLAlchemy's DateTime wrote a UTC time on SQLite before 0011."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_legacy_rows(engine: sa.Engine) -> dict[str, bytes | None]:
    sqlite = engine.dialect.name == "sqlite"

    def when(value: dt.datetime) -> object:
        return _sqlalchemy_text(value) if sqlite else value

    ders: dict[str, bytes | None] = {}
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO authorities (id, role, common_name, serial, der, key_ref, active,"
                " not_after, created_at) VALUES (1, 'issuing', 'CN=I', 'ab', :d, 'k', :t, :n, :n)"
            ),
            {"d": b"der", "t": True, "n": when(NOW)},
        )
        for serial, (names, subject, superseded, tidied, status) in ROWS.items():
            der = None if tidied or status == "pending" else _der(names[0], int(serial, 16))
            ders[serial] = der
            connection.execute(
                sa.text(
                    "INSERT INTO certificates (serial, issuer_id, status, profile, names,"
                    " subject, not_before, not_after, public_key_sha256, der, created_at,"
                    " issued_at, revoked_at, revocation_reason, superseded_by, revoke_after,"
                    " tidied_at) VALUES (:s, 1, :status, 'server', :names, :subject, :nb, :na,"
                    " :key, :der, :nb, :nb, :revoked, :reason, :sup, :ra, :tidied)"
                ),
                {
                    "s": serial,
                    "status": status,
                    "names": json.dumps(names),
                    "subject": subject,
                    "nb": when(NOW - dt.timedelta(days=1)),
                    "na": when(NOW + dt.timedelta(days=30 + len(serial))),
                    "key": "" if tidied else hashlib.sha256(serial.encode()).hexdigest(),
                    "der": der,
                    "revoked": when(NOW) if status == "revoked" else None,
                    "reason": "keyCompromise" if status == "revoked" else None,
                    "sup": superseded,
                    "ra": when(NOW + dt.timedelta(hours=5)) if serial == "a1b2c3" else None,
                    "tidied": when(NOW) if tidied else None,
                },
            )
        for serial, (names, *_rest) in ROWS.items():
            for name in dict.fromkeys(names):
                connection.execute(
                    sa.text("INSERT INTO certificate_names (name, serial) VALUES (:n, :s)"),
                    {"n": name, "s": serial},
                )
    return ders


def _raw(engine: sa.Engine, table: str) -> list[tuple[object, ...]]:
    """Every row as stored, its columns in name order (a downgrade may add a column back
    at the end of the table)."""
    with engine.connect() as connection:
        result = connection.execute(sa.text(f"SELECT * FROM {table}"))
        order = sorted(range(len(result.keys())), key=lambda i: list(result.keys())[i])
        return sorted((tuple(row[i] for i in order) for row in result), key=repr)


def test_0011_converts_existing_rows_and_back(store_url: str, backend: str) -> None:
    engine = _upgrade_to(store_url, BEFORE)
    ders = _insert_legacy_rows(engine)
    legacy_certificates = _raw(engine, "certificates")
    legacy_names = _raw(engine, "certificate_names")
    engine.dispose()

    store = Store(store_url)
    try:
        assert store.migrate() == BEFORE
        for serial, (names, subject, superseded, tidied, status) in ROWS.items():
            record = store.get(int(serial, 16))
            assert record is not None, serial
            assert serial_hex(record.serial) == serial
            assert list(record.names) == names
            assert record.subject == subject
            assert record.der == ders[serial]
            assert record.status == status
            assert record.superseded_by == (int(superseded, 16) if superseded else None)
            assert record.public_key_sha256 == (
                "" if tidied else hashlib.sha256(serial.encode()).hexdigest()
            )
            assert record.not_before == NOW - dt.timedelta(days=1)
            assert record.not_after == NOW + dt.timedelta(days=30 + len(serial))
            assert record.not_after.tzinfo == dt.UTC
            assert record.revoked_at == (NOW if status == "revoked" else None)
            assert record.revoke_after == (
                NOW + dt.timedelta(hours=5) if serial == "a1b2c3" else None
            )
        found = {serial_hex(r.serial) for r in store.find_by_name("web.corp.internal", NOW)}
        assert found == {"a1b2c3", "5d8c1e0f4f3e5b9b2f4b8a1a6c3d2e1f"}
        assert [serial_hex(r.serial) for r in store.find_by_name("192.0.2.7", NOW)] == ["abc"]

        with store.engine.connect() as connection:
            raw = connection.execute(
                sa.text(
                    "SELECT serial, der, public_key_sha256, not_after, subject FROM certificates"
                )
            ).all()
            if backend == "sqlite":
                assert {
                    row[0]
                    for row in connection.execute(
                        sa.text("SELECT typeof(serial) FROM certificates")
                    )
                } == {"blob"}
                assert isinstance(raw[0][3], int)  # microseconds since the epoch
                assert _tallied(connection, NOW) == _counted(connection, NOW)
        by_serial = {HexBytes(serial=True).process_result_value(r[0], None): r for r in raw}
        assert len(bytes(by_serial["f"][0])) == 1
        assert len(bytes(by_serial["a1b2c3"][2])) == 32
        for serial, der in ders.items():
            stored = by_serial[serial][1]
            assert (stored is None) == (der is None)
            if der is not None:
                assert len(bytes(stored)) < len(der) - 50, "DER is stored deflated"
        assert by_serial["a1b2c3"][4] is None  # the default subject is not stored
        assert by_serial["f"][4] == "O=Corp, CN=other.corp.internal"
        assert by_serial["abc"][4] == ""

        _downgrade_to(store.engine, BEFORE)
        assert _raw(store.engine, "certificates") == legacy_certificates
        assert _raw(store.engine, "certificate_names") == legacy_names
    finally:
        store.close()


@pytest.mark.parametrize(
    ("serial", "stored"),
    [
        pytest.param("f", b"\x0f", id="one-digit"),
        pytest.param("10", b"\x10", id="two-digits"),
        pytest.param("abc", b"\x0a\xbc", id="odd-is-padded"),
        pytest.param("0", b"\x00", id="zero"),
        pytest.param("7f" + "ff" * 19, b"\x7f" + b"\xff" * 19, id="twenty-octets"),
    ],
)
def test_a_serial_is_stored_as_its_bytes_and_read_back_as_it_was(
    serial: str, stored: bytes
) -> None:
    column = HexBytes(serial=True)
    assert column.process_bind_param(serial, None) == stored
    assert column.process_result_value(stored, None) == serial


def test_a_digest_keeps_its_leading_zeros() -> None:
    digest = "00" + "ab" * 31
    column = HexBytes(serial=False)
    assert column.process_result_value(column.process_bind_param(digest, None), None) == digest


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(_der("host.corp.internal", 0x1234), id="a-leaf"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x01not deflate", id="starts-with-the-marker-byte"),
        pytest.param(bytes(range(256)) * 4, id="incompressible-ish"),
    ],
)
def test_deflated_der_inflates_to_the_same_bytes(der: bytes) -> None:
    if der.startswith(b"\x01"):
        # Not DER (DER starts with 0x30): what deflate_der stores for it must still
        # read back as it was, so such bytes are always stored deflated.
        assert inflate_der(deflate_der(der)) == der
        return
    assert inflate_der(deflate_der(der)) == der


# Events as the store kept them before the audit log (0009 turns them into entries):
# (action, serial or None, detail or None); odd and even digit counts, a unicode note.
EVENTS = [
    ("issued", "a1b2c3", None),
    ("issued", "abc", "renewed from 0x9"),
    ("revoked", "f", "keyCompromise: pass\u00e9 \u2603"),
    ("crl-issued", None, None),
    ("issued", "7fffffffffffffffffffffffffffffff", None),
]
AUDIT_COLUMNS = "seq, at, action, actor, serial, detail, prev_hash, hash"


def _legacy_entry(row: sa.Row[object]) -> tuple[object, ...]:
    """An entry as 0009 stored it (hex text, SQLite's time text), in the record's forms."""
    seq, at, action, actor, serial, detail, prev_hash, digest = tuple(row)
    when = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    assert isinstance(when, dt.datetime)
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return (seq, when, action, actor, serial, detail, prev_hash, digest)


def test_0011_compacts_the_audit_log_without_changing_a_hash(store_url: str, backend: str) -> None:
    engine = _upgrade_to(store_url, BEFORE)
    _insert_legacy_rows(engine)
    sqlite = backend == "sqlite"
    with engine.begin() as connection:
        for minute, (action, serial, detail) in enumerate(EVENTS):
            at = NOW + dt.timedelta(minutes=minute)
            connection.execute(
                sa.text("INSERT INTO events (at, action, serial, detail) VALUES (:a, :x, :s, :d)"),
                {
                    "a": _sqlalchemy_text(at) if sqlite else at,
                    "x": action,
                    "s": serial,
                    "d": detail,
                },
            )
    engine.dispose()
    engine = _upgrade_to(store_url, "0010_issuers")
    with engine.connect() as connection:
        legacy_rows = _raw(engine, "audit_log")
        legacy_head = _raw(engine, "audit_head")
        legacy = [
            _legacy_entry(row)
            for row in connection.execute(
                sa.text(f"SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq")
            )
        ]
    engine.dispose()
    assert len(legacy) == len(EVENTS) + 1  # and audit-log-started
    assert {row[4] for row in legacy} >= {"a1b2c3", "abc", "f", None}

    store = Store(store_url)
    try:
        store.migrate()
        with store.engine.connect() as connection:
            entries = list(read_entries(connection))
            assert [
                (e.seq, e.at, e.action, e.actor, e.serial, e.detail, e.prev_hash, e.hash)
                for e in entries
            ] == legacy
            count, head, chain_break = check_chain(entries)
            assert chain_break is None
            assert (count, head) == stored_head(connection) == (legacy[-1][0], legacy[-1][7])
            assert [e.computed_hash() for e in entries] == [row[7] for row in legacy]
            assert "ix_audit_log_at" not in _index_definitions(store.engine, "audit_log")
            if sqlite:
                kinds = connection.execute(
                    sa.text(
                        "SELECT DISTINCT typeof(at), typeof(serial), typeof(detail),"
                        " typeof(hash) FROM audit_log"
                    )
                ).all()
                assert {tuple(k) for k in kinds} <= {
                    ("integer", "blob", "blob", "blob"),
                    ("integer", "null", "blob", "blob"),
                }
                head_kind = connection.execute(sa.text("SELECT typeof(hash) FROM audit_head"))
                assert head_kind.scalar_one() == "blob"

        # The chain goes on from the migrated head: old and new entries verify together.
        with store.engine.begin() as connection:
            append(connection, NOW + dt.timedelta(hours=1), [("revoked", "0a1b2c3", "x")], "t")
        with store.engine.connect() as connection:
            entries = list(read_entries(connection))
            count, head, chain_break = check_chain(entries)
            assert chain_break is None and count == len(legacy) + 1
            assert entries[-1].serial == "a1b2c3"  # one spelling, as hashed and as read
            assert (count, head) == stored_head(connection)

        with store.engine.begin() as connection:
            connection.execute(sa.text(f"DELETE FROM audit_log WHERE seq = {count}"))
            connection.execute(
                audit_head.update().values(seq=legacy[-1][0], hash=str(legacy[-1][7]))
            )
        _downgrade_to(store.engine, "0010_issuers")
        assert _raw(store.engine, "audit_log") == legacy_rows
        assert _raw(store.engine, "audit_head") == legacy_head
    finally:
        store.close()
