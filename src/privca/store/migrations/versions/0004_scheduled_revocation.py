"""Scheduled revocation: a renewed certificate revoked after a grace period.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("revoke_after", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_certificates_revoke_after", ["revoke_after"])


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_index("ix_certificates_revoke_after")
        batch.drop_column("revoke_after")
