"""The inventory: SQLAlchemy Core tables, queries and Alembic migrations (SQLite or PostgreSQL).

The only package that imports SQLAlchemy. Only the authority layer writes through it
(`inventory.Store`, and an import-linter contract in pyproject.toml says so); everything
else reads the values of records.py through `CertificateAuthority.inventory` (an
InventoryView, view.py), with statuses from status.py. This file imports nothing, so that
importing the package is never a way around that contract.
"""
