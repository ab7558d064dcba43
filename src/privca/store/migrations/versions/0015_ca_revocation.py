"""Issuing CA certificates can be revoked: authorities.revoked_at and revocation_reason.

A compromised or withdrawn issuing CA is listed on the CRL of the root that signed it
(`privca issuer revoke`); both columns stay NULL for every CA certificate until then.

Revision ID: 0015_ca_revocation
Revises: 0014_order_expiry_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_ca_revocation"
down_revision = "0014_order_expiry_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite 3.35+ and PostgreSQL), never a batch table copy: other
    # tables' foreign keys point at authorities, so SQLite could not drop and rebuild it.
    op.add_column("authorities", sa.Column("revoked_at", sa.DateTime(timezone=True)))
    op.add_column("authorities", sa.Column("revocation_reason", sa.String(32)))


def downgrade() -> None:
    for column in ("revocation_reason", "revoked_at"):
        op.execute(f"ALTER TABLE authorities DROP COLUMN {column}")
