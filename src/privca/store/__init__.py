"""The inventory: SQLAlchemy Core tables, queries and Alembic migrations (SQLite or PostgreSQL).

The only package that imports SQLAlchemy. Only the authority layer writes through it
(`Store`, an import-linter contract says so); everything else reads the records of
records.py through `CertificateAuthority.inventory` (an InventoryView, view.py), with
statuses from status.py.
"""

from privca.store.inventory import Store
from privca.store.records import (
    AuthorityRecord,
    CertificateRecord,
    CrlState,
    Intent,
    RevocationOutcome,
    RevokedEntry,
)

__all__ = [
    "AuthorityRecord",
    "CertificateRecord",
    "CrlState",
    "Intent",
    "RevocationOutcome",
    "RevokedEntry",
    "Store",
]
