"""The certificates table in compact form (store/columns.py): a million rows under 1 GB.

- serial, superseded_by, certificate_names.serial and public_key_sha256: hex text ->
  their bytes (half the size in the rows and in every index that holds them);
- on SQLite, the six datetimes: text -> integer microseconds since the epoch;
- der: deflated with the preset dictionary of columns.py;
- subject: NULL where it is "CN=" + the first name (rebuilt when read), so nullable;
- ix_certificates_issuer_status dropped: ix_certificates_issuer_status_not_after starts
  with the same two columns and serves every query it served;
- SQLite: certificate_tally, kept by triggers (store/tally.py), so that /metrics and
  `check` count a million certificates without walking them;
- ix_certificates_revoke_after made partial (revoke_after IS NOT NULL): it only ever
  serves "which scheduled revocations are due", and most rows have none.
- the audit log likewise: audit_log.serial, prev_hash, hash and audit_head.hash -> bytes,
  audit_log.at -> integer microseconds on SQLite; ix_audit_log_at dropped (`audit log
  --since` walks the log in seq order, the backup summary scans once). An entry's hash
  covers its canonical document, built from the hex and the time as read back, so no
  hash changes.

SQLite: making `subject` nullable rebuilds the table, and with foreign keys on the drop
of the old table would cascade into certificate_names; so the name rows are emptied
first and filled again from the JSON names afterwards (as 0007 did). The conversions are
Python functions registered on the migrating connection, one UPDATE per column group.

Revision ID: 0011_compact_store
Revises: 0010_issuers
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011_compact_store"
down_revision = "0010_issuers"
branch_labels = None
depends_on = None

# The conversions are written out here, so that the migration does not change when the
# column types do; DER goes through columns.deflate_der, whose version-1 dictionary is
# fixed forever (a new dictionary would get its own marker beside it).
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
DATETIMES = ("not_before", "not_after", "created_at", "issued_at", "revoked_at",
             "revoke_after", "tidied_at")  # fmt: skip
BATCH = 2000


def _columns_module() -> Any:
    from privca.store import columns

    return columns


def _serial_bytes(text: str | None) -> bytes | None:
    if text is None or isinstance(text, bytes):
        return text
    return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)


def _digest_bytes(text: str | None) -> bytes | None:
    if text is None or isinstance(text, bytes):
        return text
    return bytes.fromhex(text)


def _serial_text(value: bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return bytes(value).hex().lstrip("0") or "0"


def _digest_text(value: bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return bytes(value).hex()


def _micros(text: str | None) -> int | None:
    if text is None or isinstance(text, int):
        return text
    parsed = dt.datetime.fromisoformat(text)
    utc = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    return (utc - EPOCH) // MICROSECOND


def _datetime_text(value: int | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return (EPOCH + value * MICROSECOND).strftime("%Y-%m-%d %H:%M:%S.%f")


def _deflate(der: bytes | None) -> bytes | None:
    return None if der is None else _columns_module().deflate_der(bytes(der))


def _inflate(stored: bytes | None) -> bytes | None:
    return None if stored is None else _columns_module().inflate_der(bytes(stored))


def _register(functions: dict[str, Callable[[Any], Any]]) -> None:
    raw = op.get_bind().connection.driver_connection
    if raw is None:
        raise RuntimeError("the migration needs the open SQLite connection")
    for name, function in functions.items():
        raw.create_function(name, 1, function, deterministic=True)


SQLITE_NAMES_BACKFILL = (
    "INSERT INTO certificate_names (name, serial) "
    "SELECT DISTINCT j.value, c.serial FROM certificates c, json_each(c.names) j "
    "WHERE j.type = 'text'"
)


def _sqlite_upgrade() -> None:
    _register({"privca_serial": _serial_bytes, "privca_digest": _digest_bytes,
               "privca_micros": _micros, "privca_deflate": _deflate})  # fmt: skip
    op.execute("DELETE FROM certificate_names")
    with op.batch_alter_table("certificates", recreate="always") as batch:
        batch.drop_index("ix_certificates_issuer_status")
        batch.alter_column("subject", existing_type=sa.String(1024), nullable=True)
    times = ", ".join(f"{c} = privca_micros({c})" for c in DATETIMES)
    op.execute(
        "UPDATE certificates SET serial = privca_serial(serial), "
        "superseded_by = privca_serial(superseded_by), "
        "public_key_sha256 = privca_digest(public_key_sha256), "
        f"der = privca_deflate(der), {times}"
    )
    op.execute(
        "UPDATE certificates SET subject = NULL "
        "WHERE subject = 'CN=' || json_extract(names, '$[0]')"
    )
    op.execute(SQLITE_NAMES_BACKFILL)
    _create_tally()
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.execute(
        "UPDATE audit_log SET serial = privca_serial(serial), prev_hash = privca_digest(prev_hash),"
        " hash = privca_digest(hash), at = privca_micros(at)"
    )
    op.execute("UPDATE audit_head SET hash = privca_digest(hash)")


def _create_tally() -> None:
    """After the conversions: the triggers count in integer microseconds."""
    from privca.store.tally import SQLITE_BACKFILL, SQLITE_TRIGGERS

    op.create_table(
        "certificate_tally",
        sa.Column("issuer_id", sa.Integer, primary_key=True),
        sa.Column("profile", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("superseded", sa.Boolean, primary_key=True),
        sa.Column("expiry_day", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sqlite_with_rowid=False,
    )
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(SQLITE_BACKFILL)


def _sqlite_downgrade() -> None:
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER certificate_tally_{trigger}")
    op.drop_table("certificate_tally")
    _register({"privca_serial_text": _serial_text, "privca_digest_text": _digest_text,
               "privca_datetime_text": _datetime_text, "privca_inflate": _inflate})  # fmt: skip
    op.execute(
        "UPDATE audit_log SET serial = privca_serial_text(serial),"
        " prev_hash = privca_digest_text(prev_hash), hash = privca_digest_text(hash),"
        " at = privca_datetime_text(at)"
    )
    op.execute("UPDATE audit_head SET hash = privca_digest_text(hash)")
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.execute("DELETE FROM certificate_names")
    op.execute(
        "UPDATE certificates SET subject = 'CN=' || json_extract(names, '$[0]') "
        "WHERE subject IS NULL"
    )
    op.execute("UPDATE certificates SET subject = '' WHERE subject IS NULL")
    times = ", ".join(f"{c} = privca_datetime_text({c})" for c in DATETIMES)
    op.execute(
        "UPDATE certificates SET serial = privca_serial_text(serial), "
        "superseded_by = privca_serial_text(superseded_by), "
        "public_key_sha256 = privca_digest_text(public_key_sha256), "
        f"der = privca_inflate(der), {times}"
    )
    with op.batch_alter_table("certificates", recreate="always") as batch:
        batch.alter_column("subject", existing_type=sa.String(1024), nullable=False)
        batch.create_index("ix_certificates_issuer_status", ["issuer_id", "status"])
    op.execute(SQLITE_NAMES_BACKFILL)


def _names_foreign_key() -> str:
    [foreign_key] = sa.inspect(op.get_bind()).get_foreign_keys("certificate_names")
    return str(foreign_key["name"])


def _rewrite_der(convert: Callable[[bytes | None], bytes | None]) -> None:
    """DER values rewritten in Python, BATCH rows a round trip, in serial order."""
    connection = op.get_bind()
    last = b""
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT serial, der FROM certificates WHERE der IS NOT NULL AND serial > :last "
                "ORDER BY serial LIMIT :n"
            ),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            return
        connection.execute(
            sa.text("UPDATE certificates SET der = :d WHERE serial = :s"),
            [{"s": serial, "d": convert(der)} for serial, der in rows],
        )
        last = rows[-1][0]


def _pg_serial_bytes(column: str) -> str:
    return (
        f"decode(CASE WHEN length({column}) % 2 = 1 THEN '0' || {column} ELSE {column} END, 'hex')"
    )


def _postgresql_upgrade() -> None:
    op.drop_constraint(_names_foreign_key(), "certificate_names", type_="foreignkey")
    op.drop_index("ix_certificates_issuer_status", table_name="certificates")
    for table, column in (("certificates", "serial"), ("certificates", "superseded_by"),
                          ("certificate_names", "serial")):  # fmt: skip
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea USING "
            + _pg_serial_bytes(column)
        )
    op.execute(
        "ALTER TABLE certificates ALTER COLUMN public_key_sha256 TYPE bytea "
        "USING decode(public_key_sha256, 'hex')"
    )
    op.alter_column("certificates", "subject", existing_type=sa.String(1024), nullable=True)
    op.execute(
        "UPDATE certificates SET subject = NULL WHERE subject = 'CN=' || (names::json ->> 0)"
    )
    op.create_foreign_key(
        None, "certificate_names", "certificates", ["serial"], ["serial"], ondelete="CASCADE"
    )
    _rewrite_der(_deflate)
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.execute(
        "ALTER TABLE audit_log ALTER COLUMN serial TYPE bytea USING " + _pg_serial_bytes("serial")
    )
    for table, column in AUDIT_DIGESTS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE bytea USING decode({column}, 'hex')"
        )


AUDIT_DIGESTS = (("audit_log", "prev_hash"), ("audit_log", "hash"), ("audit_head", "hash"))


def _postgresql_downgrade() -> None:
    for table, column in AUDIT_DIGESTS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(64) "
            f"USING encode({column}, 'hex')"
        )
    op.execute(
        "ALTER TABLE audit_log ALTER COLUMN serial TYPE varchar(40) USING "
        "COALESCE(NULLIF(ltrim(encode(serial, 'hex'), '0'), ''), "
        "CASE WHEN serial IS NULL THEN NULL ELSE '0' END)"
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    _rewrite_der(_inflate)
    op.drop_constraint(_names_foreign_key(), "certificate_names", type_="foreignkey")
    op.execute(
        "UPDATE certificates SET subject = COALESCE('CN=' || (names::json ->> 0), '') "
        "WHERE subject IS NULL"
    )
    op.alter_column("certificates", "subject", existing_type=sa.String(1024), nullable=False)
    op.execute(
        "ALTER TABLE certificates ALTER COLUMN public_key_sha256 TYPE varchar(64) "
        "USING encode(public_key_sha256, 'hex')"
    )
    for table, column in (("certificates", "serial"), ("certificates", "superseded_by"),
                          ("certificate_names", "serial")):  # fmt: skip
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(40) USING "
            f"COALESCE(NULLIF(ltrim(encode({column}, 'hex'), '0'), ''), "
            f"CASE WHEN {column} IS NULL THEN NULL ELSE '0' END)"
        )
    op.create_foreign_key(
        None, "certificate_names", "certificates", ["serial"], ["serial"], ondelete="CASCADE"
    )
    op.create_index("ix_certificates_issuer_status", "certificates", ["issuer_id", "status"])


def _revoke_after_index(partial: bool) -> None:
    op.drop_index("ix_certificates_revoke_after", table_name="certificates")
    where = sa.text(SCHEDULED) if partial else None
    op.create_index(
        "ix_certificates_revoke_after",
        "certificates",
        ["revoke_after"],
        sqlite_where=where,
        postgresql_where=where,
    )


SCHEDULED = "revoke_after IS NOT NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        _postgresql_upgrade()
    _revoke_after_index(partial=True)


def downgrade() -> None:
    _revoke_after_index(partial=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_downgrade()
    else:
        _postgresql_downgrade()
