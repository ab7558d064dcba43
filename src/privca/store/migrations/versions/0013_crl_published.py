"""The newest signed CRL of each CA, kept in the store beside its CRL number.

- crl_state.published_number, published_der: the CRL (DER) with the highest CRLNumber
  any replica has signed and published for this CA; a replica serves it instead of its
  own when it is newer, so a client that asks each replica in turn never sees the
  number go backwards;
- crl_state.published_basis: the revocation fingerprint of the CA (store/view.py) the
  CRL was built against, so a replica knows whether it still lists every revocation.

All three are NULL until a server publishes; `privca crl` leaves them alone.

On SQLite also `revocation_clock`, a one-row counter that triggers bump whenever a
certificate's revocation could change (store/revocation.py): what a server's OCSP cache
hits check instead of re-reading every revocation after each commit. The statements are
written out here, so that this migration does not change if the module's do.

Revision ID: 0013_crl_published
Revises: 0012_audit_compact
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_crl_published"
down_revision = "0012_audit_compact"
branch_labels = None
depends_on = None

COLUMNS = ("published_number", "published_der", "published_basis")
_BUMP = "UPDATE revocation_clock SET tick = tick + 1 WHERE id = 1;"
SQLITE_UPGRADE = (
    "CREATE TABLE revocation_clock (id INTEGER PRIMARY KEY CHECK (id = 1), tick INTEGER NOT NULL)",
    "INSERT INTO revocation_clock (id, tick) VALUES (1, 0)",
    "CREATE TRIGGER revocation_clock_update "
    "AFTER UPDATE OF status, revoked_at, revocation_reason ON certificates "
    "WHEN (OLD.status IS NOT NEW.status AND 'revoked' IN (OLD.status, NEW.status)) "
    "OR OLD.revoked_at IS NOT NEW.revoked_at "
    f"OR OLD.revocation_reason IS NOT NEW.revocation_reason BEGIN {_BUMP} END",
    "CREATE TRIGGER revocation_clock_insert AFTER INSERT ON certificates "
    f"WHEN NEW.status = 'revoked' BEGIN {_BUMP} END",
    "CREATE TRIGGER revocation_clock_delete AFTER DELETE ON certificates "
    f"WHEN OLD.status = 'revoked' BEGIN {_BUMP} END",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER IF EXISTS revocation_clock_update",
    "DROP TRIGGER IF EXISTS revocation_clock_insert",
    "DROP TRIGGER IF EXISTS revocation_clock_delete",
    "DROP TABLE IF EXISTS revocation_clock",
)


def upgrade() -> None:
    with op.batch_alter_table("crl_state") as batch:
        batch.add_column(sa.Column("published_number", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("published_der", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("published_basis", sa.String(255), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
    # Plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): nothing refers to these columns.
    for column in COLUMNS:
        op.execute(f"ALTER TABLE crl_state DROP COLUMN {column}")
