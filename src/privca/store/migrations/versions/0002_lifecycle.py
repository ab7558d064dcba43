"""Lifecycle: supersession, CRL numbering, blocked keys.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("superseded_by", sa.String(40), nullable=True))
        batch.create_index("ix_certificates_issuer_status", ["issuer_id", "status"])
    op.create_table(
        "crl_state",
        sa.Column("issuer_id", sa.Integer, sa.ForeignKey("authorities.id"), primary_key=True),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "blocked_keys",
        sa.Column("public_key_sha256", sa.String(64), primary_key=True),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blocked_keys")
    op.drop_table("crl_state")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_index("ix_certificates_issuer_status")
        batch.drop_column("superseded_by")
