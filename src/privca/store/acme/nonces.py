"""Replay nonces in the database (privca.acme.repository.NonceRepository).

A row is a nonce handed out and not yet spent; spending deletes it, so of two requests
carrying the same nonce, on any replica, one finds the row. Handing one out writes a row,
and most ACME requests do both (spend the request's nonce, hand out the next), so nonces
were most of the ACME server's writes. They are made cheaper in two ways:

- One transaction spends the request's nonce and records the next (`exchange_nonce`).
- Their commits do not wait for the disk (database.transaction durable=False). Losing a
  nonce handed out costs a client one badNonce and a retry (RFC 8555 §6.5). Losing a
  spend would make that nonce acceptable again, so spends are durable where the database
  outlives the server (PostgreSQL: replicas keep running while it restarts); on SQLite the
  only loss is a power cut or OS crash, which takes the server down with it, and
  `reset_nonces` at every server start drops all nonces, so none is accepted twice.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from privca.store.acme.rows import Queries
from privca.store.schema import acme_nonces


class NonceQueries(Queries):
    def _spends_are_durable(self) -> bool:
        """Whether a spent nonce must reach the disk before the request goes on."""
        return self.engine.dialect.name != "sqlite"

    def add_nonce(self, value: str, expires: dt.datetime) -> None:
        with self.transaction(durable=False) as connection:
            connection.execute(acme_nonces.insert().values(value=value, expires=expires))

    def exchange_nonce(
        self, spent: str | None, issued: str, expires: dt.datetime, now: dt.datetime
    ) -> bool:
        """Spend `spent` (True exactly once per nonce handed out and unexpired, on any
        replica) and record `issued`, in one transaction."""
        durable = spent is not None and self._spends_are_durable()
        with self.transaction(durable=durable) as connection:
            found = None
            if spent is not None:
                found = connection.execute(
                    acme_nonces.delete()
                    .where(acme_nonces.c.value == spent)
                    .returning(acme_nonces.c.expires)
                ).scalar()
            connection.execute(acme_nonces.insert().values(value=issued, expires=expires))
        return found is not None and found > now

    def purge_nonces(self, now: dt.datetime) -> int:
        with self.transaction(durable=False) as connection:
            return connection.execute(
                acme_nonces.delete().where(acme_nonces.c.expires <= now)
            ).rowcount

    def reset_nonces(self, now: dt.datetime) -> int:
        """At server start: on SQLite every nonce goes (a spend may have been lost with
        the machine); elsewhere only the expired ones."""
        if self._spends_are_durable():
            return self.purge_nonces(now)
        with self.transaction() as connection:
            return connection.execute(sa.delete(acme_nonces)).rowcount


__all__ = ["NonceQueries"]
