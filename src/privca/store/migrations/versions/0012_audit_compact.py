"""The audit log in compact form: a million certificates with their entries under 1 GB.

- audit_log.prev_hash dropped: an entry's `prev` is the hash of the row before it, which
  the log keeps anyway (store/auditlog.py reads it from there). The hash of every entry
  still covers its `prev`, so nothing a verifier checks changes; the head row and the
  signed checkpoints keep what must live apart from the entries.
- audit_log.detail packed (store/columns.py, pack_detail): each quoted 64-digit hex string
  as its 32 bytes, the keys every `issued` entry repeats as one byte; it unpacks to the
  exact canonical text that was hashed, so no hash changes.
- ix_audit_log_action (every entry) -> ix_audit_log_settings (the settings changes only:
  the one query by action).
- ix_audit_log_serial and ix_certificates_public_key index the first 8 bytes of the
  serial and of the key hash (schema.PrefixIndex): random values, so 8 bytes seek as well
  as 32, and the query compares the whole value after.

Down again: prev_hash is filled from the row before (64 zero digits before the first
entry), detail unpacked, the full index back.

Revision ID: 0012_audit_compact
Revises: 0011_compact_store
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012_audit_compact"
down_revision = "0011_compact_store"
branch_labels = None
depends_on = None

BATCH = 2000
# (index, table, column): indexed whole before, by the first 8 bytes after
PREFIXED = (
    ("ix_audit_log_serial", "audit_log", "serial"),
    ("ix_certificates_public_key", "certificates", "public_key_sha256"),
)
SETTINGS = "action = 'settings-changed'"
GENESIS = bytes(32)  # 64 zero digits, as the compact store keeps a digest
PREVIOUS = "(SELECT p.hash FROM audit_log p WHERE p.seq = audit_log.seq - 1)"


def _pack(text: Any) -> bytes | None:
    from privca.store.columns import pack_detail

    if text is None:
        return None
    return pack_detail(bytes(text).decode("utf-8") if isinstance(text, bytes) else str(text))


def _unpack(stored: Any) -> str | None:
    from privca.store.columns import unpack_detail

    return None if stored is None else unpack_detail(stored)


def _register(functions: dict[str, Callable[[Any], Any]]) -> None:
    raw = op.get_bind().connection.driver_connection
    if raw is None:
        raise RuntimeError("the migration needs the open SQLite connection")
    for name, function in functions.items():
        raw.create_function(name, 1, function, deterministic=True)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
    else:
        _postgresql_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_downgrade()
    else:
        _postgresql_downgrade()


def _prefix_indexes(prefixed: bool) -> None:
    """Swap the whole-value indexes for prefix ones (prefixed=True) or back."""
    for name, table, column in PREFIXED:
        op.drop_index(name, table_name=table)
        if prefixed:
            op.create_index(name, table, [sa.text(f"substr({column}, 1, 8)")])
        else:
            op.create_index(name, table, [column])


def _sqlite_upgrade() -> None:
    _register({"privca_pack": _pack})
    op.execute("UPDATE audit_log SET detail = privca_pack(detail)")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.drop_column("prev_hash")
        batch.alter_column("detail", existing_type=sa.Text, type_=sa.LargeBinary)
    _settings_index()
    _prefix_indexes(True)


def _sqlite_downgrade() -> None:
    _register({"privca_unpack": _unpack})
    # First: a batch rebuild would drop the expression index (SQLAlchemy does not reflect it)
    _prefix_indexes(False)
    op.drop_index("ix_audit_log_settings", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.LargeBinary, nullable=True))
    op.execute(
        f"UPDATE audit_log SET prev_hash = COALESCE({PREVIOUS}, X'{GENESIS.hex()}'), "
        "detail = privca_unpack(detail)"
    )
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.alter_column("prev_hash", existing_type=sa.LargeBinary, nullable=False)
        batch.alter_column("detail", existing_type=sa.LargeBinary, type_=sa.Text)
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])


def _settings_index() -> None:
    op.create_index(
        "ix_audit_log_settings",
        "audit_log",
        ["seq"],
        sqlite_where=sa.text(SETTINGS),
        postgresql_where=sa.text(SETTINGS),
    )


def _convert_detail(new_type: Any, convert: Callable[[Any], Any]) -> None:
    """PostgreSQL: detail rewritten in Python into a new column, BATCH rows a round trip."""
    connection = op.get_bind()
    op.add_column("audit_log", sa.Column("detail_converted", new_type, nullable=True))
    last = 0
    while True:
        rows = connection.execute(
            sa.text("SELECT seq, detail FROM audit_log WHERE seq > :last ORDER BY seq LIMIT :n"),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            break
        connection.execute(
            sa.text("UPDATE audit_log SET detail_converted = :d WHERE seq = :s"),
            [{"s": seq, "d": convert(detail)} for seq, detail in rows],
        )
        last = rows[-1][0]
    op.drop_column("audit_log", "detail")
    op.alter_column("audit_log", "detail_converted", new_column_name="detail", nullable=False)


def _postgresql_upgrade() -> None:
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_column("audit_log", "prev_hash")
    _convert_detail(sa.LargeBinary, _pack)
    _settings_index()
    _prefix_indexes(True)


def _postgresql_downgrade() -> None:
    _prefix_indexes(False)
    op.drop_index("ix_audit_log_settings", table_name="audit_log")
    op.add_column("audit_log", sa.Column("prev_hash", sa.LargeBinary, nullable=True))
    op.execute(
        f"UPDATE audit_log SET prev_hash = COALESCE({PREVIOUS}, decode('{GENESIS.hex()}', 'hex'))"
    )
    op.alter_column("audit_log", "prev_hash", existing_type=sa.LargeBinary, nullable=False)
    _convert_detail(sa.Text, _unpack)
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
