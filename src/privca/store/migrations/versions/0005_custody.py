"""Custody: EAB HMAC keys sealed at rest, EAB keys bound to a number of accounts.

- acme_eab_keys.hmac_key (plaintext) becomes plaintext_hmac_key, nullable: it only holds
  keys created before this revision, until privca seals them (it needs private/eab.key,
  which a migration cannot reach: CertificateAuthority.open does it right after migrating,
  and any use of such a key does it too). New keys are only ever written sealed.
- acme_eab_keys.sealed_hmac_key: AES-256-GCM under private/eab.key (keys/sealing.py).
- acme_eab_keys.max_accounts: how many accounts the key may create (default 1). Keys from
  before keep what they already bound and may bind no more.
- acme_accounts.eab_kid gets an index: accounts are listed and revoked per key.

Downgrading keeps the rows, but keys sealed since cannot be read by older code.

Revision ID: 0005_custody
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_custody"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.alter_column(
            "hmac_key",
            new_column_name="plaintext_hmac_key",
            existing_type=sa.String(128),
            nullable=True,
        )
        batch.add_column(sa.Column("sealed_hmac_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("max_accounts", sa.Integer, nullable=False, server_default="1"))
    eab = sa.table(
        "acme_eab_keys", sa.column("accounts", sa.Integer), sa.column("max_accounts", sa.Integer)
    )
    op.execute(eab.update().where(eab.c.accounts > 1).values(max_accounts=eab.c.accounts))
    op.create_index("ix_acme_accounts_eab_kid", "acme_accounts", ["eab_kid"])


def downgrade() -> None:
    op.drop_index("ix_acme_accounts_eab_kid", table_name="acme_accounts")
    with op.batch_alter_table("acme_eab_keys") as batch:
        batch.drop_column("max_accounts")
        batch.drop_column("sealed_hmac_key")
        batch.alter_column(
            "plaintext_hmac_key",
            new_column_name="hmac_key",
            existing_type=sa.String(128),
            nullable=True,
        )
