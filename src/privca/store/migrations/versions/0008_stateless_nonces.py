"""Nonces that prove themselves: a table of spent nonces and the shared HMAC key replace
the table of nonces handed out (handing one out no longer writes a row).

Revision ID: 0008_stateless_nonces
Revises: 0007_names_and_tidy
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_stateless_nonces"
down_revision = "0007_names_and_tidy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nonces handed out before the upgrade are not worth keeping: a client that sends
    # one gets badNonce and retries with a new one (RFC 8555 §6.5).
    op.drop_index("ix_acme_nonces_expires", "acme_nonces")
    op.drop_table("acme_nonces")
    op.create_table(
        "acme_spent_nonces",
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_acme_spent_nonces_expires", "acme_spent_nonces", ["expires"])
    op.create_table(
        "acme_nonce_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("secret", sa.LargeBinary(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("acme_nonce_keys")
    op.drop_index("ix_acme_spent_nonces_expires", "acme_spent_nonces")
    op.drop_table("acme_spent_nonces")
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_acme_nonces_expires", "acme_nonces", ["expires"])
