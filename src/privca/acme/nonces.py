"""Replay nonces (RFC 8555 §6.5), kept in the database so that any replica accepts a nonce
that any other issued, exactly once."""

from __future__ import annotations

import datetime as dt
import secrets

from privca._time import utcnow
from privca.store.acme import AcmeStore

NONCE_LIFETIME = dt.timedelta(minutes=30)
PURGE_EVERY = 500


class NonceSource:
    def __init__(self, store: AcmeStore, lifetime: dt.timedelta = NONCE_LIFETIME) -> None:
        self.store = store
        self.lifetime = lifetime
        self._issued = 0

    def new(self) -> str:
        value = secrets.token_urlsafe(24)
        now = utcnow()
        self.store.add_nonce(value, now + self.lifetime)
        self._issued += 1
        if self._issued % PURGE_EVERY == 0:
            self.store.purge_nonces(now)
        return value

    def use(self, value: str | None) -> bool:
        """True once for a nonce this CA issued and that has not expired."""
        if not value or len(value) > 64:
            return False
        return self.store.use_nonce(value, utcnow())


__all__ = ["NONCE_LIFETIME", "NonceSource"]
