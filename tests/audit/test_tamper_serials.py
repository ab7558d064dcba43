"""A serial stored in a form privca never writes: `audit verify` names the row or entry.

privca stores a serial as its bytes without a leading zero byte (store/columns.py
HexBytes), and reads one back with leading zeros dropped. So a row copied under
X'00' || serial reads as the original's serial: were rows merely counted, the copy could
stand in for another certificate's deleted row. A serial stored as TEXT (anyone with the
file can write one) may not be hex, nor UTF-8. Each is a verdict (exit 1) naming what was
changed, its text escaped, never an internal error. Edited with the real `sqlite3` tool on
a copy of a real home, and over SQLAlchemy on a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from privca.audit.verify import verify_audit
from privca.authority import CertificateAuthority
from tests.audit.conftest import copy_home, query, sqlite3_cli
from tests.audit.test_tamper import Tampering, seq_of, serial_of, stored_serial
from tests.conftest import Cli
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


def _copy_row_under(db: Path, serial: str, new_serial_sql: str) -> str:
    """INSERT a copy of a certificate row under another serial expression."""
    columns = [str(r[1]) for r in query(db, "PRAGMA table_info(certificates)")]
    rest = ", ".join(c for c in columns if c != "serial")
    return (
        f"INSERT INTO certificates (serial, {rest}) SELECT {new_serial_sql}, {rest} "
        f"FROM certificates WHERE serial = {serial}"
    )


def _set_row_serial(db: Path, value_sql: str) -> list[str]:
    """Replace the serial of the second issued certificate's row (and of its names)."""
    victim = stored_serial(db, "issued", 1)
    return [
        "PRAGMA foreign_keys=OFF",
        f"UPDATE certificate_names SET serial = {value_sql} WHERE serial = {victim}",
        f"UPDATE certificates SET serial = {value_sql} WHERE serial = {victim}",
    ]


ROW = "a certificate row has its serial stored"
CASES = [
    # The reviewer's case: B's row deleted, a copy of A's under X'00' || serial(A).
    Tampering(
        "deleted-row-masked-by-zero-prefixed-copy",
        lambda db: [
            f"DELETE FROM certificate_names WHERE serial = {stored_serial(db, 'issued', 2)}",
            f"DELETE FROM certificates WHERE serial = {stored_serial(db, 'issued', 2)}",
            _copy_row_under(db, stored_serial(db, "issued", 0), "CAST(X'00' || serial AS BLOB)"),
        ],
        lambda db: f"{ROW} with a leading zero byte (00{stored_serial(db, 'issued', 0)[2:-1]})",
    ),
    Tampering(
        "zero-prefixed-copy-of-a-row",
        lambda db: [
            _copy_row_under(db, stored_serial(db, "issued", 1), "CAST(X'00' || serial AS BLOB)")
        ],
        lambda db: f"{ROW} with a leading zero byte",
    ),
    Tampering(
        "row-serial-not-hex-text",
        lambda db: _set_row_serial(db, "'zz'"),
        lambda db: f"{ROW} as text 'zz'",
    ),
    Tampering(
        "row-serial-hostile-text",
        lambda db: _set_row_serial(db, "char(27) || '[2J' || char(8238)"),
        lambda db: f"{ROW} as text '\\x1b[2J\\u202e'",
    ),
    Tampering(
        "row-serial-text-not-utf8",
        lambda db: _set_row_serial(db, "CAST(X'ff41' AS TEXT)"),
        lambda db: f"{ROW} as text '\ufffdA'",
    ),
    Tampering(
        "row-serial-same-hex-as-text",
        lambda db: _set_row_serial(db, f"'{serial_of(db, 'issued', 1)}'"),
        lambda db: f"{ROW} as text '{serial_of(db, 'issued', 1)}'",
    ),
    Tampering(  # the column's TEXT affinity (it was a VARCHAR before 0011) makes it '5'
        "row-serial-number",
        lambda db: _set_row_serial(db, "5"),
        lambda db: f"{ROW} as text '5'",
    ),
    Tampering(
        "row-serial-no-bytes",
        lambda db: _set_row_serial(db, "X''"),
        lambda db: f"{ROW} as no bytes",
    ),
    # An entry's serial with a zero byte in front reads back the same, so its hash holds.
    Tampering(
        "entry-serial-zero-prefixed",
        lambda db: [
            "UPDATE audit_log SET serial = CAST(X'00' || serial AS BLOB) "
            f"WHERE seq = {seq_of(db, 'issued', 1)}"
        ],
        lambda db: (
            f"entry {seq_of(db, 'issued', 1)} (issued) has its serial stored with a leading "
            "zero byte"
        ),
    ),
    Tampering(
        "entry-serial-not-hex-text",
        lambda db: [f"UPDATE audit_log SET serial = 'zz' WHERE seq = {seq_of(db, 'issued', 1)}"],
        lambda db: f"entry {seq_of(db, 'issued', 1)} (issued) has its serial stored as text 'zz'",
    ),
    Tampering(
        "entry-serial-text-not-utf8",
        lambda db: [
            f"UPDATE audit_log SET serial = CAST(X'ff' AS TEXT) WHERE seq = {seq_of(db, 'revoked')}"
        ],
        lambda db: f"entry {seq_of(db, 'revoked')} (revoked) has its serial stored as text",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_misstored_serial_is_named(
    run_cli: Cli, audited_home: Path, tmp_path: Path, case: Tampering
) -> None:
    home = copy_home(audited_home, tmp_path / "tampered")
    database = home / "privca.db"
    expected = case.expected(database)  # type: ignore[operator]
    sqlite3_cli(database, *case.statements(database))  # type: ignore[operator]
    result = run_cli("audit", "verify", home=home)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "TAMPERED" in result.stderr
    assert expected in result.stderr, result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert "internal error" not in result.stderr


def test_audit_log_shows_a_text_serial_as_hex(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    """`audit log` reads a TEXT serial as its bytes: not echoed, and no decode crash."""
    home = copy_home(audited_home, tmp_path / "tampered")
    database = home / "privca.db"
    seq = seq_of(database, "issued", 1)
    sqlite3_cli(
        database,
        f"UPDATE audit_log SET serial = char(27) || '[2J' WHERE seq = {seq}",
        f"UPDATE audit_log SET serial = CAST(X'ff' AS TEXT) WHERE seq = {seq + 1}",
    )
    result = run_cli("audit", "log", home=home)
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "1b5b324a" in result.stdout  # ESC [ 2 J, as hex


def _stored(serial: int) -> bytes:
    digits = f"{serial:x}"
    return bytes.fromhex(digits.zfill(len(digits) + len(digits) % 2))


@pytest.mark.postgres
def test_a_zero_prefixed_copy_is_named_on_postgresql(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
) -> None:
    ca = make_ca(store_url=postgres_url)
    kept, gone = (ca.issue([f"{n}.corp.internal"]) for n in ("kept", "gone"))
    assert verify_audit(ca).intact
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            columns = [
                str(r[0])
                for r in connection.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'certificates' AND column_name <> 'serial'"
                    )
                )
            ]
            rest = ", ".join(columns)
            victim, donor = (_stored(i.certificate.serial_number) for i in (gone, kept))
            connection.execute(
                sa.text("DELETE FROM certificate_names WHERE serial = :s"), {"s": victim}
            )
            connection.execute(sa.text("DELETE FROM certificates WHERE serial = :s"), {"s": victim})
            connection.execute(
                sa.text(
                    f"INSERT INTO certificates (serial, {rest}) SELECT '\\x00'::bytea || serial, "
                    f"{rest} FROM certificates WHERE serial = :s"
                ),
                {"s": donor},
            )
        verdict = verify_audit(ca)
        assert not verdict.intact
        assert "a certificate row has its serial stored with a leading zero byte (00" in str(
            verdict.problem
        )
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM certificates WHERE get_byte(serial, 0) = 0"))
            connection.execute(
                sa.text(
                    "UPDATE audit_log SET serial = '\\x00'::bytea || serial "
                    "WHERE seq = (SELECT max(seq) FROM audit_log WHERE serial = :s)"
                ),
                {"s": donor},
            )
        verdict = verify_audit(ca)
        assert verdict.problem is not None
        assert "has its serial stored with a leading zero byte" in verdict.problem
    finally:
        engine.dispose()
