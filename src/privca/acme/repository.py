"""What the ACME server keeps, and the storage protocol it needs (as smallstep's acme.DB).

acme/ declares this protocol and its row values; privca.store.acme implements it over the
CA's database (SQLite or PostgreSQL, shared by every `privca serve` replica), and the
server wires the two together. acme/ never imports privca.store.

Status changes are `state.Transition`s, applied as compare-and-set: a method that moves a
row returns whether it moved, so of two replicas racing for a row exactly one wins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from privca.acme.state import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
    Transition,
)

# An RFC 7807 problem document, as it is stored and served.
ProblemDocument = dict[str, Any]


@dataclass(frozen=True)
class AccountRow:
    id: str
    thumbprint: str  # RFC 7638 SHA-256 thumbprint of the account key, base64url
    jwk: str  # the public key as JSON
    status: AccountStatus
    contact: tuple[str, ...]
    eab_kid: str | None  # the EAB key that created it, if any
    created_at: dt.datetime


@dataclass(frozen=True)
class OrderRow:
    id: str
    account_id: str
    status: OrderStatus
    profile: str
    identifiers: tuple[tuple[str, str], ...]  # (type, value): ("dns", "*.a.corp")
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    expires: dt.datetime
    error: ProblemDocument | None
    certificate_serial: str | None  # lowercase hex, once valid
    replaces: str | None  # the ARI certificate id (RFC 9773) the order renews
    created_at: dt.datetime
    # The issuer whose directory the order came through (None: orders made before
    # issuers existed, which the default issuer finalizes).
    issuer: str | None = None


@dataclass(frozen=True)
class AuthorizationRow:
    id: str
    order_id: str
    account_id: str
    identifier_type: str
    identifier_value: str  # without the "*." of a wildcard
    wildcard: bool
    status: AuthorizationStatus
    expires: dt.datetime


@dataclass(frozen=True)
class ChallengeRow:
    id: str
    authorization_id: str
    type: str  # http-01 | dns-01 | tls-alpn-01
    token: str
    status: ChallengeStatus
    validated: dt.datetime | None
    error: ProblemDocument | None


@dataclass(frozen=True)
class EabKeyRow:
    """An EAB key without its secret (see AcmeRepository.eab_secret)."""

    kid: str
    label: str
    profile: str | None  # the only ACME profile its accounts may order, when set
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    accounts: int  # accounts it has created
    max_accounts: int = 1
    issuer: str | None = None  # the only issuer its accounts may order from, when set


class EabBindingRefused(Exception):
    """The EAB key cannot bind another account: it is revoked or all its accounts are used."""


class NonceRepository(Protocol):
    """Replay nonces (RFC 8555 §6.5): each one issued is accepted once, by any replica.
    Nonces prove themselves (acme/nonces.py); the repository keeps their shared key and
    the nonces spent."""

    def nonce_key(self, now: dt.datetime, *, starting: bool = False) -> bytes:
        """The HMAC key every replica shares, made if there is none. `starting`: a server
        starts; where spends are not durable the key is then replaced, so that no nonce a
        crash may have left unspent is accepted a second time."""

    def spend_nonce(self, value: str, expires: dt.datetime, key: bytes) -> bool:
        """Record `value` spent: True the first time on any replica, if `key` is still
        the shared key (a server that renewed it started since); False otherwise."""

    def spend_nonce_reading_account(
        self, value: str, expires: dt.datetime, key: bytes, account_id: str
    ) -> tuple[bool, AccountRow | None]:
        """spend_nonce, and in the same transaction the account `account_id` (None if
        there is none, or if the nonce was refused)."""

    def purge_nonces(self, now: dt.datetime) -> int:
        """Forget spent nonces that have expired; returns how many."""


class AcmeRepository(NonceRepository, Protocol):
    """Accounts, orders, authorizations, challenges and EAB keys."""

    def one_flush(self) -> contextlib.AbstractContextManager[None]:
        """A block whose durable commits (this repository's and the issuer's, in this
        thread) reach the disk together, in one flush when it ends: nothing that depends
        on them may be returned before then."""

    # accounts

    def add_account(self, account: AccountRow) -> AccountRow:
        """Insert, or return the account that already holds this key (a race lost). An
        account with an EAB key takes one of the key's accounts in the same transaction:
        EabBindingRefused when the key is revoked or has none left."""

    def account(self, account_id: str) -> AccountRow | None: ...

    def account_by_thumbprint(self, thumbprint: str) -> AccountRow | None: ...

    def update_account(
        self,
        account_id: str,
        *,
        contact: Sequence[str] | None = None,
        transition: Transition[AccountStatus] | None = None,
    ) -> AccountRow | None:
        """Set the contact and/or move the status; the account as it is now."""

    def change_key(
        self, account_id: str, old_thumbprint: str, thumbprint: str, jwk: str
    ) -> AccountRow | None:
        """Replace the account key if it is still `old_thumbprint` and the account may
        still act (state.account_may_act), as a compare-and-set; the account with its new
        key, or None if nothing changed: another account holds the new key, or a request
        that raced this one changed the key or the status first."""

    def eab_key(self, kid: str) -> EabKeyRow | None: ...

    def eab_secret(self, kid: str) -> bytes | None:
        """The HMAC key of `kid`; None if there is no such key."""

    # orders

    def add_order(
        self,
        order: OrderRow,
        authorizations: Sequence[AuthorizationRow],
        challenges: Sequence[ChallengeRow],
    ) -> None:
        """The order with all its authorizations and challenges, in one transaction."""

    def order(self, order_id: str) -> OrderRow | None: ...

    def order_with_authorizations(
        self, order_id: str
    ) -> tuple[OrderRow | None, list[AuthorizationRow]]:
        """The order and its authorizations, read in one transaction."""

    def orders(
        self, account_id: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[OrderRow]:
        """Newest first: `limit` of them, after the newest `offset`."""

    def order_by_serial(self, serial: str) -> OrderRow | None: ...

    def count_orders_since(self, account_id: str, since: dt.datetime) -> tuple[int, dt.datetime]:
        """How many orders the account created after `since`, and the oldest one's time
        (`since` when there is none)."""

    def tidy_orders(self, cutoff: dt.datetime, batch: int = 1000) -> int:
        """Delete the orders that expired before `cutoff` without a certificate, with
        their authorizations and challenges; how many orders."""

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
        """Apply `transition` (with the error or certificate it brings); False if the
        order was not in one of its sources."""

    # authorizations and challenges

    def authorization(self, authorization_id: str) -> AuthorizationRow | None: ...

    def authorization_with_challenges(
        self, authorization_id: str
    ) -> tuple[AuthorizationRow | None, list[ChallengeRow]]:
        """The authorization and its challenges, read in one transaction."""

    def authorizations(self, order_id: str) -> list[AuthorizationRow]: ...

    def live_authorizations(self, account_id: str, now: dt.datetime) -> list[AuthorizationRow]:
        """The account's valid authorizations that have not expired at `now`, in one read
        (revocation by authorization, RFC 8555 §7.6)."""

    def deactivate_authorization(self, authorization_id: str) -> None:
        """state.authorization_deactivated, and the order's state.order_after_deactivation."""

    def challenge(self, challenge_id: str) -> ChallengeRow | None: ...

    def challenge_with_authorization(
        self, challenge_id: str
    ) -> tuple[ChallengeRow | None, AuthorizationRow | None]:
        """The challenge and its authorization, read in one transaction."""

    def challenges(self, authorization_id: str) -> list[ChallengeRow]: ...

    def start_challenge(self, challenge_id: str) -> bool:
        """state.challenge_started: True for the one caller that should validate."""

    def finish_challenge(
        self,
        challenge: ChallengeRow,
        *,
        valid: bool,
        now: dt.datetime,
        error: ProblemDocument | None,
    ) -> None:
        """Record a validation result on the challenge, its authorization and its order
        (state.challenge_finished, authorization_after_challenge, order_after_authorizations),
        in one transaction."""


__all__ = [
    "AccountRow",
    "AcmeRepository",
    "AuthorizationRow",
    "ChallengeRow",
    "EabBindingRefused",
    "EabKeyRow",
    "NonceRepository",
    "OrderRow",
    "ProblemDocument",
]
