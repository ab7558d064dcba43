"""Replay nonces in the store (store/acme/nonces.py), on SQLite and PostgreSQL: a value is
spent once by any replica however many race for it, replicas share one key, and cheaper
commits only where a loss is harmless (a nonce never acceptable twice, an ACME marker
that a later durable commit flushes anyway)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from privca.acme.state import order_finalizing, order_issued
from privca.store.acme import AcmeStore
from privca.store.database import transaction
from privca.store.inventory import Store
from privca.store.schema import acme_spent_nonces

LIFETIME = dt.timedelta(minutes=30)


@pytest.fixture
def replicas(open_store: Callable[[], Store]) -> tuple[AcmeStore, AcmeStore]:
    """Two stores over one database, each with its own engine: two processes or replicas."""
    return AcmeStore.of(open_store()), AcmeStore.of(open_store())


def _spent_rows(acme: AcmeStore) -> int:
    with acme.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(acme_spent_nonces)
        return int(connection.execute(query).scalar())


def test_racing_replicas_spend_each_nonce_once(
    replicas: tuple[AcmeStore, AcmeStore], now: dt.datetime
) -> None:
    nonces = [f"n{i}" for i in range(5)]
    key = replicas[0].nonce_key(now)
    accepted: list[str] = []
    barrier = threading.Barrier(8)

    def spend(store: AcmeStore) -> None:
        barrier.wait()
        for nonce in nonces:
            if store.spend_nonce(nonce, now + LIFETIME, key):
                accepted.append(nonce)

    threads = [threading.Thread(target=spend, args=(replicas[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(accepted) == nonces
    assert _spent_rows(replicas[0]) == len(nonces)


def test_replicas_share_one_key(replicas: tuple[AcmeStore, AcmeStore], now: dt.datetime) -> None:
    first, second = replicas
    key = first.nonce_key(now)
    assert len(key) == 32
    assert second.nonce_key(now) == key == first.nonce_key(now)


def test_a_start_renews_the_key_only_where_spends_can_be_lost(
    replicas: tuple[AcmeStore, AcmeStore], backend: str, now: dt.datetime
) -> None:
    """SQLite commits spends without a flush, so a power cut may undo one: a starting
    server takes a new key (no nonce from before verifies) and the old spends go.
    PostgreSQL spends durably: the key stays, so the other replicas' nonces stay good."""
    first, second = replicas
    key = first.nonce_key(now)
    assert first.spend_nonce("live", now + LIFETIME, key)
    started = second.nonce_key(now, starting=True)
    assert (started != key) is (backend == "sqlite")
    assert first.nonce_key(now) == started  # whichever replica asks next
    assert _spent_rows(first) == (0 if backend == "sqlite" else 1)
    # A spend checked with the old key fails once the key changed: a server still holding
    # it (two on one SQLite file) cannot accept what the starting one made unacceptable.
    assert first.spend_nonce("other", now + LIFETIME, key) is (backend != "sqlite")
    assert first.spend_nonce("third", now + LIFETIME, started)


def test_purge_forgets_only_expired_spends(
    replicas: tuple[AcmeStore, AcmeStore], now: dt.datetime
) -> None:
    first, second = replicas
    key = first.nonce_key(now)
    assert first.spend_nonce("expired", now - dt.timedelta(seconds=1), key)
    assert first.spend_nonce("live", now + LIFETIME, key)
    assert second.purge_nonces(now) == 1
    assert not first.spend_nonce("live", now + LIFETIME, key)  # still spent


@pytest.fixture
def statements(replicas: tuple[AcmeStore, AcmeStore]) -> Iterator[list[str]]:
    """Every statement the first replica's engine sends (the driver's own ones included)."""
    engine = replicas[0].engine
    seen: list[str] = []

    def on_checkout(dbapi_connection: object, _record: object, _proxy: object) -> None:
        if engine.dialect.name == "sqlite":  # pooled: trace every connection handed out
            dbapi_connection.set_trace_callback(seen.append)  # type: ignore[attr-defined]

    def on_execute(_c: object, _cursor: object, statement: str, *_args: object) -> None:
        if engine.dialect.name != "sqlite":
            seen.append(statement)

    sa.event.listen(engine, "checkout", on_checkout)
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    yield seen
    sa.event.remove(engine, "checkout", on_checkout)
    sa.event.remove(engine, "before_cursor_execute", on_execute)


RELAXED = {"sqlite": "PRAGMA synchronous=NORMAL", "postgresql": "synchronous_commit = off"}
# operation -> whether its commit waits for the disk, per backend
OPERATIONS: list[tuple[str, Callable[[AcmeStore, dt.datetime], object], dict[str, bool]]] = [
    ("spend", lambda s, now: s.spend_nonce("a", now + LIFETIME, s.nonce_key(now)),
     {"sqlite": False, "postgresql": True}),
    ("purge expired", lambda s, now: s.purge_nonces(now), {"sqlite": False, "postgresql": False}),
    ("key at start", lambda s, now: s.nonce_key(now, starting=True),
     {"sqlite": True, "postgresql": True}),
    ("an account (not a nonce)", lambda s, now: s.account("x"),
     {"sqlite": True, "postgresql": True}),
    ("order marked processing", lambda s, now: s.move_order("x", order_finalizing()),
     {"sqlite": False, "postgresql": False}),
    ("order valid", lambda s, now: s.move_order("x", order_issued(), certificate_serial="1f"),
     {"sqlite": True, "postgresql": True}),
    ("challenge started", lambda s, now: s.start_challenge("x"),
     {"sqlite": False, "postgresql": False}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "durable"), [row[1:] for row in OPERATIONS], ids=[row[0] for row in OPERATIONS]
)
def test_only_losses_that_are_harmless_skip_the_flush(
    replicas: tuple[AcmeStore, AcmeStore],
    statements: list[str],
    backend: str,
    now: dt.datetime,
    operation: Callable[[AcmeStore, dt.datetime], object],
    durable: dict[str, bool],
) -> None:
    operation(replicas[0], now)
    relaxed = any(RELAXED[backend] in statement for statement in statements)
    assert statements, "the statement trace saw nothing: this test could not fail"
    assert relaxed is not durable[backend]


def test_a_relaxed_commit_leaves_the_connection_durable_again(store_url: str, backend: str) -> None:
    """Inside, the commit skips the flush; after it, the same (pooled) connection is back to
    flushing, so a certificate written next on it is synchronous."""
    store = Store(store_url)
    store.migrate()
    pooled = sa.create_engine(store.engine.url, poolclass=sa.pool.StaticPool)
    query = "PRAGMA synchronous" if backend == "sqlite" else "SHOW synchronous_commit"
    durable = {"sqlite": 2, "postgresql": "on"}[backend]
    relaxed = {"sqlite": 1, "postgresql": "off"}[backend]
    try:
        if backend != "sqlite":  # the test cluster runs with synchronous_commit off
            with pooled.connect() as connection:
                connection.exec_driver_sql("SET synchronous_commit = on")
                connection.commit()
        with transaction(pooled, write=True, durable=False) as connection:
            assert connection.exec_driver_sql(query).scalar() == relaxed
        with transaction(pooled, write=True) as connection:
            assert connection.exec_driver_sql(query).scalar() == durable
    finally:
        pooled.dispose()
        store.close()
