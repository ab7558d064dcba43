"""Replay nonces in the store (store/acme/nonces.py), on SQLite and PostgreSQL: accepted
once by any replica however many race for them, and cheaper commits only where losing one
cannot make a nonce acceptable twice."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from privca.store.acme import AcmeStore
from privca.store.database import transaction
from privca.store.inventory import Store
from privca.store.schema import acme_nonces

LIFETIME = dt.timedelta(minutes=30)


@pytest.fixture
def replicas(open_store: Callable[[], Store]) -> tuple[AcmeStore, AcmeStore]:
    """Two stores over one database, each with its own engine: two processes or replicas."""
    return AcmeStore.of(open_store()), AcmeStore.of(open_store())


def _count(acme: AcmeStore) -> int:
    with acme.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(acme_nonces)).scalar())


def test_racing_replicas_accept_each_nonce_once(
    replicas: tuple[AcmeStore, AcmeStore], now: dt.datetime
) -> None:
    first, _second = replicas
    nonces = [f"n{i}" for i in range(5)]
    for nonce in nonces:
        first.add_nonce(nonce, now + LIFETIME)
    accepted: list[str] = []
    barrier = threading.Barrier(8)

    def spend(store: AcmeStore, index: int) -> None:
        barrier.wait()
        for nonce in nonces:
            if store.exchange_nonce(nonce, f"next-{index}-{nonce}", now + LIFETIME, now):
                accepted.append(nonce)

    threads = [threading.Thread(target=spend, args=(replicas[i % 2], i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(accepted) == nonces
    # Every exchange recorded the nonce it handed out, accepted or not.
    assert _count(first) == 8 * len(nonces)


EXCHANGES: list[tuple[str, str | None, bool]] = [
    ("handed out and fresh", "fresh", True),
    ("expired", "stale", False),
    ("never handed out", "invented", False),
    ("none in the request", None, False),
]


@pytest.mark.parametrize(
    ("spent", "accepted"), [row[1:] for row in EXCHANGES], ids=[row[0] for row in EXCHANGES]
)
def test_exchange_accepts_only_a_live_nonce_and_always_hands_out_the_next(
    replicas: tuple[AcmeStore, AcmeStore], now: dt.datetime, spent: str | None, accepted: bool
) -> None:
    first, second = replicas
    first.add_nonce("fresh", now + LIFETIME)
    first.add_nonce("stale", now - dt.timedelta(seconds=1))
    assert second.exchange_nonce(spent, "next", now + LIFETIME, now) is accepted
    assert second.exchange_nonce(spent, "after", now + LIFETIME, now) is False  # never twice
    assert first.exchange_nonce("next", "third", now + LIFETIME, now) is True


def test_reset_at_start_forgets_what_a_crash_could_make_spendable_again(
    replicas: tuple[AcmeStore, AcmeStore], backend: str, now: dt.datetime
) -> None:
    """SQLite commits spends without a flush, so a power cut may undo one: a starting
    server forgets every nonce. PostgreSQL spends durably: only expired ones go."""
    first, _second = replicas
    first.add_nonce("live", now + LIFETIME)
    first.add_nonce("expired", now - dt.timedelta(seconds=1))
    first.reset_nonces(now)
    assert _count(first) == (0 if backend == "sqlite" else 1)
    assert first.exchange_nonce("live", "n", now + LIFETIME, now) is (backend != "sqlite")


@pytest.fixture
def statements(replicas: tuple[AcmeStore, AcmeStore]) -> Iterator[list[str]]:
    """Every statement the first replica's engine sends (the driver's own ones included)."""
    engine = replicas[0].engine
    seen: list[str] = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.set_trace_callback(seen.append)  # type: ignore[attr-defined]

    def on_execute(_c: object, _cursor: object, statement: str, *_args: object) -> None:
        if engine.dialect.name != "sqlite":
            seen.append(statement)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    yield seen
    sa.event.remove(engine, "connect", on_connect)
    sa.event.remove(engine, "before_cursor_execute", on_execute)


RELAXED = {"sqlite": "PRAGMA synchronous=NORMAL", "postgresql": "synchronous_commit = off"}
# operation -> whether its commit waits for the disk, per backend
OPERATIONS: list[tuple[str, Callable[[AcmeStore, dt.datetime], object], dict[str, bool]]] = [
    ("hand out (newNonce)", lambda s, now: s.add_nonce("a", now + LIFETIME),
     {"sqlite": False, "postgresql": False}),
    ("spend and hand out", lambda s, now: s.exchange_nonce("a", "b", now + LIFETIME, now),
     {"sqlite": False, "postgresql": True}),
    ("hand out, nothing to spend", lambda s, now: s.exchange_nonce(None, "c", now + LIFETIME, now),
     {"sqlite": False, "postgresql": False}),
    ("purge expired", lambda s, now: s.purge_nonces(now), {"sqlite": False, "postgresql": False}),
    ("reset at start", lambda s, now: s.reset_nonces(now), {"sqlite": True, "postgresql": False}),
    ("an account (not a nonce)", lambda s, now: s.account("x"),
     {"sqlite": True, "postgresql": True}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "durable"), [row[1:] for row in OPERATIONS], ids=[row[0] for row in OPERATIONS]
)
def test_only_losses_that_cannot_accept_a_nonce_twice_skip_the_flush(
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
