"""The newest signed CRL of each CA, kept in the store beside its CRL number.

- crl_state.published_number, published_der: the CRL (DER) with the highest CRLNumber
  any replica has signed and published for this CA; a replica serves it instead of its
  own when it is newer, so a client that asks each replica in turn never sees the
  number go backwards;
- crl_state.published_basis: the revocation fingerprint of the CA (store/view.py) the
  CRL was built against, so a replica knows whether it still lists every revocation.

All three are NULL until a server publishes; `privca crl` leaves them alone.

Revision ID: 0012_crl_published
Revises: 0011_compact_store
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_crl_published"
down_revision = "0011_compact_store"
branch_labels = None
depends_on = None

COLUMNS = ("published_number", "published_der", "published_basis")


def upgrade() -> None:
    with op.batch_alter_table("crl_state") as batch:
        batch.add_column(sa.Column("published_number", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("published_der", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("published_basis", sa.String(255), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): nothing refers to these columns.
    for column in COLUMNS:
        op.execute(f"ALTER TABLE crl_state DROP COLUMN {column}")
