"""On SQLite, the revocation counter (migration 0013) also moves when a CA certificate is
revoked (authorities.revoked_at or revocation_reason written: `privca issuer revoke`).

A server's OCSP cache hits are checked against that counter alone while no certificate's
revocation changed; a CA revocation made by another process did not move it, so the
answers cached as "good" for what the revoked CA signed were served until the next poll
of the store. The statements are written out here, so that this migration does not
change if the module's do.

Revision ID: 0016_ca_revocation_clock
Revises: 0015_ca_revocation
"""

from alembic import op

revision = "0016_ca_revocation_clock"
down_revision = "0015_ca_revocation"
branch_labels = None
depends_on = None

SQLITE_UPGRADE = (
    "CREATE TRIGGER revocation_clock_authorities "
    "AFTER UPDATE OF revoked_at, revocation_reason ON authorities "
    "WHEN OLD.revoked_at IS NOT NEW.revoked_at "
    "OR OLD.revocation_reason IS NOT NEW.revocation_reason "
    "BEGIN UPDATE revocation_clock SET tick = tick + 1 WHERE id = 1; END",
)
SQLITE_DOWNGRADE = ("DROP TRIGGER IF EXISTS revocation_clock_authorities",)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
