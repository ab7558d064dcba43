"""Named issuers: several issuing CA lineages under one root.

- issuers (name, disabled, is_default, permitted, excluded, profiles, created_at): one row
  per named issuer. Its issuing CA certificates are the `authorities` rows of role issuing
  that carry its name; rotating an issuer keeps the name.
- authorities.issuer: the issuer an issuing CA certificate belongs to (NULL for roots and
  cross-certificates).
- acme_orders.issuer: the issuer whose directory an order came through (finalize issues
  from it; NULL: the default issuer, as for orders made before this revision).
- acme_eab_keys.issuer: an EAB key bound to one issuer (NULL: any).

Existing homes get one issuer, `main`, the default, holding every issuing CA recorded so
far (a single-tier home's `main` is its root). The CA's own name is free text (spaces,
capitals) and not a usable path segment, so a fixed token is used instead.

Revision ID: 0010_issuers
Revises: 0009_audit_log
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0010_issuers"
down_revision = "0009_audit_log"
branch_labels = None
depends_on = None

FIRST_ISSUER = "main"


def upgrade() -> None:
    issuers = op.create_table(
        "issuers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("permitted", sa.Text, nullable=False, server_default="[]"),
        sa.Column("excluded", sa.Text, nullable=False, server_default="[]"),
        sa.Column("profiles", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("authorities") as batch:
        batch.add_column(sa.Column("issuer", sa.String(63), nullable=True))
    with op.batch_alter_table("acme_orders") as batch:
        batch.add_column(sa.Column("issuer", sa.String(63), nullable=True))
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.add_column(sa.Column("issuer", sa.String(63), nullable=True))
    op.bulk_insert(
        issuers,
        [
            {
                "name": FIRST_ISSUER,
                "disabled": False,
                "is_default": True,
                "permitted": "[]",
                "excluded": "[]",
                "profiles": "[]",
                "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0),
            }
        ],
    )
    op.execute(
        sa.text("UPDATE authorities SET issuer = :name WHERE role = 'issuing'").bindparams(
            name=FIRST_ISSUER
        )
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+ and PostgreSQL), not a batch table copy: other
    # tables' foreign keys point at authorities, so SQLite could not drop and rebuild it.
    for table in ("acme_eab_keys", "acme_orders", "authorities"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN issuer")
    op.drop_table("issuers")
