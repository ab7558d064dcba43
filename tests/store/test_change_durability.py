"""A change can skip the flush to disk (`Database.change(durable=False)`): the serial
reservation of issuance does, since nothing is signed under a reserved serial until the
certificate's own commit, which is durable and flushes the WAL before it. The level is
the transaction's own: a pooled connection goes back durable, and the row is committed
(visible to every other connection) either way. On SQLite the durable level is FULL; the
test PostgreSQL runs with synchronous_commit=off throughout, so there only "off inside a
non-durable change" and "the server's level after it" can be seen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa

from privca.store.acme import AcmeStore
from privca.store.inventory import Intent, Store


def _commit_level(connection: sa.Connection) -> str:
    """SQLite's synchronous level (2 FULL, 1 NORMAL), or PostgreSQL's synchronous_commit."""
    if connection.dialect.name == "sqlite":
        return {"1": "off", "2": "on", "3": "on"}[
            str(connection.exec_driver_sql("PRAGMA synchronous").scalar())
        ]
    return str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())


def _durable_level(store: Store) -> str:
    """What a durable commit uses: "on" for SQLite (FULL); the server's setting for
    PostgreSQL (tests/pg.py's throwaway clusters run with synchronous_commit=off)."""
    with store.database.read() as connection:
        return _commit_level(connection)


def test_a_change_that_need_not_be_durable_commits_without_a_flush(
    store: Store, open_store: Callable[[], Store], now: dt.datetime
) -> None:
    database = store.database
    durable = _durable_level(store)
    with database.change(now, durable=False) as change:
        assert _commit_level(change.connection) == "off"
        change.execute(sa.text("CREATE TABLE durability_probe (id INTEGER PRIMARY KEY)"))
        change.execute(sa.text("INSERT INTO durability_probe (id) VALUES (1)"))
    with database.change(now) as change:
        assert _commit_level(change.connection) == durable
    with database.read() as connection:
        assert _commit_level(connection) == durable
    with open_store().database.read() as other:
        assert other.exec_driver_sql("SELECT count(*) FROM durability_probe").scalar() == 1


def test_issuance_reserves_serials_without_a_flush_and_records_certificates_with_one(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    levels: list[tuple[str, str]] = []

    @sa.event.listens_for(store.database.engine, "before_cursor_execute")
    def _seen(connection, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        verb = statement.split()[0].upper()
        if verb in ("INSERT", "UPDATE") and "certificates" in statement.split("(")[0]:
            levels.append((verb, _commit_level(connection)))

    try:
        serials = store.reserve([make_intent()], now)
        store.complete([(serials[0], b"\x30\x03\x02\x01\x01")], now)
    finally:
        sa.event.remove(store.database.engine, "before_cursor_execute", _seen)
    assert levels == [("INSERT", "off"), ("UPDATE", _durable_level(store))], levels


def test_a_new_acme_order_commits_without_a_flush_and_its_challenge_result_with_one(
    store: Store, now: dt.datetime
) -> None:
    from tests.store.test_store_acme_orders import _order

    acme = AcmeStore.of(store)
    levels: list[tuple[str, str]] = []

    @sa.event.listens_for(store.database.engine, "before_cursor_execute")
    def _seen(connection, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        words = statement.split()
        if words[0] in ("INSERT", "UPDATE") and "acme_" in statement:
            table = words[2] if words[0] == "INSERT" else words[1]
            levels.append((table, _commit_level(connection)))

    try:
        _order_row, challenges = _order(acme, now, names=1)
        acme.finish_challenge(challenges[0], valid=True, now=now, error=None)
    finally:
        sa.event.remove(store.database.engine, "before_cursor_execute", _seen)
    durable = _durable_level(store)
    assert ("acme_accounts", durable) in levels, levels
    assert {level for table, level in levels if table == "acme_orders"} >= {"off"}, levels
    assert ("acme_authorizations", "off") in levels and ("acme_challenges", "off") in levels
    assert levels[-1][1] == durable, levels  # the challenge's result and what it moves
