"""A change can skip the flush to disk (`Database.change(durable=False)`): the serial
reservation of issuance does, since nothing is signed under a reserved serial until the
certificate's own commit, which is durable and flushes the WAL before it. Inside
`one_flush`, durable commits skip it too and the block flushes once when it ends (ACME
finalize: the certificate record and the order turning valid). The level is
the transaction's own: a pooled connection goes back durable, and the row is committed
(visible to every other connection) either way. On SQLite the durable level is FULL; the
test PostgreSQL runs with synchronous_commit=off throughout, so there only "off inside a
non-durable change" and "the server's level after it" can be seen."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.acme.state import OrderStatus, order_issued
from privca.store.acme import AcmeStore
from privca.store.inventory import Intent, Store
from privca.x509.encoding import serial_hex
from tests.store.writes_seen import Write, writes_seen


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
        intent = make_intent()
        serials = store.reserve([intent], now)
        store.complete([(serials[0], b"\x30\x03\x02\x01\x01")], now, [intent])
    finally:
        sa.event.remove(store.database.engine, "before_cursor_execute", _seen)
    assert levels == [("INSERT", "off"), ("UPDATE", _durable_level(store))], levels


def _acme_levels(seen: list[Write]) -> list[tuple[str, str]]:
    """(table, commit level) of the ACME and certificate inserts and updates seen."""
    return [
        (w.table, w.level) for w in seen if w.table.startswith("acme_") or w.table == "certificates"
    ]


class _Flushes:
    """Counts the flushes `one_flush` makes (the real ones happen all the same): on SQLite
    fdatasync calls on the database's -wal file, on PostgreSQL the transactions whose
    synchronous commit flushes the WAL."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        engine = store.database.engine
        if engine.dialect.name == "sqlite":
            wal = f"{engine.url.database}-wal"
            real = os.fdatasync

            def counted(descriptor: int) -> None:
                if os.path.realpath(f"/proc/self/fd/{descriptor}") == os.path.realpath(wal):
                    self.count += 1
                real(descriptor)

            monkeypatch.setattr(os, "fdatasync", counted)
        else:

            @sa.event.listens_for(engine, "before_cursor_execute")
            def _seen(_connection, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
                if "txid_current()" in statement:
                    self.count += 1


def test_a_new_acme_order_and_its_challenge_result_commit_without_a_flush(
    store: Store, now: dt.datetime
) -> None:
    """The challenge result is flushed by the finalize that relies on it (below)."""
    from tests.store.test_store_acme_orders import _order

    acme = AcmeStore.of(store)
    with writes_seen(store.database.engine) as seen:
        _order_row, challenges = _order(acme, now, names=1)
        acme.finish_challenge(challenges[0], valid=True, now=now, error=None)
    levels = _acme_levels(seen)
    durable = _durable_level(store)
    assert ("acme_accounts", durable) in levels, levels
    assert {level for table, level in levels if table == "acme_orders"} >= {"off"}, levels
    assert ("acme_authorizations", "off") in levels and ("acme_challenges", "off") in levels
    assert levels[-1] == ("acme_orders", "off"), levels  # the challenge's result moves it
    with AcmeStore.of(store).transaction(write=False) as connection:
        assert _commit_level(connection) == durable  # the pooled connection went back


def test_durable_commits_in_one_flush_reach_the_disk_together_when_it_ends(
    store: Store,
    make_intent: Callable[..., Intent],
    now: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """finalize's certificate record and its order turning valid: one flush for both."""
    from tests.store.test_store_acme_orders import _order

    acme = AcmeStore.of(store)
    order, _challenges = _order(acme, now, names=1, status=OrderStatus.PROCESSING)
    flushes = _Flushes(store, monkeypatch)
    with writes_seen(store.database.engine) as seen:
        with acme.one_flush():
            intent = make_intent()
            serial = store.reserve([intent], now)[0]
            store.complete([(serial, b"\x30\x03\x02\x01\x01")], now, [intent])
            assert acme.move_order(order.id, order_issued(), certificate_serial=serial_hex(serial))
            assert flushes.count == 0  # nothing flushed yet
        assert flushes.count == 1
        store.complete([(serial, b"\x30\x03\x02\x01\x01")], now, [intent])  # outside: its own
    levels = _acme_levels(seen)
    durable = _durable_level(store)
    assert levels == [
        ("certificates", "off"),
        ("certificates", "off"),
        ("acme_orders", "off"),
        ("certificates", durable),
    ], levels
    assert flushes.count == 1  # a durable commit outside flushes itself, as before


def test_one_flush_flushes_what_committed_when_the_block_fails(
    store: Store, now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = AcmeStore.of(store)
    flushes = _Flushes(store, monkeypatch)
    with pytest.raises(RuntimeError), acme.one_flush():
        with store.database.change(now) as change:
            change.execute(sa.text("CREATE TABLE durability_probe (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("after the commit")
    assert flushes.count == 1
    with acme.one_flush(), store.database.change(now, durable=False) as change:
        change.execute(sa.text("INSERT INTO durability_probe (id) VALUES (1)"))
    assert flushes.count == 1  # only durable commits are owed a flush


def test_one_flush_is_the_blocks_own_thread(store: Store, now: dt.datetime) -> None:
    """Another thread's durable commit, meanwhile, waits for the disk as always."""
    seen: list[str] = []

    def other() -> None:
        with store.database.change(now) as change:
            seen.append(_commit_level(change.connection))

    with AcmeStore.of(store).one_flush():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == [_durable_level(store)]
