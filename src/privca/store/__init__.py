"""The inventory: SQLAlchemy Core tables, queries and Alembic migrations (SQLite or PostgreSQL).

The only package that imports SQLAlchemy.
"""

from privca.store.inventory import AuthorityRecord, CertificateRecord, Intent, Store

__all__ = ["AuthorityRecord", "CertificateRecord", "Intent", "Store"]
