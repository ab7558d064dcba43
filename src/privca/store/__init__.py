"""The inventory: SQLAlchemy Core tables, queries and Alembic migrations (SQLite or PostgreSQL).

The only package that imports SQLAlchemy.
"""

from privca.store.inventory import (
    AuthorityRecord,
    CertificateRecord,
    CrlState,
    Intent,
    RevocationOutcome,
    RevokedEntry,
    Store,
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
