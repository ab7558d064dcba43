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
