"""External account binding keys (RFC 8555 §7.3.4) and the accounts they created.

The HMAC key must be kept to verify bindings, so it is kept sealed (keys/sealing.py): a
copy of the database or a dump does not reveal it. Keys made before migration 0005 were
stored in plaintext until privca seals them (`seal_plaintext_keys`).
"""

from __future__ import annotations

import base64
import datetime as dt

import sqlalchemy as sa

from privca.acme.repository import AccountRow, EabBindingRefused, EabKeyRow
from privca.acme.state import account_revoked
from privca.errors import KeyUnavailable
from privca.store import auditlog
from privca.store.acme.rows import ACCOUNTS, EAB_KEYS, Queries, Sealer, moved
from privca.store.schema import acme_accounts, acme_eab_keys


class EabKeyQueries(Queries):
    def _require_sealer(self) -> Sealer:
        if self.sealer is None:
            raise KeyUnavailable(
                "EAB keys need the CA home's sealing key, and this store was opened without it",
                "open the store through CertificateAuthority.open",
            )
        return self.sealer

    def add_eab_key(self, key: EabKeyRow, secret: bytes) -> None:
        """Record a new EAB key; `secret` (the HMAC key) is stored sealed, never as is."""
        sealed = self._require_sealer().seal(secret, key.kid)
        values = {**EAB_KEYS.dump(key), "revoked_at": None, "accounts": 0}
        with self.transaction() as connection:
            connection.execute(
                acme_eab_keys.insert().values(
                    **values, sealed_hmac_key=sealed, plaintext_hmac_key=None
                )
            )
            detail = {"kid": key.kid, "label": key.label, "profile": key.profile}
            auditlog.append(connection, key.created_at, [("eab-key-created", None, detail)])

    def eab_key(self, kid: str) -> EabKeyRow | None:
        return self.first(EAB_KEYS, acme_eab_keys.c.kid == kid)

    def eab_keys(self) -> list[EabKeyRow]:
        return self.all(EAB_KEYS, acme_eab_keys.select().order_by(acme_eab_keys.c.created_at))

    def eab_secret(self, kid: str) -> bytes | None:
        """The HMAC key of `kid`, unsealed; None if there is no such key.

        A key from before sealing existed is sealed now, on its first use."""
        row = self.first_record(
            sa.select(acme_eab_keys.c.sealed_hmac_key, acme_eab_keys.c.plaintext_hmac_key).where(
                acme_eab_keys.c.kid == kid
            )
        )
        if row is None:
            return None
        if row.sealed_hmac_key is not None:
            return self._require_sealer().unseal(row.sealed_hmac_key, kid)
        if row.plaintext_hmac_key is None:
            return None
        secret = _b64url_decode(row.plaintext_hmac_key)
        if self.sealer is not None:
            self.seal_plaintext_keys()
        return secret

    def seal_plaintext_keys(self) -> int:
        """Seal the EAB keys stored in plaintext before migration 0005 and erase the
        plaintext; returns how many. On SQLite the file is then rebuilt (VACUUM) and the
        WAL emptied, so no freed page or old frame of the file still holds them."""
        sealer = self._require_sealer()
        with self.transaction() as connection:
            rows = connection.execute(
                sa.select(acme_eab_keys.c.kid, acme_eab_keys.c.plaintext_hmac_key).where(
                    acme_eab_keys.c.plaintext_hmac_key.is_not(None)
                )
            ).all()
            for kid, plaintext in rows:
                connection.execute(
                    acme_eab_keys.update()
                    .where(acme_eab_keys.c.kid == kid)
                    .values(
                        sealed_hmac_key=sealer.seal(_b64url_decode(plaintext), kid),
                        plaintext_hmac_key=None,
                    )
                )
        if rows and self.engine.dialect.name == "sqlite":
            self._rebuild_sqlite_file()
        return len(rows)

    def _rebuild_sqlite_file(self) -> None:
        raw = self.engine.raw_connection()  # autocommit: VACUUM refuses a transaction
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()

    @staticmethod
    def _take_eab_account(connection: sa.Connection, kid: str) -> None:
        """One more account for key `kid`, or EabBindingRefused (revoked, or none left)."""
        taken = connection.execute(
            acme_eab_keys.update()
            .where(
                acme_eab_keys.c.kid == kid,
                acme_eab_keys.c.revoked_at.is_(None),
                acme_eab_keys.c.accounts < acme_eab_keys.c.max_accounts,
            )
            .values(accounts=acme_eab_keys.c.accounts + 1)
        ).rowcount
        if taken != 1:
            raise EabBindingRefused(kid)

    def accounts_of_eab_keys(self) -> dict[str, list[AccountRow]]:
        """The accounts each EAB key created, by key id."""
        accounts = self.all(
            ACCOUNTS,
            acme_accounts.select()
            .where(acme_accounts.c.eab_kid.is_not(None))
            .order_by(acme_accounts.c.created_at),
        )
        found: dict[str, list[AccountRow]] = {}
        for account in accounts:
            if account.eab_kid is not None:
                found.setdefault(account.eab_kid, []).append(account)
        return found

    def revoke_eab_key(self, kid: str, now: dt.datetime) -> tuple[bool, int]:
        """Revoke the key and, in the same transaction, every valid account it created
        (state.account_revoked: RFC 8555 §7.1.6 for server-initiated deactivation).
        Returns whether the key was revoked now and how many accounts were."""
        with self.transaction() as connection:
            changed = connection.execute(
                acme_eab_keys.update()
                .where(acme_eab_keys.c.kid == kid, acme_eab_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            accounts = connection.execute(
                moved(acme_accounts, account_revoked()).where(acme_accounts.c.eab_kid == kid)
            ).rowcount
            if changed == 1:
                detail = {"kid": kid, "accounts_revoked": accounts}
                auditlog.append(connection, now, [("eab-key-revoked", None, detail)])
        return changed == 1, accounts


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = ["EabKeyQueries"]
