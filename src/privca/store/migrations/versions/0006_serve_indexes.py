"""Indexes for `privca serve`'s /metrics: counts and the soonest expiry per CA are read
from indexes, never by scanning the certificates table.

Revision ID: 0006_serve_indexes
Revises: 0004
"""

from alembic import op

revision = "0006_serve_indexes"
down_revision = "0005_custody"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        # Covers the counts by issuer, profile and status (valid/expired/superseded).
        batch.create_index(
            "ix_certificates_metrics",
            ["issuer_id", "profile", "status", "not_after", "superseded_by"],
        )
        # The soonest expiry of a CA's live certificates: a seek, not a scan.
        batch.create_index(
            "ix_certificates_issuer_status_not_after", ["issuer_id", "status", "not_after"]
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_index("ix_certificates_issuer_status_not_after")
        batch.drop_index("ix_certificates_metrics")
