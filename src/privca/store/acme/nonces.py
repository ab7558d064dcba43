"""Replay nonces in the database (privca.acme.repository.NonceRepository).

A nonce proves itself (acme/nonces.py), so handing one out writes nothing. What the store
keeps is the HMAC key every replica signs and checks nonces with, and the nonces spent:
spending inserts one row, and the primary key lets exactly one insert of a value succeed,
on any replica, however many race.

A spent nonce's commit does not wait for the disk where the database goes down only with
the server (SQLite: a power cut or OS crash); a new key at every server start then makes
every nonce from before unacceptable, so one spent and lost cannot be accepted twice.
Where the database outlives a replica (PostgreSQL) a spend is durable and the key kept,
so the other replicas' nonces stay good while one restarts.
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa

from privca.acme.repository import AccountRow
from privca.store.acme.rows import ACCOUNTS, Queries, Statements
from privca.store.schema import acme_nonce_keys, acme_spent_nonces

NONCE_KEY_BYTES = 32
_KEY_ROW = 1


class NonceQueries(Queries):
    def _spends_are_durable(self) -> bool:
        """Whether a spent nonce must reach the disk before the request goes on."""
        return self.engine.dialect.name != "sqlite"

    def nonce_key(self, now: dt.datetime, *, starting: bool = False) -> bytes:
        """The shared HMAC key (made if there is none). `starting`: a server starts, and
        where spends are not durable the key is replaced (see the module's docstring)."""
        renew = starting and not self._spends_are_durable()
        with self.transaction() as connection:
            if renew:
                connection.execute(acme_nonce_keys.delete())
                # Spent rows of the old key can never match a nonce of the new one.
                connection.execute(acme_spent_nonces.delete())
            else:
                found = connection.execute(
                    sa.select(acme_nonce_keys.c.secret).where(acme_nonce_keys.c.id == _KEY_ROW)
                ).scalar()
                if found is not None:
                    return bytes(found)
            secret = secrets.token_bytes(NONCE_KEY_BYTES)
            # The write lock (SQLite) or the primary key (PostgreSQL) picks one key when
            # replicas start together; the others read the winner's below.
            connection.execute(
                _insert_ignoring_duplicates(connection.dialect, acme_nonce_keys).values(
                    id=_KEY_ROW, secret=secret, created=now
                )
            )
            return bytes(
                connection.execute(
                    sa.select(acme_nonce_keys.c.secret).where(acme_nonce_keys.c.id == _KEY_ROW)
                ).scalar_one()
            )

    def spend_nonce(self, value: str, expires: dt.datetime, key: bytes) -> bool:
        """Record `value` as spent: True the first time, on any replica, if `key` (what
        it was checked with) is still the shared key; False otherwise."""
        with self.writes(durable=self._spends_are_durable()) as statements:
            return _spend(statements, self.engine.dialect, value, expires, key)

    def spend_nonce_reading_account(
        self, value: str, expires: dt.datetime, key: bytes, account_id: str
    ) -> tuple[bool, AccountRow | None]:
        """spend_nonce, and the account `account_id` read in the same transaction: a
        request signed with a 'kid' needs both, and one transaction costs half of two."""
        with self.writes(durable=self._spends_are_durable()) as statements:
            if not _spend(statements, self.engine.dialect, value, expires, key):
                return False, None
            return True, statements.by_id(ACCOUNTS, account_id)

    def purge_nonces(self, now: dt.datetime) -> int:
        """Forget spent nonces that have expired (no one can spend them again)."""
        with self.transaction(durable=False) as connection:
            return connection.execute(
                acme_spent_nonces.delete().where(acme_spent_nonces.c.expires <= now)
            ).rowcount


# Every ACME POST spends a nonce: its statement is built once per dialect (see rows.py,
# _BY_ID), and is one statement, not a key read and an insert: the row goes in only while
# the key the nonce was checked with is still the shared one (a server that started since,
# on SQLite, renewed it). The key compared is the server's own, never the client's input.
_SPEND: dict[str, sa.Insert] = {}


def _spend(
    statements: Statements, dialect: sa.Dialect, value: str, expires: dt.datetime, key: bytes
) -> bool:
    statement = _SPEND.get(dialect.name)
    if statement is None:
        columns = acme_spent_nonces.c
        current = sa.exists().where(
            acme_nonce_keys.c.id == _KEY_ROW, acme_nonce_keys.c.secret == sa.bindparam("key")
        )
        spent = sa.select(
            sa.bindparam("value", type_=columns.value.type),
            sa.bindparam("expires", type_=columns.expires.type),
        ).where(current)
        statement = (
            _insert_ignoring_duplicates(dialect, acme_spent_nonces)
            .from_select(["value", "expires"], spent)
            .returning(columns.value)
        )
        _SPEND[dialect.name] = statement
    parameters = {"value": value, "expires": expires, "key": key}
    return statements.first(statement, parameters) is not None


def _insert_ignoring_duplicates(dialect: sa.Dialect, table: sa.Table) -> sa.Insert:
    """INSERT that does nothing when the primary key exists."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


__all__ = ["NONCE_KEY_BYTES", "NonceQueries"]
