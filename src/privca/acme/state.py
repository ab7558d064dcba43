"""The ACME status machine (RFC 8555 §7.1.6) in one place, as pure functions.

Statuses are StrEnums (their values are the RFC's words, stored as they are). A change of
status is a `Transition`: from one of some statuses to one other. The service decides
which transition a request asks for; storage applies it as a compare-and-set (the row
moves only if it is still in one of the `sources`), so two replicas racing for the same
row cannot both move it. Nothing here reads a clock, a database or the network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


class AccountStatus(StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"  # by its holder
    REVOKED = "revoked"  # by the server (its EAB key was revoked)


class OrderStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthorizationStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


S = TypeVar("S", AccountStatus, OrderStatus, AuthorizationStatus, ChallengeStatus)


@dataclass(frozen=True)
class Transition(Generic[S]):
    """Move a row from any of `sources` to `target`."""

    sources: frozenset[S]
    target: S

    def applies_to(self, status: S) -> bool:
        return status in self.sources


def _move(sources: Iterable[S], target: S) -> Transition[S]:
    return Transition(frozenset(sources), target)


# accounts ------------------------------------------------------------------------------


def account_may_act(status: AccountStatus) -> bool:
    """Only a valid account may sign requests (§7.3.6: a deactivated one is refused)."""
    return status == AccountStatus.VALID


def account_deactivated() -> Transition[AccountStatus]:
    """The holder deactivates the account (§7.3.6)."""
    return _move([AccountStatus.VALID], AccountStatus.DEACTIVATED)


def account_revoked() -> Transition[AccountStatus]:
    """The server ends the account: its EAB key was revoked (§7.1.6 "revoked")."""
    return _move([AccountStatus.VALID], AccountStatus.REVOKED)


# orders --------------------------------------------------------------------------------

# Orders the client may still make progress.
_OPEN_ORDERS = frozenset({OrderStatus.PENDING, OrderStatus.READY})
# An authorization in one of these has ended without proving control: its order is lost.
_FAILED_AUTHORIZATIONS = frozenset(
    {
        AuthorizationStatus.INVALID,
        AuthorizationStatus.DEACTIVATED,
        AuthorizationStatus.EXPIRED,
        AuthorizationStatus.REVOKED,
    }
)


def order_is_listed(status: OrderStatus) -> bool:
    """An account's order list (§7.1.2.1) shows the orders it created that are not
    invalid (as seen: an open order past its expiry is invalid): issued ones too."""
    return status != OrderStatus.INVALID


def order_is_open(status: OrderStatus) -> bool:
    """Pending or ready: the client can still make the order progress."""
    return status in _OPEN_ORDERS


def order_as_seen(status: OrderStatus, expires: dt.datetime, now: dt.datetime) -> OrderStatus:
    """An open order past its expiry is invalid, whatever its row still says."""
    return OrderStatus.INVALID if status in _OPEN_ORDERS and expires <= now else status


def order_after_authorizations(
    statuses: Iterable[AuthorizationStatus],
) -> Transition[OrderStatus] | None:
    """A pending order becomes ready once all its authorizations are valid, and invalid
    as soon as one has failed; None while some are still pending."""
    seen = set(statuses)
    if seen & _FAILED_AUTHORIZATIONS:
        return _move([OrderStatus.PENDING], OrderStatus.INVALID)
    if seen and seen <= {AuthorizationStatus.VALID}:
        return _move([OrderStatus.PENDING], OrderStatus.READY)
    return None


def order_after_deactivation() -> Transition[OrderStatus]:
    """An authorization of an open order was deactivated: the order can never be issued."""
    return _move(_OPEN_ORDERS, OrderStatus.INVALID)


def order_finalizing() -> Transition[OrderStatus]:
    """Finalize accepted: one request signs; others see `processing` (§7.4)."""
    return _move([OrderStatus.READY], OrderStatus.PROCESSING)


def order_issued() -> Transition[OrderStatus]:
    return _move([OrderStatus.PROCESSING], OrderStatus.VALID)


def order_refused(*, for_good: bool) -> Transition[OrderStatus]:
    """Issuance refused: for good (a name the policy no longer admits) the order is invalid;
    otherwise (a bad CSR, a failure) it is ready again for another finalize."""
    target = OrderStatus.INVALID if for_good else OrderStatus.READY
    return _move([OrderStatus.PROCESSING], target)


# authorizations and challenges ---------------------------------------------------------

# Statuses that lapse at the authorization's expiry.
_LIVE_AUTHORIZATIONS = frozenset({AuthorizationStatus.PENDING, AuthorizationStatus.VALID})


def authorization_as_seen(
    status: AuthorizationStatus, expires: dt.datetime, now: dt.datetime
) -> AuthorizationStatus:
    """A pending or valid authorization past its expiry is expired, whatever its row still
    says (§7.1.6): it no longer proves control, for an order or a revocation."""
    if status in _LIVE_AUTHORIZATIONS and expires <= now:
        return AuthorizationStatus.EXPIRED
    return status


def authorization_may_deactivate(status: AuthorizationStatus) -> bool:
    return status in (AuthorizationStatus.PENDING, AuthorizationStatus.VALID)


def authorization_deactivated() -> Transition[AuthorizationStatus]:
    """The client gives up an authorization (§7.5.2)."""
    return _move(
        [AuthorizationStatus.PENDING, AuthorizationStatus.VALID], AuthorizationStatus.DEACTIVATED
    )


def authorization_after_challenge(*, valid: bool) -> Transition[AuthorizationStatus]:
    """One challenge decides its authorization (§7.1.4: the first to succeed or fail)."""
    target = AuthorizationStatus.VALID if valid else AuthorizationStatus.INVALID
    return _move([AuthorizationStatus.PENDING], target)


def challenge_may_start(challenge: ChallengeStatus, authorization: AuthorizationStatus) -> bool:
    """A POST to a challenge starts validation only while both are still pending."""
    return challenge == ChallengeStatus.PENDING and authorization == AuthorizationStatus.PENDING


def challenge_started() -> Transition[ChallengeStatus]:
    """Validation begins: exactly one request (on any replica) wins this move."""
    return _move([ChallengeStatus.PENDING], ChallengeStatus.PROCESSING)


def challenge_finished(*, valid: bool) -> Transition[ChallengeStatus]:
    target = ChallengeStatus.VALID if valid else ChallengeStatus.INVALID
    return _move([ChallengeStatus.PROCESSING], target)


__all__ = [
    "AccountStatus",
    "AuthorizationStatus",
    "ChallengeStatus",
    "OrderStatus",
    "Transition",
    "account_deactivated",
    "account_may_act",
    "account_revoked",
    "authorization_after_challenge",
    "authorization_as_seen",
    "authorization_deactivated",
    "authorization_may_deactivate",
    "challenge_finished",
    "challenge_may_start",
    "challenge_started",
    "order_after_authorizations",
    "order_after_deactivation",
    "order_as_seen",
    "order_finalizing",
    "order_is_listed",
    "order_is_open",
    "order_issued",
    "order_refused",
]
