"""Expired orders do not pile up: serve's hourly tidy deletes the orders that expired more
than ORDER_RETENTION ago without a certificate, with their authorizations and challenges,
on SQLite and PostgreSQL. The review grew the store by ~9 GB an hour with orders nobody
finalized (EAB optional lets anyone place them) and nothing ever deleted one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from privca._time import utcnow
from privca.acme.repository import AccountRow, AuthorizationRow, ChallengeRow, OrderRow
from privca.acme.service import ORDER_RETENTION
from privca.acme.state import AccountStatus, AuthorizationStatus, ChallengeStatus, OrderStatus
from privca.store.acme import AcmeStore
from privca.store.database import sqlite_url
from privca.store.inventory import Store
from privca.store.schema import acme_authorizations, acme_challenges, acme_orders
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def acme_store(request: pytest.FixtureRequest, tmp_path: Path):
    url = (
        sqlite_url(tmp_path / "inventory.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    store = Store(url)
    store.migrate()
    yield AcmeStore.of(store)
    store.close()


def add_order(acme: AcmeStore, name: str, status: OrderStatus, expired_ago: dt.timedelta) -> None:
    """An order of account 'acct' with two authorizations of three challenges each."""
    now = utcnow()
    if acme.account("acct") is None:
        acme.add_account(AccountRow("acct", "thumb", "{}", AccountStatus.VALID, (), None, now))
    expires = now - expired_ago
    order = OrderRow(
        name, "acct", status, "server", (("dns", f"{name}.test"), ("dns", f"www.{name}.test")),
        None, None, expires, None, "0abc" if status == OrderStatus.VALID else None, None,
        expires - dt.timedelta(days=7),
    )  # fmt: skip
    authorizations = [
        AuthorizationRow(
            f"{name}-a{i}",
            name,
            "acct",
            "dns",
            f"{name}.test",
            False,
            AuthorizationStatus.PENDING,
            expires,
        )
        for i in range(2)
    ]
    challenges = [
        ChallengeRow(
            f"{a.id}-{kind}", a.id, kind, f"{a.id}-{kind}", ChallengeStatus.PENDING, None, None
        )
        for a in authorizations
        for kind in ("http-01", "dns-01", "tls-alpn-01")
    ]
    acme.add_order(order, authorizations, challenges)


def rows(acme: AcmeStore) -> tuple[set[str], int, int]:
    with acme.engine.connect() as connection:
        orders = set(connection.execute(sa.select(acme_orders.c.id)).scalars())
        count = sa.select(sa.func.count())
        authorizations = connection.execute(count.select_from(acme_authorizations)).scalar()
        challenges = connection.execute(count.select_from(acme_challenges)).scalar()
    return orders, int(authorizations or 0), int(challenges or 0)


def test_orders_expired_without_a_certificate_are_deleted(acme_store: AcmeStore) -> None:
    long_ago = ORDER_RETENTION + dt.timedelta(days=1)
    add_order(acme_store, "abandoned", OrderStatus.PENDING, long_ago)
    add_order(acme_store, "refused", OrderStatus.INVALID, long_ago)
    add_order(acme_store, "ready", OrderStatus.READY, long_ago)
    add_order(acme_store, "issued", OrderStatus.VALID, long_ago)  # its certificate's record
    add_order(acme_store, "recent", OrderStatus.PENDING, ORDER_RETENTION - dt.timedelta(days=1))
    add_order(acme_store, "live", OrderStatus.PENDING, -dt.timedelta(days=3))

    removed = acme_store.tidy_orders(utcnow() - ORDER_RETENTION, batch=2)  # two batches

    assert removed == 3
    assert rows(acme_store) == ({"issued", "recent", "live"}, 3 * 2, 3 * 2 * 3)
    assert acme_store.tidy_orders(utcnow() - ORDER_RETENTION) == 0  # idempotent


def test_the_purge_reads_only_unfinished_orders_through_their_index(
    acme_store: AcmeStore, request: pytest.FixtureRequest
) -> None:
    """Valid orders are kept for good, so a weekly-renewing fleet piles up millions; the
    hourly purge scanned them all inside a write transaction (185 ms at 1,000,000 on
    SQLite, 0.1 ms through the partial index of migration 0014)."""
    add_order(acme_store, "issued", OrderStatus.VALID, ORDER_RETENTION * 2)
    captured: list[tuple[str, object]] = []

    def capture(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
        if "FROM acme_orders" in statement and statement.lstrip().startswith("SELECT"):
            captured.append((statement, params))

    sa.event.listen(acme_store.engine, "before_cursor_execute", capture)
    try:
        acme_store.tidy_orders(utcnow() - ORDER_RETENTION)
    finally:
        sa.event.remove(acme_store.engine, "before_cursor_execute", capture)
    assert len(captured) == 1, captured
    statement, parameters = captured[0]
    sqlite = acme_store.engine.dialect.name == "sqlite"
    with acme_store.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if not sqlite:
            cursor.execute("SET enable_seqscan = off")  # a few rows: show what *can* serve
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
        plan = "\n".join(str(row[3] if sqlite else row[0]) for row in cursor.fetchall())
    assert "ix_acme_orders_unfinished_expires" in plan, plan
