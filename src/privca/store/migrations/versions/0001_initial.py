"""Initial inventory: authorities, certificates, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("common_name", sa.String(255), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=False),
        sa.Column("key_ref", sa.String(1024), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("issuer_id", sa.Integer, sa.ForeignKey("authorities.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("names", sa.Text, nullable=False),
        sa.Column("subject", sa.String(1024), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("public_key_sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"])
    op.create_index("ix_certificates_public_key", "certificates", ["public_key_sha256"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("serial", sa.String(40), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_index("ix_certificates_public_key", "certificates")
    op.drop_index("ix_certificates_not_after", "certificates")
    op.drop_table("certificates")
    op.drop_table("authorities")
