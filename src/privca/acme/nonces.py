"""Replay nonces (RFC 8555 §6.5), kept by the repository so that any replica accepts a
nonce that any other handed out, exactly once.

Every answer to a JWS POST carries the next nonce, so a request's nonce is spent and the
next one recorded together (`exchange`): one write per request instead of two.
"""

from __future__ import annotations

import datetime as dt
import secrets

from privca._time import utcnow
from privca.acme.repository import NonceRepository

NONCE_LIFETIME = dt.timedelta(minutes=30)
PURGE_EVERY = 500
MAX_NONCE_LENGTH = 64  # what the repository keeps; longer ones were never handed out


class NonceSource:
    def __init__(
        self, repository: NonceRepository, lifetime: dt.timedelta = NONCE_LIFETIME
    ) -> None:
        self.repository = repository
        self.lifetime = lifetime
        self._issued = 0

    def new(self) -> str:
        """A nonce for an answer that spends none (newNonce, a request refused early)."""
        value, now = self._next()
        self.repository.add_nonce(value, now + self.lifetime)
        return value

    def exchange(self, spent: str | None) -> tuple[bool, str]:
        """Spend the request's nonce and hand out the next: (accepted, next nonce).
        Accepted is True once for a nonce this CA handed out and that has not expired."""
        value, now = self._next()
        if not spent or len(spent) > MAX_NONCE_LENGTH:
            spent = None
        accepted = self.repository.exchange_nonce(spent, value, now + self.lifetime, now)
        return accepted, value

    def start(self) -> None:
        """When a server starts: see NonceRepository.reset_nonces."""
        self.repository.reset_nonces(utcnow())

    def _next(self) -> tuple[str, dt.datetime]:
        now = utcnow()
        self._issued += 1
        if self._issued % PURGE_EVERY == 0:
            self.repository.purge_nonces(now)
        return secrets.token_urlsafe(24), now


__all__ = ["NONCE_LIFETIME", "NonceSource"]
