"""Names in their own indexed table, tombstones for tidied certificates.

- certificate_names (name, serial): one row per name of each certificate, filled from the
  JSON `certificates.names` of every existing row, so that looking a certificate up by
  name is an index seek instead of a LIKE over every row.
  The table is its primary key (WITHOUT ROWID on SQLite), with no other index: tidy
  deletes by (name, serial), so bytes per certificate stay low.
- certificates.tidied_at: `privca tidy` keeps a tombstone of a long-expired certificate
  (serial, issuer, status, dates, revocation) and drops the rest.

Revision ID: 0007_names_and_tidy
Revises: 0006_serve_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_names_and_tidy"
down_revision = "0006_serve_indexes"
branch_labels = None
depends_on = None

# Each certificate's names from its JSON list, once each (a list may repeat a name).
BACKFILL = {
    "sqlite": (
        "INSERT INTO certificate_names (name, serial) "
        "SELECT DISTINCT j.value, c.serial FROM certificates c, json_each(c.names) j "
        "WHERE j.type = 'text'"
    ),
    "postgresql": (
        "INSERT INTO certificate_names (name, serial) "
        "SELECT DISTINCT j.value, c.serial FROM certificates c, "
        "json_array_elements_text(c.names::json) AS j(value)"
    ),
}


def upgrade() -> None:
    op.create_table(
        "certificate_names",
        sa.Column("name", sa.String(1024), primary_key=True),
        sa.Column(
            "serial",
            sa.String(40),
            sa.ForeignKey("certificates.serial", ondelete="CASCADE"),
            primary_key=True,
        ),
        sqlite_with_rowid=False,
    )
    op.execute(BACKFILL[op.get_bind().dialect.name])
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("tidied_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("tidied_at")
    op.drop_table("certificate_names")
