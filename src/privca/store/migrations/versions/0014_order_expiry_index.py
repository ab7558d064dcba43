"""An index for the hourly purge of expired orders (AcmeStore.tidy_orders).

Valid orders are kept (an account revokes through them, ARI reads `replaces`), so a fleet
renewing every week piles up millions of them; the purge asked for the unfinished ones
that expired long ago by scanning them all, once an hour, inside a write transaction.
A partial index holds only the orders that are not valid, by expiry: the purge reads
what it deletes and nothing else, and valid orders cost the index nothing.

Revision ID: 0014_order_expiry_index
Revises: 0013_crl_published
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_order_expiry_index"
down_revision = "0013_crl_published"
branch_labels = None
depends_on = None

NAME = "ix_acme_orders_unfinished_expires"
WHERE = sa.text("status != 'valid'")


def upgrade() -> None:
    op.create_index(NAME, "acme_orders", ["expires"], sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index(NAME, table_name="acme_orders")
