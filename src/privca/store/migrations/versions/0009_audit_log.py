"""The audit log replaces the events table.

- audit_log: every change of state as a hash chain (store/auditlog.py owns the encoding);
  audit_head: its head, one row, locked by each append; audit_checkpoints: signed
  statements of (entry count, head hash, time).
- Every row of `events` becomes an entry, in order, by actor `migration`. An `issued` or
  `imported` event gets the SHA-256 of its certificate's DER as the store holds it now
  (trust on first use: the log cannot vouch for what happened before it existed). A last
  entry, `audit-log-started`, names the certificates already tidied, so `audit verify`
  finds every tombstone explained. Then `events` is dropped: one record, one owner.

Revision ID: 0009_audit_log
Revises: 0008_stateless_nonces
"""

import datetime as dt
import hashlib

import sqlalchemy as sa
from alembic import op

from privca.store import auditlog

revision = "0009_audit_log"
down_revision = "0008_stateless_nonces"
branch_labels = None
depends_on = None

ISSUE_ACTIONS = ("issued", "imported")


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "audit_log",
        sa.Column("seq", big, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_serial", "audit_log", ["serial"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", big, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    connection = op.get_bind()
    fingerprints = {
        str(serial): hashlib.sha256(der).hexdigest()
        for serial, der in connection.execute(
            sa.text("SELECT serial, der FROM certificates WHERE der IS NOT NULL")
        )
    }
    rows = connection.execute(
        sa.text("SELECT at, action, serial, detail FROM events ORDER BY id")
    ).all()
    now = dt.datetime.now(dt.UTC)
    entries: list[auditlog.AuditEntry] = []
    for at, action, serial, detail in rows:
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at)
        document: dict[str, object] = {"migrated": True}
        if detail is not None:
            document["note"] = detail
        if action in ISSUE_ACTIONS and serial in fingerprints:
            document["fingerprint"] = fingerprints[serial]
        entries += _chain(entries, _aware(at), [(action, serial, document)])
    tidied = [
        str(r[0])
        for r in connection.execute(
            sa.text("SELECT serial FROM certificates WHERE tidied_at IS NOT NULL ORDER BY serial")
        )
    ]
    started = {"events": len(rows), "tidied": tidied}
    entries += _chain(entries, now, [("audit-log-started", None, started)])
    _insert(connection, entries)
    op.drop_table("events")


def _chain(
    before: list[auditlog.AuditEntry],
    at: dt.datetime,
    happened: list[tuple[str, str | None, auditlog.Detail | str | None]],
) -> list[auditlog.AuditEntry]:
    seq, previous = (before[-1].seq, before[-1].hash) if before else (0, auditlog.GENESIS)
    return auditlog.chain_entries(seq, previous, at, "migration", happened)


def _insert(connection: sa.Connection, entries: list[auditlog.AuditEntry]) -> None:
    """Rows in this revision's own column forms (hex text; on SQLite, the time as the
    text SQLAlchemy's DateTime wrote), not the schema's: 0011 converts them later."""
    sqlite = connection.dialect.name == "sqlite"
    connection.execute(
        sa.text(
            "INSERT INTO audit_log (seq, at, action, actor, serial, detail, prev_hash, hash)"
            " VALUES (:seq, :at, :action, :actor, :serial, :detail, :prev_hash, :hash)"
        ),
        [
            {
                "seq": e.seq,
                "at": e.at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else e.at,
                "action": e.action,
                "actor": e.actor,
                "serial": e.serial,
                "detail": e.detail,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
    )
    seq, head = (entries[-1].seq, entries[-1].hash) if entries else (0, auditlog.GENESIS)
    connection.execute(
        sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)"),
        {"seq": seq, "hash": head},
    )


def downgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    op.drop_table("audit_log")
