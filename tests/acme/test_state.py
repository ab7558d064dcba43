"""The ACME status machine (acme/state.py): every transition from every status, as tables.

RFC 8555 §7.1.6 draws the diagrams; these tables are them, row by row, so a change to a
rule shows up here as a changed row."""

from __future__ import annotations

import ast
import datetime as dt
import sys
from pathlib import Path

import pytest

import privca.acme.repository
import privca.acme.state
from privca.acme.state import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
    Transition,
    account_deactivated,
    account_may_act,
    account_revoked,
    authorization_after_challenge,
    authorization_as_seen,
    authorization_deactivated,
    authorization_may_deactivate,
    challenge_finished,
    challenge_may_start,
    challenge_started,
    order_after_authorizations,
    order_after_deactivation,
    order_as_seen,
    order_finalizing,
    order_is_listed,
    order_is_open,
    order_issued,
    order_refused,
)

A = AuthorizationStatus
O = OrderStatus  # noqa: E741
C = ChallengeStatus
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PAST, FUTURE = NOW - dt.timedelta(seconds=1), NOW + dt.timedelta(seconds=1)


def _moves(transition: Transition, statuses) -> dict[str, str]:  # type: ignore[type-arg]
    """Where each status goes under `transition` (absent: it does not move)."""
    return {str(s): str(transition.target) for s in statuses if transition.applies_to(s)}


TRANSITIONS = [
    ("account deactivated by its holder", account_deactivated(), AccountStatus,
     {"valid": "deactivated"}),
    ("account revoked with its EAB key", account_revoked(), AccountStatus, {"valid": "revoked"}),
    ("order finalizing", order_finalizing(), OrderStatus, {"ready": "processing"}),
    ("order issued", order_issued(), OrderStatus, {"processing": "valid"}),
    ("order refused for good", order_refused(for_good=True), OrderStatus,
     {"processing": "invalid"}),
    ("order refused, may retry", order_refused(for_good=False), OrderStatus,
     {"processing": "ready"}),
    ("order loses an authorization", order_after_deactivation(), OrderStatus,
     {"pending": "invalid", "ready": "invalid"}),
    ("authorization deactivated", authorization_deactivated(), AuthorizationStatus,
     {"pending": "deactivated", "valid": "deactivated"}),
    ("authorization proved", authorization_after_challenge(valid=True), AuthorizationStatus,
     {"pending": "valid"}),
    ("authorization failed", authorization_after_challenge(valid=False), AuthorizationStatus,
     {"pending": "invalid"}),
    ("challenge started", challenge_started(), ChallengeStatus, {"pending": "processing"}),
    ("challenge passed", challenge_finished(valid=True), ChallengeStatus,
     {"processing": "valid"}),
    ("challenge failed", challenge_finished(valid=False), ChallengeStatus,
     {"processing": "invalid"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("transition", "statuses", "expected"),
    [row[1:] for row in TRANSITIONS],
    ids=[row[0] for row in TRANSITIONS],
)
def test_each_transition_moves_exactly_these_statuses(transition, statuses, expected) -> None:
    assert _moves(transition, statuses) == expected


ORDER_AFTER_AUTHORIZATIONS = [
    ("all valid", [A.VALID, A.VALID], "ready"),
    ("one still pending", [A.VALID, A.PENDING], None),
    ("all pending", [A.PENDING], None),
    ("one invalid", [A.VALID, A.INVALID], "invalid"),
    ("one invalid, one pending", [A.PENDING, A.INVALID], "invalid"),
    ("one deactivated", [A.VALID, A.DEACTIVATED], "invalid"),
    ("one expired", [A.EXPIRED, A.VALID], "invalid"),
    ("one revoked", [A.REVOKED], "invalid"),
    ("none at all", [], None),
]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [row[1:] for row in ORDER_AFTER_AUTHORIZATIONS],
    ids=[row[0] for row in ORDER_AFTER_AUTHORIZATIONS],
)
def test_an_order_follows_its_authorizations(statuses, expected) -> None:
    transition = order_after_authorizations(statuses)
    if expected is None:
        assert transition is None
    else:
        assert transition is not None
        # Only a pending order moves: a ready or finished one keeps its status.
        assert _moves(transition, OrderStatus) == {"pending": expected}


SEEN = [
    ("pending order, expired", order_as_seen, O.PENDING, PAST, O.INVALID),
    ("ready order, expired", order_as_seen, O.READY, NOW, O.INVALID),
    ("pending order, alive", order_as_seen, O.PENDING, FUTURE, O.PENDING),
    ("valid order, expired", order_as_seen, O.VALID, PAST, O.VALID),
    ("processing order, expired", order_as_seen, O.PROCESSING, PAST, O.PROCESSING),
    ("pending authorization, expired", authorization_as_seen, A.PENDING, PAST, A.EXPIRED),
    ("pending authorization, alive", authorization_as_seen, A.PENDING, FUTURE, A.PENDING),
    # §7.1.6: a valid authorization expires too; past it, it proves nothing.
    ("valid authorization, expired", authorization_as_seen, A.VALID, PAST, A.EXPIRED),
    ("valid authorization, alive", authorization_as_seen, A.VALID, FUTURE, A.VALID),
    ("invalid authorization, expired", authorization_as_seen, A.INVALID, PAST, A.INVALID),
]


@pytest.mark.parametrize(
    ("view", "status", "expires", "expected"),
    [row[1:] for row in SEEN],
    ids=[row[0] for row in SEEN],
)
def test_expiry_is_seen_without_a_write(view, status, expires, expected) -> None:
    assert view(status, expires, NOW) == expected


PREDICATES = [
    ("only a valid account acts", account_may_act, AccountStatus, {"valid"}),
    ("orders a client may act on", order_is_open, OrderStatus, {"pending", "ready"}),
    (
        "orders an account's list shows",
        order_is_listed,
        OrderStatus,
        {"pending", "ready", "processing", "valid"},
    ),
    ("authorizations a client may deactivate", authorization_may_deactivate,
     AuthorizationStatus, {"pending", "valid"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("predicate", "statuses", "expected"),
    [row[1:] for row in PREDICATES],
    ids=[row[0] for row in PREDICATES],
)
def test_predicates_hold_for_exactly_these_statuses(predicate, statuses, expected) -> None:
    assert {str(s) for s in statuses if predicate(s)} == expected


def test_a_challenge_starts_only_while_both_are_pending() -> None:
    starts = {(c, a) for c in C for a in A if challenge_may_start(c, a)}
    assert starts == {(C.PENDING, A.PENDING)}


def test_rows_written_as_plain_strings_read_the_same() -> None:
    """Rows built by hand (or read from an older store) carry str: the rules accept them."""
    assert account_may_act("valid")  # type: ignore[arg-type]
    assert order_finalizing().applies_to("ready")  # type: ignore[arg-type]
    assert order_as_seen("pending", PAST, NOW) == "invalid"  # type: ignore[arg-type]


@pytest.mark.parametrize("module", [privca.acme.state, privca.acme.repository], ids=str)
def test_the_storage_vocabulary_imports_only_the_standard_library(module) -> None:
    """store/acme/ imports these two from a higher layer (pyproject.toml ignores exactly
    those edges), so they must not pull anything else of privca, or anything installed."""
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in ("__future__", "privca.acme.state")
    }
    assert outside == set()
