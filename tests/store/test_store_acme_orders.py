"""Orders, authorizations and challenges in the store (store/acme/sql.py), on SQLite and
PostgreSQL: the transitions of acme/state.py applied as compare-and-set, so replicas
racing for the same order or challenge move it once, and a validation result carries
through to the authorization and the order in one transaction."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.acme.repository import AccountRow, AuthorizationRow, ChallengeRow, OrderRow
from privca.acme.state import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
    order_finalizing,
    order_issued,
)
from privca.errors import StoreUnavailable
from privca.store.acme import AcmeStore
from privca.store.inventory import Store

PROBLEM = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused", "status": 400}


@pytest.fixture
def replicas(open_store: Callable[[], Store]) -> tuple[AcmeStore, AcmeStore]:
    return AcmeStore.of(open_store()), AcmeStore.of(open_store())


def _order(
    acme: AcmeStore, now: dt.datetime, names: int, status: OrderStatus = OrderStatus.PENDING
) -> tuple[OrderRow, list[ChallengeRow]]:
    """An order with one authorization and one http-01 challenge per name."""
    acme.add_account(AccountRow("acct", "thumb", "{}", AccountStatus.VALID, (), None, now))
    order = OrderRow(
        "order", "acct", status, "server",
        tuple(("dns", f"n{i}.test") for i in range(names)),
        None, None, now + dt.timedelta(days=7), None, None, None, now,
    )  # fmt: skip
    pending, expires = AuthorizationStatus.PENDING, order.expires
    authorizations = [
        AuthorizationRow(f"authz{i}", order.id, "acct", "dns", f"n{i}", False, pending, expires)
        for i in range(names)
    ]
    challenges = [
        ChallengeRow(
            f"chall{i}", f"authz{i}", "http-01", f"t{i}", ChallengeStatus.PENDING, None, None
        )
        for i in range(names)
    ]
    acme.add_order(order, authorizations, challenges)
    return order, challenges


def _race(replicas: tuple[AcmeStore, AcmeStore], attempt: Callable[[AcmeStore], bool]) -> int:
    """How many of 8 threads, on two replicas, won `attempt`."""
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def run(store: AcmeStore) -> None:
        barrier.wait()
        wins.append(attempt(store))

    threads = [threading.Thread(target=run, args=(replicas[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(wins)


def test_racing_finalizers_move_a_ready_order_once(replicas, now: dt.datetime) -> None:
    order, _ = _order(replicas[0], now, 1, OrderStatus.READY)
    assert _race(replicas, lambda s: s.move_order(order.id, order_finalizing())) == 1
    assert replicas[1].order(order.id).status == OrderStatus.PROCESSING
    # A transition from a status the order is not in changes nothing.
    assert replicas[0].move_order(order.id, order_finalizing()) is False
    assert replicas[0].move_order(order.id, order_issued(), certificate_serial="ab") is True
    issued = replicas[1].order(order.id)
    assert (issued.status, issued.certificate_serial) == (OrderStatus.VALID, "ab")
    assert replicas[1].order_by_serial("ab") == issued


def test_racing_posts_start_a_challenge_once(replicas, now: dt.datetime) -> None:
    _order_row, [challenge] = _order(replicas[0], now, 1)
    assert _race(replicas, lambda s: s.start_challenge(challenge.id)) == 1
    assert replicas[1].challenge(challenge.id).status == ChallengeStatus.PROCESSING


# (results of the challenges, in order: True passed, False failed, "deactivate" the
#  authorization by its client) -> (authorization statuses, order status, order error)
OUTCOMES = [
    ("the only challenge passes", 1, [True], ["valid"], "ready", None),
    ("one of two passes", 2, [True], ["valid", "pending"], "pending", None),
    ("both pass", 2, [True, True], ["valid", "valid"], "ready", None),
    ("one fails", 2, [False], ["invalid", "pending"], "invalid", PROBLEM),
    ("one passes, the other fails", 2, [True, False], ["valid", "invalid"], "invalid", PROBLEM),
    ("deactivated, then the other passes", 2, ["deactivate", True],
     ["deactivated", "valid"], "invalid", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("names", "results", "authorizations", "order_status", "error"),
    [row[1:] for row in OUTCOMES],
    ids=[row[0] for row in OUTCOMES],
)
def test_a_validation_result_carries_through_to_the_order(
    replicas,
    now: dt.datetime,
    names: int,
    results: list[bool | str],
    authorizations: list[str],
    order_status: str,
    error: dict[str, object] | None,
) -> None:
    first, second = replicas
    order, challenges = _order(first, now, names)
    for challenge, result in zip(challenges, results, strict=False):
        if result == "deactivate":
            second.deactivate_authorization(challenge.authorization_id)
            continue
        assert first.start_challenge(challenge.id)
        second.finish_challenge(
            challenge, valid=result is True, now=now, error=None if result is True else PROBLEM
        )
        finished = first.challenge(challenge.id)
        assert finished.status == ("valid" if result is True else "invalid")
        assert (finished.validated is not None) is (result is True)
    assert [a.status for a in sorted(first.authorizations(order.id), key=lambda a: a.id)] == (
        authorizations
    )
    stored = first.order(order.id)
    assert (stored.status, stored.error) == (order_status, error)


def test_deactivating_an_authorization_of_a_ready_order_invalidates_it(
    replicas, now: dt.datetime
) -> None:
    order, [challenge] = _order(replicas[0], now, 1)
    replicas[0].start_challenge(challenge.id)
    replicas[0].finish_challenge(challenge, valid=True, now=now, error=None)
    assert replicas[1].order(order.id).status == OrderStatus.READY
    replicas[1].deactivate_authorization(challenge.authorization_id)
    assert replicas[0].authorization(challenge.authorization_id).status == "deactivated"
    assert replicas[0].order(order.id).status == OrderStatus.INVALID
    replicas[1].deactivate_authorization("no-such-authorization")  # nothing to do, no error


def test_rows_read_by_id_are_the_rows_read_in_a_transaction(
    replicas: tuple[AcmeStore, AcmeStore],
) -> None:
    """On SQLite reads by id or by one foreign key outside a transaction skip SQLAlchemy's
    objects (rows.py, _SqliteReads): they must give what the read inside a transaction gives,
    every field converted alike (statuses, times, JSON, booleans), and see the other
    replica's commits."""
    from privca.store.acme.rows import ACCOUNTS, AUTHORIZATIONS, CHALLENGES, ORDERS
    from privca.store.acme.sql import _AUTHORIZATIONS_OF, _CHALLENGES_OF

    writer, reader = replicas
    now = dt.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=dt.UTC)
    _order(writer, now, 2)
    assert writer.start_challenge("chall0")
    writer.finish_challenge(
        writer.challenge("chall0") or pytest.fail("no challenge"),
        valid=False,
        now=now,
        error=PROBLEM,
    )
    for codec, row_id in [
        (ACCOUNTS, "acct"),
        (ORDERS, "order"),
        (AUTHORIZATIONS, "authz0"),
        (CHALLENGES, "chall0"),
        (CHALLENGES, "chall1"),
    ]:
        fast = reader.by_id(codec, row_id)
        with reader.transaction(write=False) as connection:
            assert fast == reader.by_id(codec, row_id, connection)
        assert fast is not None
        assert fast == writer.by_id(codec, row_id)
    # Pairs read in one read transaction (Queries.reads): the same rows.
    with reader.transaction(write=False) as connection:
        order_in = reader.by_id(ORDERS, "order", connection)
        authorizations_in = reader.all(
            AUTHORIZATIONS, _AUTHORIZATIONS_OF, connection, {"order_id": "order"}
        )
        authz_in = reader.by_id(AUTHORIZATIONS, "authz0", connection)
        challenges_in = reader.all(
            CHALLENGES, _CHALLENGES_OF, connection, {"authorization_id": "authz0"}
        )
        challenge_in = reader.by_id(CHALLENGES, "chall0", connection)
    assert reader.order_with_authorizations("order") == (order_in, authorizations_in)
    assert [a.id for a in authorizations_in] == ["authz0", "authz1"]
    assert reader.authorization_with_challenges("authz0") == (authz_in, challenges_in)
    assert challenges_in and challenges_in[0].error == PROBLEM
    assert reader.challenge_with_authorization("chall0") == (challenge_in, authz_in)
    assert reader.order_with_authorizations("nothing") == (None, [])
    assert reader.challenge_with_authorization("nothing") == (None, None)
    order = reader.by_id(ORDERS, "order")
    assert order is not None and order.status == OrderStatus.INVALID
    assert order.error == PROBLEM and order.expires == now + dt.timedelta(days=7)
    assert order.identifiers == (("dns", "n0.test"), ("dns", "n1.test"))
    assert reader.by_id(ACCOUNTS, "nobody") is None


def test_a_read_by_id_of_a_vanished_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    """The reads that skip SQLAlchemy's objects (rows.py, _sqlite_reads) still say that the
    store is unavailable (exit 3), as every other read does, never a driver traceback."""
    store = Store(f"sqlite:///{tmp_path / 'privca.db'}")
    store.migrate()
    acme = AcmeStore.of(store)
    try:
        assert acme.order("order") is None
        store.database.engine.dispose()  # no pooled connection left to the file
        (tmp_path / "privca.db").rename(tmp_path / "aside.db")
        with pytest.raises(StoreUnavailable, match="unavailable"):
            acme.order("order")
        with pytest.raises(StoreUnavailable, match="unavailable"):
            acme.order_with_authorizations("order")
        assert not (tmp_path / "privca.db").exists()
    finally:
        store.close()
