"""Store: the inventory database with its write operations (the authority layer's only).

Split by concern: reads in view.py (InventoryView, what everyone else gets), and the
writes of issuance (issuance.py), revocation (revocation.py), retention (retention.py)
and CA certificates (authorities.py), each over one `Database` whose `change` is the one
write transaction.

Issuance is two commits: `reserve` records the intent (serial, names, profile) before the
CA key signs, `complete` records the signed certificate before anything is returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from privca.store.auditlog import AuditWrites
from privca.store.database import ChangeCounter, Database
from privca.store.issuance import SERIAL_RETRIES, IssuanceWrites, random_serial
from privca.store.issuers import IssuerWrites
from privca.store.records import (
    AuthorityRecord,
    CertificateRecord,
    CrlState,
    Intent,
    RevocationOutcome,
    RevokedEntry,
)
from privca.store.retention import RetentionWrites
from privca.store.revocation import KEY_COMPROMISE, RevocationWrites, reason_change
from privca.store.view import InventoryView
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.store.acme.rows import Sealer


class Store(
    InventoryView, IssuanceWrites, RevocationWrites, RetentionWrites, IssuerWrites, AuditWrites
):
    """One inventory database, read and written. Safe to use from several processes."""

    def __init__(
        self, url: str, *, password: str | None = None, sealer: Sealer | None = None
    ) -> None:
        """`password` is the PostgreSQL password, never part of `url` (check_store_url);
        `sealer` seals the secrets the store keeps (store.acme.Sealer), if any."""
        super().__init__(Database(url, password))
        self.sealer = sealer

    @property
    def url(self) -> str:
        return self.database.url

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    def migrate(self) -> str | None:
        """Bring the schema up to date; returns the revision it had before."""
        return self.database.migrate()

    def close(self) -> None:
        self.database.close()

    def view(self) -> InventoryView:
        """The same database, read only."""
        return InventoryView(self.database)


__all__ = [
    "KEY_COMPROMISE",
    "SERIAL_RETRIES",
    "AuthorityRecord",
    "CertificateRecord",
    "ChangeCounter",
    "CrlState",
    "Intent",
    "RevocationOutcome",
    "RevokedEntry",
    "Store",
    "random_serial",
    "reason_change",
    "serial_hex",
]
