"""SQLite write transactions: BEGIN IMMEDIATE (the write lock from the first statement on)
for every write, a plain BEGIN for reads, and one process's writers queued on a lock of
its own (store/database.py `_writing`) instead of on SQLite's sleeping busy handler."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from privca.store.database import (
    Database,
    _writing,
    create_engine,
    sqlite_cursor,
    sqlite_url,
    transaction,
)

_ROWS = sa.Table(
    "writer_rows", sa.MetaData(), sa.Column("thread", sa.Integer), sa.Column("n", sa.Integer)
)


def _write_lock_free(path: Path) -> bool:
    """Whether another connection could take the write lock right now (no waiting)."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        if probe.in_transaction:
            probe.execute("ROLLBACK")
        probe.close()
    return True


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    engine = create_engine(sqlite_url(path))
    with transaction(engine, write=True) as connection:
        _ROWS.create(connection)
    engine.dispose()
    return path


@pytest.mark.parametrize("durable", [True, False])
def test_a_write_transaction_holds_the_write_lock_from_begin(
    database_file: Path, durable: bool
) -> None:
    engine = create_engine(sqlite_url(database_file))
    try:
        with transaction(engine, write=True, durable=durable):
            # Nothing executed yet: only BEGIN IMMEDIATE takes the lock this early.
            assert not _write_lock_free(database_file)
        assert _write_lock_free(database_file)
        with transaction(engine, write=False) as connection:
            connection.execute(sa.select(_ROWS)).all()
            assert _write_lock_free(database_file)
    finally:
        engine.dispose()


def test_a_change_holds_the_write_lock_and_a_read_does_not(database_file: Path) -> None:
    database = Database(sqlite_url(database_file))
    try:
        with database.change(dt.datetime.now(dt.UTC)):
            assert not _write_lock_free(database_file)
        with database.read() as connection:
            connection.execute(sa.select(_ROWS)).all()
            assert _write_lock_free(database_file)
    finally:
        database.close()


def test_a_connection_read_after_a_write_is_not_left_writing(database_file: Path) -> None:
    # The pool hands the same connection back: the write mark must not outlive its checkout.
    engine = create_engine(sqlite_url(database_file))
    try:
        for _ in range(3):
            with transaction(engine, write=True) as connection:
                connection.execute(_ROWS.insert(), {"thread": -1, "n": 0})
            with engine.connect() as connection, connection.begin():
                connection.execute(sa.select(_ROWS)).all()
                assert _write_lock_free(database_file)
    finally:
        engine.dispose()


def test_threads_writing_at_once_lose_nothing(database_file: Path) -> None:
    engine = create_engine(sqlite_url(database_file))
    threads, each = 8, 40
    failures: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for n in range(each):
                with transaction(engine, write=True, durable=n % 2 == 0) as connection:
                    # A read then a write in one transaction: with a deferred BEGIN, two
                    # threads could both read and then fail to upgrade ("locked").
                    seen = connection.execute(sa.select(sa.func.count()).select_from(_ROWS))
                    assert seen.scalar_one() >= 0
                    connection.execute(_ROWS.insert(), {"thread": thread, "n": n})
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert failures == []
        with transaction(engine, write=False) as connection:
            rows = set(connection.execute(sa.select(_ROWS.c.thread, _ROWS.c.n)).all())
        assert rows == {(t, n) for t in range(threads) for n in range(each)}
    finally:
        engine.dispose()


def test_a_child_forked_while_a_writer_waits_can_write(database_file: Path) -> None:
    # serve --workers forks: a lock held by a parent's thread at that moment must not be
    # inherited held (no thread of the child would ever release it).
    engine = create_engine(sqlite_url(database_file))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _writing(engine, True):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit status
            signal.alarm(10)  # a child stuck on an inherited lock dies with SIGALRM
            try:
                with transaction(engine, write=True) as connection:
                    connection.execute(_ROWS.insert(), {"thread": -2, "n": 0})
            finally:
                os._exit(0)
        _pid, status = os.waitpid(child, 0)
        assert os.WIFEXITED(status), f"the child was killed by signal {os.WTERMSIG(status)}"
    finally:
        release.set()
        holder.join()
    with transaction(engine, write=False) as connection:
        assert connection.execute(sa.select(_ROWS).where(_ROWS.c.thread == -2)).all()
    engine.dispose()


def test_a_writer_kept_waiting_too_long_gets_store_unavailable(
    database_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-process queue waits as long as SQLite's busy handler would, then gives up with
    # the store's usual error (exit 3), never hangs; readers never queue behind it.
    from privca.errors import StoreUnavailable
    from privca.store import database as store_database

    monkeypatch.setattr(store_database, "SQLITE_BUSY_TIMEOUT_MS", 300)
    engine = create_engine(sqlite_url(database_file))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _writing(engine, True):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with (
            pytest.raises(StoreUnavailable, match=r"writers held it for over 0\.3 s") as refused,
            transaction(engine, write=True) as connection,
        ):
            connection.execute(_ROWS.insert(), {"thread": -3, "n": 0})
        assert refused.value.hint == store_database.UNAVAILABLE_HINT
        with transaction(engine, write=False) as connection:
            assert connection.execute(sa.select(_ROWS)).all() == []
    finally:
        release.set()
        holder.join()
    with transaction(engine, write=True) as connection:
        connection.execute(_ROWS.insert(), {"thread": -3, "n": 1})
    with transaction(engine, write=False) as connection:
        assert connection.execute(sa.select(_ROWS.c.n)).scalars().all() == [1]
    engine.dispose()


def _insert_row(engine: sa.Engine, way: str, thread: int, n: int) -> None:
    """One write transaction the way the store makes one: SQLAlchemy's Connection, or the
    pooled connection's own cursor (sqlite_cursor, the ACME hot path)."""
    if way == "transaction":
        with transaction(engine, write=True) as connection:
            connection.execute(_ROWS.insert(), {"thread": thread, "n": n})
        return
    with sqlite_cursor(engine, write=True) as cursor:
        cursor.execute("INSERT INTO writer_rows (thread, n) VALUES (?, ?)", (thread, n))


@pytest.mark.parametrize("way", ["transaction", "cursor"])
def test_the_writer_lock_and_sqlite_share_one_deadline(
    database_file: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # A writer that waited for this process's writer lock waits in SQLite only for what is
    # left of the busy timeout: 1.5 s here, then 1.5 s for another process's write lock,
    # which it still holds at the deadline (3 s) and lets go at 4 s. With a timeout for
    # each wait, the writer would wait there until 4.5 s, and have it at 4 s. (Margins of
    # a second or more for a loaded machine.)
    from privca.errors import StoreUnavailable
    from privca.store import database as store_database

    monkeypatch.setattr(store_database, "SQLITE_BUSY_TIMEOUT_MS", 3000)
    engine = create_engine(sqlite_url(database_file))
    other = sqlite3.connect(database_file, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer
    holding = threading.Event()

    def hold() -> None:
        with _writing(engine, True):
            holding.set()
            time.sleep(1.5)

    def release_other() -> None:
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=hold)
    other_release = threading.Timer(4.0, release_other)
    holder.start()
    try:
        assert holding.wait(10)
        other_release.start()
        with pytest.raises(StoreUnavailable, match="database is locked") as refused:
            _insert_row(engine, way, -4, 0)
        assert refused.value.hint == store_database.UNAVAILABLE_HINT
    finally:
        holder.join()
        other_release.join()
    with transaction(engine, write=False) as connection:
        assert connection.execute(sa.select(_ROWS)).all() == []
        # The connection that waited has the whole timeout again for what comes next.
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 3000
    _insert_row(engine, way, -4, 1)
    engine.dispose()


@pytest.mark.parametrize("outer", ["transaction", "cursor"])
@pytest.mark.parametrize("inner", ["transaction", "cursor"])
def test_a_write_nested_in_another_is_refused_at_once_and_the_outer_one_commits(
    database_file: Path, outer: str, inner: str
) -> None:
    # The nested write could only wait for the lock its own outer transaction holds: it
    # used to hang for the whole busy timeout (a minute), then say "the store is
    # unavailable" (exit 3), an operator's problem. It is the programmer's, said at once
    # (RuntimeError, not the StoreUnavailable of a wait that timed out).
    engine = create_engine(sqlite_url(database_file))
    if outer == "transaction":
        with transaction(engine, write=True) as connection:
            connection.execute(_ROWS.insert(), {"thread": -5, "n": 0})
            with pytest.raises(RuntimeError, match="inside another one"):
                _insert_row(engine, inner, -5, 1)
    else:
        with sqlite_cursor(engine, write=True) as cursor:
            cursor.execute("INSERT INTO writer_rows (thread, n) VALUES (?, ?)", (-5, 0))
            with pytest.raises(RuntimeError, match="inside another one"):
                _insert_row(engine, inner, -5, 1)
    # The outer transaction committed, and the lock is free again for this thread.
    _insert_row(engine, inner, -5, 2)
    with transaction(engine, write=False) as connection:
        assert connection.execute(sa.select(_ROWS.c.n)).scalars().all() == [0, 2]
    engine.dispose()
