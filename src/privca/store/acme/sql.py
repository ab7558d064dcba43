"""AcmeStore: accounts, orders, authorizations and challenges (nonces.py and eab.py are
mixed in), over the CA's one database, so several `privca serve` replicas over PostgreSQL
share them. Status changes are the transitions of privca.acme.state applied as
compare-and-set (`WHERE status IN sources`): of two replicas racing for a row, one moves it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from privca._time import utcnow
from privca.acme.repository import (
    AccountRow,
    AuthorizationRow,
    ChallengeRow,
    OrderRow,
    ProblemDocument,
)
from privca.acme.state import (
    AccountStatus,
    AuthorizationStatus,
    OrderStatus,
    Transition,
    account_may_act,
    authorization_after_challenge,
    authorization_deactivated,
    challenge_finished,
    challenge_started,
    order_after_authorizations,
    order_after_deactivation,
)
from privca.store import auditlog
from privca.store.acme.eab import EabKeyQueries
from privca.store.acme.nonces import NonceQueries
from privca.store.acme.rows import (
    ACCOUNTS,
    AUTHORIZATIONS,
    CHALLENGES,
    ORDERS,
    Queries,
    dump_problem,
    move_by_id,
    moved,
)
from privca.store.schema import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_orders,
)

if TYPE_CHECKING:
    from privca.store.inventory import Store


class AcmeStore(NonceQueries, EabKeyQueries, Queries):
    """The ACME tables of one inventory database (sharing the Store's engine)."""

    @classmethod
    def of(cls, store: Store) -> AcmeStore:
        """The ACME view of a `privca.store.Store` (with the sealer of its CA home)."""
        return cls(store.engine, store.sealer)

    # accounts -------------------------------------------------------------------------

    def add_account(self, account: AccountRow) -> AccountRow:
        """Insert, or return the account that already holds this key (a race lost).

        An account bound to an EAB key takes one of the key's accounts in the same
        transaction; EabBindingRefused when the key is revoked or has none left."""
        try:
            with self.transaction() as connection:
                if account.eab_kid is not None:
                    self._take_eab_account(connection, account.eab_kid)
                connection.execute(acme_accounts.insert(), ACCOUNTS.dump(account))
                detail = {"account": account.id, "eab_kid": account.eab_kid}
                auditlog.append(
                    connection, account.created_at, [("acme-account-created", None, detail)]
                )
        except sa.exc.IntegrityError:
            existing = self.account_by_thumbprint(account.thumbprint)
            if existing is None:
                raise
            return existing
        return account

    def account(self, account_id: str) -> AccountRow | None:
        return self.by_id(ACCOUNTS, account_id)

    def account_by_thumbprint(self, thumbprint: str) -> AccountRow | None:
        with self.reads(one=True) as reads:
            found = reads.all(ACCOUNTS, _ACCOUNT_BY_THUMBPRINT, {"thumbprint": thumbprint})
        return found[0] if found else None

    def accounts(self) -> list[AccountRow]:
        return self.all(ACCOUNTS, acme_accounts.select().order_by(acme_accounts.c.created_at))

    def update_account(
        self,
        account_id: str,
        *,
        contact: Sequence[str] | None = None,
        transition: Transition[AccountStatus] | None = None,
    ) -> AccountRow | None:
        """Set the contact and/or apply a state transition; the account as it is now."""
        with self.transaction() as connection:
            if contact is not None:
                connection.execute(
                    acme_accounts.update()
                    .where(acme_accounts.c.id == account_id)
                    .values(contact=json.dumps(list(contact)))
                )
            if transition is not None:
                moved_rows = connection.execute(
                    moved(acme_accounts, transition).where(acme_accounts.c.id == account_id)
                ).rowcount
                if moved_rows:
                    detail = {"account": account_id, "status": str(transition.target)}
                    auditlog.append(connection, utcnow(), [("acme-account-status", None, detail)])
            return self.by_id(ACCOUNTS, account_id, connection)

    def change_key(
        self, account_id: str, old_thumbprint: str, thumbprint: str, jwk: str
    ) -> AccountRow | None:
        """Replace the account key if it is still `old_thumbprint` and the account may act;
        None if nothing changed (the new key is another account's, or a racing request
        changed the key or the status first)."""
        # Compare-and-set: two rollovers signed by the old key (its holder's and a thief's)
        # were both answered 200, and the later write silently won.
        acting = sorted(str(s) for s in AccountStatus if account_may_act(s))
        try:
            with self.transaction() as connection:
                changed = connection.execute(
                    acme_accounts.update()
                    .where(
                        acme_accounts.c.id == account_id,
                        acme_accounts.c.thumbprint == old_thumbprint,
                        acme_accounts.c.status.in_(acting),
                    )
                    .values(thumbprint=thumbprint, jwk=jwk)
                ).rowcount
                if not changed:
                    return None
                # who controls the account (and its EAB binding) moved
                detail = {"account": account_id, "thumbprint": thumbprint}
                auditlog.append(connection, utcnow(), [("acme-account-key-changed", None, detail)])
        except sa.exc.IntegrityError:
            return None
        return self.account(account_id)

    # orders ---------------------------------------------------------------------------

    def add_order(
        self,
        order: OrderRow,
        authorizations: Sequence[AuthorizationRow],
        challenges: Sequence[ChallengeRow],
    ) -> None:
        """The order with all its authorizations and challenges, in one transaction.

        Not flushed to disk: a pending order that a power cut takes away costs its client
        a new order, and the first thing that depends on it (a challenge's result, the
        order turning valid) is durable and flushes this commit with it."""
        with self.writes(durable=False) as statements:
            statements.run(_INSERT_ORDER, ORDERS.dump(order))
            statements.run_many(
                _INSERT_AUTHORIZATION, [AUTHORIZATIONS.dump(a) for a in authorizations]
            )
            statements.run_many(_INSERT_CHALLENGE, [CHALLENGES.dump(c) for c in challenges])

    def order(self, order_id: str) -> OrderRow | None:
        return self.by_id(ORDERS, order_id)

    def order_with_authorizations(
        self, order_id: str
    ) -> tuple[OrderRow | None, list[AuthorizationRow]]:
        with self.reads() as reads:
            order = reads.by_id(ORDERS, order_id)
            if order is None:
                return None, []
            return order, reads.all(AUTHORIZATIONS, _AUTHORIZATIONS_OF, {"order_id": order_id})

    def order_by_serial(self, serial: str) -> OrderRow | None:
        return self.first(ORDERS, acme_orders.c.certificate_serial == serial)

    def orders(
        self, account_id: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[OrderRow]:
        query = (
            acme_orders.select()
            .order_by(acme_orders.c.created_at.desc())
            .limit(limit)
            .offset(offset)
        )
        if account_id is not None:
            query = query.where(acme_orders.c.account_id == account_id)
        return self.all(ORDERS, query)

    def count_orders_since(self, account_id: str, since: dt.datetime) -> tuple[int, dt.datetime]:
        """How many orders the account created since `since`, and the oldest one's time."""
        with self.reads(one=True) as reads:
            found = reads.first(_ORDERS_SINCE, {"account_id": account_id, "since": since})
        count, oldest = found or (0, None)  # an aggregate: always one row
        return int(count), oldest if oldest is not None else since

    def move_order(
        self,
        order_id: str,
        transition: Transition[OrderStatus],
        *,
        error: ProblemDocument | None = None,
        certificate_serial: str | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> bool:
        """Apply a state transition; False if the order was not in one of its sources."""
        values: dict[str, Any] = {}
        if error is not None:
            values["error"] = dump_problem(error)
        if certificate_serial is not None:
            values["certificate_serial"] = certificate_serial
        # What the certificate carries, for an order that asked for a validity.
        if not_before is not None:
            values["not_before"] = not_before
        if not_after is not None:
            values["not_after"] = not_after
        # "processing" only marks a finalize under way: if a crash loses it, the order is
        # "ready" again and the client finalizes again. What follows it (valid with the
        # certificate, or invalid) is durable, and a durable commit flushes the ones
        # before it, so the marker needs no flush of its own.
        durable = transition.target != OrderStatus.PROCESSING
        with self.writes(durable=durable) as statements:
            return move_by_id(statements, acme_orders, transition, order_id, values)

    def tidy_orders(self, cutoff: dt.datetime, batch: int = 1000) -> int:
        """Delete the orders that expired before `cutoff` without a certificate, with
        their authorizations and challenges, `batch` orders a transaction (a short write
        lock each); how many orders. Valid orders stay: an account revokes its certificate
        and ARI checks `replaces` through them."""
        removed = 0
        while True:
            with self.transaction(durable=False) as connection:
                ids = list(
                    connection.execute(
                        _EXPIRED_ORDERS, {"cutoff": cutoff, "batch": batch}
                    ).scalars()
                )
                if not ids:
                    return removed
                authorizations = sa.select(acme_authorizations.c.id).where(
                    acme_authorizations.c.order_id.in_(ids)
                )
                connection.execute(
                    acme_challenges.delete().where(
                        acme_challenges.c.authorization_id.in_(authorizations)
                    )
                )
                connection.execute(
                    acme_authorizations.delete().where(acme_authorizations.c.order_id.in_(ids))
                )
                connection.execute(acme_orders.delete().where(acme_orders.c.id.in_(ids)))
            removed += len(ids)
            if len(ids) < batch:
                return removed

    # authorizations and challenges ----------------------------------------------------

    def authorization(self, authorization_id: str) -> AuthorizationRow | None:
        return self.by_id(AUTHORIZATIONS, authorization_id)

    def authorizations(self, order_id: str) -> list[AuthorizationRow]:
        return self.all(AUTHORIZATIONS, _AUTHORIZATIONS_OF, None, {"order_id": order_id})

    def live_authorizations(self, account_id: str, now: dt.datetime) -> list[AuthorizationRow]:
        """The account's valid authorizations not expired at `now`, in one query through
        its orders (indexed by account): reading each order's authorizations in turn was
        a query per order, a thousand for every revokeCert of an account with many."""
        return self.all(
            AUTHORIZATIONS, _LIVE_AUTHORIZATIONS, None, {"account_id": account_id, "now": now}
        )

    def authorization_with_challenges(
        self, authorization_id: str
    ) -> tuple[AuthorizationRow | None, list[ChallengeRow]]:
        with self.reads() as reads:
            authz = reads.by_id(AUTHORIZATIONS, authorization_id)
            if authz is None:
                return None, []
            return authz, reads.all(
                CHALLENGES, _CHALLENGES_OF, {"authorization_id": authorization_id}
            )

    def deactivate_authorization(self, authorization_id: str) -> None:
        with self.transaction() as connection:
            authorization = self.by_id(AUTHORIZATIONS, authorization_id, connection)
            if authorization is None:
                return
            connection.execute(
                moved(acme_authorizations, authorization_deactivated()).where(
                    acme_authorizations.c.id == authorization_id
                )
            )
            connection.execute(
                moved(acme_orders, order_after_deactivation()).where(
                    acme_orders.c.id == authorization.order_id
                )
            )

    def challenge(self, challenge_id: str) -> ChallengeRow | None:
        return self.by_id(CHALLENGES, challenge_id)

    def challenges(self, authorization_id: str) -> list[ChallengeRow]:
        return self.all(CHALLENGES, _CHALLENGES_OF, None, {"authorization_id": authorization_id})

    def challenge_with_authorization(
        self, challenge_id: str
    ) -> tuple[ChallengeRow | None, AuthorizationRow | None]:
        with self.reads() as reads:
            challenge = reads.by_id(CHALLENGES, challenge_id)
            if challenge is None:
                return None, None
            return challenge, reads.by_id(AUTHORIZATIONS, challenge.authorization_id)

    def start_challenge(self, challenge_id: str) -> bool:
        """pending -> processing, once: True for the one caller that should validate."""
        # A marker like the order's "processing" (see move_order): lost in a crash, the
        # challenge is pending again and the client asks again; its result is durable.
        with self.writes(durable=False) as statements:
            return move_by_id(statements, acme_challenges, challenge_started(), challenge_id)

    def finish_challenge(
        self,
        challenge: ChallengeRow,
        *,
        valid: bool,
        now: dt.datetime,
        error: ProblemDocument | None,
    ) -> None:
        """Record a validation result on the challenge, its authorization and its order.

        Not flushed to disk. The one thing that relies on a valid result is the finalize
        of the same order (authorizations are never reused by another order), and the
        certificate's durable commit flushes this one with it. A power cut in between
        sends the authorization back to pending: the client's finalize is refused
        (orderNotReady), and lego or certbot fail that run and start a new order when run
        again; nothing was issued under the lost result. A lost invalid result only lets
        the client try the challenge again."""
        with self.writes(durable=False) as statements:
            result = {"validated": now if valid else None, "error": dump_problem(error)}
            move_by_id(
                statements, acme_challenges, challenge_finished(valid=valid), challenge.id, result
            )
            authorization = statements.by_id(AUTHORIZATIONS, challenge.authorization_id)
            if authorization is None:
                return
            move_by_id(
                statements,
                acme_authorizations,
                authorization_after_challenge(valid=valid),
                authorization.id,
            )
            statuses = statements.scalars(
                _AUTHORIZATION_STATUSES, {"order_id": authorization.order_id}
            )
            transition = order_after_authorizations(AuthorizationStatus(s) for s in statuses)
            if transition is None:
                return
            failed = (
                {"error": dump_problem(error)} if transition.target == OrderStatus.INVALID else {}
            )
            move_by_id(statements, acme_orders, transition, authorization.order_id, failed)


# Built once, with bound parameters (see rows.py, _BY_ID).
_INSERT_ORDER = acme_orders.insert()
_INSERT_AUTHORIZATION = acme_authorizations.insert()
_INSERT_CHALLENGE = acme_challenges.insert()
_ACCOUNT_BY_THUMBPRINT = acme_accounts.select().where(
    acme_accounts.c.thumbprint == sa.bindparam("thumbprint")
)
_AUTHORIZATIONS_OF = acme_authorizations.select().where(
    acme_authorizations.c.order_id == sa.bindparam("order_id")
)
_LIVE_AUTHORIZATIONS = (
    acme_authorizations.select()
    .join(acme_orders, acme_orders.c.id == acme_authorizations.c.order_id)
    .where(
        acme_orders.c.account_id == sa.bindparam("account_id"),
        acme_orders.c.expires > sa.bindparam("now", type_=acme_orders.c.expires.type),
        acme_authorizations.c.status == AuthorizationStatus.VALID.value,
        acme_authorizations.c.expires > sa.bindparam("now", type_=acme_orders.c.expires.type),
    )
)
_ORDERS_SINCE = sa.select(sa.func.count(), sa.func.min(acme_orders.c.created_at)).where(
    acme_orders.c.account_id == sa.bindparam("account_id"),
    acme_orders.c.created_at > sa.bindparam("since", type_=acme_orders.c.created_at.type),
)
_AUTHORIZATION_STATUSES = sa.select(acme_authorizations.c.status).where(
    acme_authorizations.c.order_id == sa.bindparam("order_id")
)
_CHALLENGES_OF = (
    acme_challenges.select()
    .where(acme_challenges.c.authorization_id == sa.bindparam("authorization_id"))
    .order_by(acme_challenges.c.type)
)


# Read through ix_acme_orders_unfinished_expires (partial: orders not valid), so the
# valid orders kept forever are never scanned. The status is a literal, as in the index:
# a bound one would leave PostgreSQL's generic plan of a prepared statement (psycopg
# prepares after five runs) unable to prove the index's condition.
_EXPIRED_ORDERS = (
    sa.select(acme_orders.c.id)
    .where(
        sa.text(f"status != '{OrderStatus.VALID.value}'"),
        acme_orders.c.expires < sa.bindparam("cutoff"),
    )
    .limit(sa.bindparam("batch"))
)

__all__ = ["AcmeStore"]
