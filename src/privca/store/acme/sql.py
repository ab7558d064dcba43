"""ACME state: accounts, orders, authorizations, challenges, nonces and EAB keys.

The storage interface privca.acme uses (it never imports SQLAlchemy). Everything lives in
the CA's one database, so several `privca serve` replicas over PostgreSQL share accounts,
orders and nonces: a nonce issued by one replica is accepted once, by any replica.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from privca._time import as_utc
from privca.errors import KeyUnavailable, StoreUnavailable
from privca.store.database import WRITE_OPTIONS, driver_message
from privca.store.schema import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_nonces,
    acme_orders,
)


class Sealer(Protocol):
    """What seals secrets at rest (privca.keys.sealing.SealingKey); the store never holds
    the key, only sealed values."""

    def seal(self, secret: bytes, context: str) -> str: ...

    def unseal(self, sealed: str, context: str) -> bytes: ...


class EabBindingRefused(Exception):
    """The EAB key cannot bind another account: it is revoked or all its accounts are used."""


@dataclass(frozen=True)
class AccountRow:
    id: str
    thumbprint: str
    jwk: str
    status: str
    contact: tuple[str, ...]
    eab_kid: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class OrderRow:
    id: str
    account_id: str
    status: str
    profile: str
    identifiers: tuple[tuple[str, str], ...]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    expires: dt.datetime
    error: dict[str, Any] | None
    certificate_serial: str | None
    replaces: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class AuthorizationRow:
    id: str
    order_id: str
    account_id: str
    identifier_type: str
    identifier_value: str
    wildcard: bool
    status: str
    expires: dt.datetime


@dataclass(frozen=True)
class ChallengeRow:
    id: str
    authorization_id: str
    type: str
    token: str
    status: str
    validated: dt.datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class EabKeyRow:
    """An EAB key without its secret (see AcmeStore.eab_secret)."""

    kid: str
    label: str
    profile: str | None  # the only ACME profile its accounts may order, when set
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    accounts: int  # accounts it has created
    max_accounts: int = 1


def _opt_time(value: dt.datetime | None) -> dt.datetime | None:
    return as_utc(value) if value is not None else None


def _opt_json(value: str | None) -> Any:
    return json.loads(value) if value else None


def _account(row: sa.Row) -> AccountRow:
    return AccountRow(
        id=row.id,
        thumbprint=row.thumbprint,
        jwk=row.jwk,
        status=row.status,
        contact=tuple(json.loads(row.contact)),
        eab_kid=row.eab_kid,
        created_at=as_utc(row.created_at),
    )


def _order(row: sa.Row) -> OrderRow:
    return OrderRow(
        id=row.id,
        account_id=row.account_id,
        status=row.status,
        profile=row.profile,
        identifiers=tuple((i["type"], i["value"]) for i in json.loads(row.identifiers)),
        not_before=_opt_time(row.not_before),
        not_after=_opt_time(row.not_after),
        expires=as_utc(row.expires),
        error=_opt_json(row.error),
        certificate_serial=row.certificate_serial,
        replaces=row.replaces,
        created_at=as_utc(row.created_at),
    )


def _authorization(row: sa.Row) -> AuthorizationRow:
    return AuthorizationRow(
        id=row.id,
        order_id=row.order_id,
        account_id=row.account_id,
        identifier_type=row.identifier_type,
        identifier_value=row.identifier_value,
        wildcard=bool(row.wildcard),
        status=row.status,
        expires=as_utc(row.expires),
    )


def _challenge(row: sa.Row) -> ChallengeRow:
    return ChallengeRow(
        id=row.id,
        authorization_id=row.authorization_id,
        type=row.type,
        token=row.token,
        status=row.status,
        validated=_opt_time(row.validated),
        error=_opt_json(row.error),
    )


def _eab(row: sa.Row) -> EabKeyRow:
    return EabKeyRow(
        kid=row.kid,
        label=row.label,
        profile=row.profile,
        created_at=as_utc(row.created_at),
        revoked_at=_opt_time(row.revoked_at),
        accounts=row.accounts,
        max_accounts=row.max_accounts,
    )


class AcmeStore:
    """Queries over the ACME tables of one inventory database (shares the Store's engine)."""

    def __init__(self, engine: sa.Engine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        self.sealer = sealer

    @classmethod
    def of(cls, store: Any) -> AcmeStore:
        """The ACME view of a `privca.store.Store` (with the sealer of its CA home)."""
        return cls(store.engine, getattr(store, "sealer", None))

    def _require_sealer(self) -> Sealer:
        if self.sealer is None:
            raise KeyUnavailable(
                "EAB keys need the CA home's sealing key, and this store was opened without it",
                "open the store through CertificateAuthority.open",
            )
        return self.sealer

    @contextmanager
    def _begin(self, write: bool = True) -> Iterator[sa.Connection]:
        """A transaction; writes take SQLite's write lock up front (BEGIN IMMEDIATE)."""
        try:
            with self.engine.connect() as connection:
                if write:
                    connection.execution_options(**WRITE_OPTIONS)
                with connection.begin():
                    yield connection
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(
                f"the inventory database is unavailable: {driver_message(exc)}"
            ) from exc

    def _read(self) -> Any:
        return self._begin(write=False)

    # nonces ---------------------------------------------------------------------------

    def add_nonce(self, value: str, expires: dt.datetime) -> None:
        with self._begin() as connection:
            connection.execute(acme_nonces.insert().values(value=value, expires=expires))

    def use_nonce(self, value: str, now: dt.datetime) -> bool:
        """Consume a nonce: True exactly once per issued, unexpired nonce, on any replica."""
        with self._begin() as connection:
            row = connection.execute(
                acme_nonces.delete()
                .where(acme_nonces.c.value == value)
                .returning(acme_nonces.c.expires)
            ).first()
        return row is not None and as_utc(row.expires) > now

    def purge_nonces(self, now: dt.datetime) -> int:
        with self._begin() as connection:
            return connection.execute(
                acme_nonces.delete().where(acme_nonces.c.expires <= now)
            ).rowcount

    # accounts -------------------------------------------------------------------------

    def add_account(self, account: AccountRow) -> AccountRow:
        """Insert, or return the account that already holds this key (a race lost).

        An account bound to an EAB key takes one of the key's accounts in the same
        transaction; EabBindingRefused when the key is revoked or has none left."""
        try:
            with self._begin() as connection:
                if account.eab_kid is not None:
                    taken = connection.execute(
                        acme_eab_keys.update()
                        .where(
                            acme_eab_keys.c.kid == account.eab_kid,
                            acme_eab_keys.c.revoked_at.is_(None),
                            acme_eab_keys.c.accounts < acme_eab_keys.c.max_accounts,
                        )
                        .values(accounts=acme_eab_keys.c.accounts + 1)
                    ).rowcount
                    if taken != 1:
                        raise EabBindingRefused(account.eab_kid)
                connection.execute(
                    acme_accounts.insert().values(
                        id=account.id,
                        thumbprint=account.thumbprint,
                        jwk=account.jwk,
                        status=account.status,
                        contact=json.dumps(list(account.contact)),
                        eab_kid=account.eab_kid,
                        created_at=account.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            existing = self.account_by_thumbprint(account.thumbprint)
            if existing is None:
                raise
            return existing
        return account

    def account(self, account_id: str) -> AccountRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_accounts.select().where(acme_accounts.c.id == account_id)
            ).first()
        return _account(row) if row is not None else None

    def account_by_thumbprint(self, thumbprint: str) -> AccountRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_accounts.select().where(acme_accounts.c.thumbprint == thumbprint)
            ).first()
        return _account(row) if row is not None else None

    def accounts(self) -> list[AccountRow]:
        with self._read() as connection:
            rows = connection.execute(
                acme_accounts.select().order_by(acme_accounts.c.created_at)
            ).all()
        return [_account(r) for r in rows]

    def update_account(
        self,
        account_id: str,
        *,
        contact: Sequence[str] | None = None,
        status: str | None = None,
    ) -> AccountRow | None:
        values: dict[str, Any] = {}
        if contact is not None:
            values["contact"] = json.dumps(list(contact))
        if status is not None:
            values["status"] = status
        with self._begin() as connection:
            if values:
                connection.execute(
                    acme_accounts.update().where(acme_accounts.c.id == account_id).values(**values)
                )
            row = connection.execute(
                acme_accounts.select().where(acme_accounts.c.id == account_id)
            ).first()
        return _account(row) if row is not None else None

    def change_key(self, account_id: str, thumbprint: str, jwk: str) -> AccountRow | None:
        """Replace the account key; None if another account already holds the new key."""
        try:
            with self._begin() as connection:
                connection.execute(
                    acme_accounts.update()
                    .where(acme_accounts.c.id == account_id)
                    .values(thumbprint=thumbprint, jwk=jwk)
                )
        except sa.exc.IntegrityError:
            return None
        return self.account(account_id)

    # orders, authorizations, challenges ------------------------------------------------

    def add_order(
        self,
        order: OrderRow,
        authorizations: Sequence[AuthorizationRow],
        challenges: Sequence[ChallengeRow],
    ) -> None:
        """The order with all its authorizations and challenges, in one transaction."""
        with self._begin() as connection:
            connection.execute(
                acme_orders.insert().values(
                    id=order.id,
                    account_id=order.account_id,
                    status=order.status,
                    profile=order.profile,
                    identifiers=json.dumps([{"type": t, "value": v} for t, v in order.identifiers]),
                    not_before=order.not_before,
                    not_after=order.not_after,
                    expires=order.expires,
                    error=None,
                    certificate_serial=None,
                    replaces=order.replaces,
                    created_at=order.created_at,
                )
            )
            if authorizations:
                connection.execute(
                    acme_authorizations.insert(),
                    [
                        {
                            "id": a.id,
                            "order_id": a.order_id,
                            "account_id": a.account_id,
                            "identifier_type": a.identifier_type,
                            "identifier_value": a.identifier_value,
                            "wildcard": a.wildcard,
                            "status": a.status,
                            "expires": a.expires,
                        }
                        for a in authorizations
                    ],
                )
            if challenges:
                connection.execute(
                    acme_challenges.insert(),
                    [
                        {
                            "id": c.id,
                            "authorization_id": c.authorization_id,
                            "type": c.type,
                            "token": c.token,
                            "status": c.status,
                            "validated": None,
                            "error": None,
                        }
                        for c in challenges
                    ],
                )

    def order(self, order_id: str) -> OrderRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_orders.select().where(acme_orders.c.id == order_id)
            ).first()
        return _order(row) if row is not None else None

    def orders(self, account_id: str | None = None, limit: int = 1000) -> list[OrderRow]:
        query = acme_orders.select().order_by(acme_orders.c.created_at.desc()).limit(limit)
        if account_id is not None:
            query = query.where(acme_orders.c.account_id == account_id)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [_order(r) for r in rows]

    def count_orders_since(self, account_id: str, since: dt.datetime) -> tuple[int, dt.datetime]:
        """How many orders the account created since `since`, and the oldest one's time."""
        with self._read() as connection:
            row = connection.execute(
                sa.select(sa.func.count(), sa.func.min(acme_orders.c.created_at)).where(
                    acme_orders.c.account_id == account_id,
                    acme_orders.c.created_at > since,
                )
            ).one()
        return int(row[0]), as_utc(row[1]) if row[1] is not None else since

    def set_order_status(
        self,
        order_id: str,
        status: str,
        *,
        expected: str | None = None,
        error: dict[str, Any] | None = None,
        certificate_serial: str | None = None,
    ) -> bool:
        """Move an order on; with `expected`, only from that status (False if it moved)."""
        query = acme_orders.update().where(acme_orders.c.id == order_id)
        if expected is not None:
            query = query.where(acme_orders.c.status == expected)
        values: dict[str, Any] = {"status": status}
        if error is not None:
            values["error"] = json.dumps(error)
        if certificate_serial is not None:
            values["certificate_serial"] = certificate_serial
        with self._begin() as connection:
            return connection.execute(query.values(**values)).rowcount == 1

    def order_by_serial(self, serial: str) -> OrderRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_orders.select().where(acme_orders.c.certificate_serial == serial)
            ).first()
        return _order(row) if row is not None else None

    def authorizations(self, order_id: str) -> list[AuthorizationRow]:
        with self._read() as connection:
            rows = connection.execute(
                acme_authorizations.select().where(acme_authorizations.c.order_id == order_id)
            ).all()
        return [_authorization(r) for r in rows]

    def authorization(self, authorization_id: str) -> AuthorizationRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_authorizations.select().where(acme_authorizations.c.id == authorization_id)
            ).first()
        return _authorization(row) if row is not None else None

    def challenges(self, authorization_id: str) -> list[ChallengeRow]:
        with self._read() as connection:
            rows = connection.execute(
                acme_challenges.select()
                .where(acme_challenges.c.authorization_id == authorization_id)
                .order_by(acme_challenges.c.type)
            ).all()
        return [_challenge(r) for r in rows]

    def challenge(self, challenge_id: str) -> ChallengeRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_challenges.select().where(acme_challenges.c.id == challenge_id)
            ).first()
        return _challenge(row) if row is not None else None

    def start_challenge(self, challenge_id: str) -> bool:
        """pending -> processing, once: True for the one caller that should validate."""
        with self._begin() as connection:
            return (
                connection.execute(
                    acme_challenges.update()
                    .where(
                        acme_challenges.c.id == challenge_id,
                        acme_challenges.c.status == "pending",
                    )
                    .values(status="processing")
                ).rowcount
                == 1
            )

    def finish_challenge(
        self,
        challenge: ChallengeRow,
        *,
        valid: bool,
        now: dt.datetime,
        error: dict[str, Any] | None,
    ) -> None:
        """Record a validation result on the challenge, its authorization and its order."""
        with self._begin() as connection:
            connection.execute(
                acme_challenges.update()
                .where(acme_challenges.c.id == challenge.id)
                .values(
                    status="valid" if valid else "invalid",
                    validated=now if valid else None,
                    error=json.dumps(error) if error else None,
                )
            )
            authz = connection.execute(
                acme_authorizations.select().where(
                    acme_authorizations.c.id == challenge.authorization_id
                )
            ).one()
            connection.execute(
                acme_authorizations.update()
                .where(
                    acme_authorizations.c.id == authz.id,
                    acme_authorizations.c.status == "pending",
                )
                .values(status="valid" if valid else "invalid")
            )
            if not valid:
                connection.execute(
                    acme_orders.update()
                    .where(
                        acme_orders.c.id == authz.order_id,
                        acme_orders.c.status == "pending",
                    )
                    .values(status="invalid", error=json.dumps(error) if error else None)
                )
                return
            statuses = connection.execute(
                sa.select(acme_authorizations.c.status).where(
                    acme_authorizations.c.order_id == authz.order_id
                )
            ).scalars()
            if all(s == "valid" for s in statuses):
                connection.execute(
                    acme_orders.update()
                    .where(
                        acme_orders.c.id == authz.order_id,
                        acme_orders.c.status == "pending",
                    )
                    .values(status="ready")
                )

    def deactivate_authorization(self, authorization_id: str) -> None:
        with self._begin() as connection:
            authz = connection.execute(
                acme_authorizations.select().where(acme_authorizations.c.id == authorization_id)
            ).one()
            connection.execute(
                acme_authorizations.update()
                .where(acme_authorizations.c.id == authorization_id)
                .values(status="deactivated")
            )
            connection.execute(
                acme_orders.update()
                .where(
                    acme_orders.c.id == authz.order_id,
                    acme_orders.c.status.in_(("pending", "ready")),
                )
                .values(status="invalid")
            )

    # external account binding keys -----------------------------------------------------

    def add_eab_key(self, key: EabKeyRow, secret: bytes) -> None:
        """Record a new EAB key; `secret` (the HMAC key) is stored sealed, never as is."""
        sealed = self._require_sealer().seal(secret, key.kid)
        with self._begin() as connection:
            connection.execute(
                acme_eab_keys.insert().values(
                    kid=key.kid,
                    sealed_hmac_key=sealed,
                    plaintext_hmac_key=None,
                    label=key.label,
                    profile=key.profile,
                    created_at=key.created_at,
                    revoked_at=None,
                    accounts=0,
                    max_accounts=key.max_accounts,
                )
            )

    def eab_key(self, kid: str) -> EabKeyRow | None:
        with self._read() as connection:
            row = connection.execute(
                acme_eab_keys.select().where(acme_eab_keys.c.kid == kid)
            ).first()
        return _eab(row) if row is not None else None

    def eab_secret(self, kid: str) -> bytes | None:
        """The HMAC key of `kid`, unsealed; None if there is no such key.

        A key from before sealing existed is sealed now, on its first use."""
        with self._read() as connection:
            row = connection.execute(
                sa.select(
                    acme_eab_keys.c.sealed_hmac_key, acme_eab_keys.c.plaintext_hmac_key
                ).where(acme_eab_keys.c.kid == kid)
            ).first()
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
        with self._begin() as connection:
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
            raw = self.engine.raw_connection()  # autocommit: VACUUM refuses a transaction
            try:
                cursor = raw.cursor()
                cursor.execute("VACUUM")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cursor.close()
            finally:
                raw.close()
        return len(rows)

    def eab_keys(self) -> list[EabKeyRow]:
        with self._read() as connection:
            rows = connection.execute(
                acme_eab_keys.select().order_by(acme_eab_keys.c.created_at)
            ).all()
        return [_eab(r) for r in rows]

    def accounts_of_eab_keys(self) -> dict[str, list[AccountRow]]:
        """The accounts each EAB key created, by key id."""
        with self._read() as connection:
            rows = connection.execute(
                acme_accounts.select()
                .where(acme_accounts.c.eab_kid.is_not(None))
                .order_by(acme_accounts.c.created_at)
            ).all()
        found: dict[str, list[AccountRow]] = {}
        for row in rows:
            found.setdefault(row.eab_kid, []).append(_account(row))
        return found

    def revoke_eab_key(self, kid: str, now: dt.datetime) -> tuple[bool, int]:
        """Revoke the key and, in the same transaction, every valid account it created
        (status 'revoked': RFC 8555 7.1.6 for server-initiated deactivation). Returns
        whether the key was revoked now and how many accounts were."""
        with self._begin() as connection:
            changed = (
                connection.execute(
                    acme_eab_keys.update()
                    .where(acme_eab_keys.c.kid == kid, acme_eab_keys.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                ).rowcount
                == 1
            )
            accounts = connection.execute(
                acme_accounts.update()
                .where(acme_accounts.c.eab_kid == kid, acme_accounts.c.status == "valid")
                .values(status="revoked")
            ).rowcount
        return changed, accounts


def _b64url_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = [
    "AccountRow",
    "AcmeStore",
    "AuthorizationRow",
    "ChallengeRow",
    "EabBindingRefused",
    "EabKeyRow",
    "OrderRow",
    "Sealer",
]
