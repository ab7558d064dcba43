"""Engines, migrations and transactions: SQLite tuned for durability and concurrent
writers, or PostgreSQL.

Every change to the inventory goes through `Database.change`: one write transaction that
also appends what it did to the audit log (store/auditlog.py), in one place and in the same
transaction as the change itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from privca._text import printable
from privca.errors import EnvironmentRefused, StoreUnavailable
from privca.home import create_private_file
from privca.store import auditlog
from privca.store.address import PASSWORD_HINT, check_store_url, redact
from privca.store.schema import SCHEMA_REVISION
from privca.x509.encoding import serial_hex

SQLITE_BUSY_TIMEOUT_MS = 60_000
UNAVAILABLE_HINT = "check the store URL, that the database is reachable and the disk not full"
# Connections a SQLite engine keeps open between transactions (more are opened, and
# closed again, when more threads need one at once).
SQLITE_POOL_SIZE = 8
# Set in a pooled SQLite connection's info by `_for_writing`, cleared at every checkout:
# SQLite then takes the write lock at BEGIN, so writers queue (see `_writing`); readers use
# a plain BEGIN and never wait.
WRITE_FLAG = "privca_write"
# Beside it, when the writer already waited for this process's writer lock (`_writing`):
# the time.monotonic() by which its BEGIN IMMEDIATE must have the write lock. One deadline
# for both waits, not the busy timeout twice over.
WRITE_DEADLINE = "privca_write_deadline"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite:///PATH URL (None for in-memory or URI forms, and
    for every other database: a PostgreSQL URL's database is a name, not a path)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite":
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def check_database_exists(url: str) -> None:
    """Refuse to open an established CA whose SQLite file is gone: SQLite would make an
    empty one, and the CA would go on as if it had never issued anything (no revocations,
    serials free to repeat, an empty audit log).

    Raises:
        StoreUnavailable: the file is missing.
    """
    path = _sqlite_file(url)
    if path is not None and not os.path.lexists(path):
        raise StoreUnavailable(
            f"the inventory database {path} is missing: an empty one would "
            "forget every certificate, revocation and audit entry of this CA",
            "put the file back, or restore the CA from a backup (privca restore)",
        )


REPLACED_HINT = (
    "restart privca (stop it before the database file is moved, replaced or copied over: "
    "docs/ha.md)"
)
GONE_HINT = (
    "put the file back where it was, or restart privca once it is restored (never move "
    "it under a running privca: docs/ha.md)"
)


def _file_identity(path: str | Path) -> tuple[int, int] | None:
    """The (device, inode) of the database file, None if it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class DatabaseFile:
    """The SQLite file (device, inode) an engine started on, and whether its path still
    names it: every connection of this process reads that file and no other.

    A file replaced at the path (an operator's mv, cp or restore) must not be read through
    connections still open on the old one (stale state), nor opened beside the old one's
    -wal: SQLite leaves the -wal of a file that was moved or unlinked, and would read the
    new file through it. So both are refused (StoreUnavailable: a server answers 503 and
    serves what it cached) until the process restarts; the same file put back where it was
    is read again. One stat per check: per transaction (the pool's checkout) and per call of
    the probes that read on connections of their own (ChangeCounter, RevocationClock,
    IssuersReader), never per statement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._where = os.fspath(path)  # a str: os.stat skips the conversion (~0.3 us)
        self.identity = _file_identity(path)

    def unchanged(self) -> bool:
        """Whether the path names the file this engine started on (one stat)."""
        return _file_identity(self._where) == self.identity

    def check(self) -> None:
        """StoreUnavailable unless the path names the file this engine started on."""
        now = _file_identity(self._where)
        if now == self.identity:
            return
        name = printable(self.path.name, 200)
        if now is None:
            raise StoreUnavailable(
                f"the inventory database is unavailable: its file {name} is gone", GONE_HINT
            )
        raise StoreUnavailable(
            f"the inventory database is unavailable: its file {name} was replaced since "
            "this process opened it",
            REPLACED_HINT,
        )


# The file of each SQLite engine on a file (see DatabaseFile).
_FILES: weakref.WeakKeyDictionary[sa.Engine, DatabaseFile] = weakref.WeakKeyDictionary()


def database_file(engine: sa.Engine) -> DatabaseFile | None:
    """The file an engine reads (None: PostgreSQL, or SQLite in memory)."""
    return _FILES.get(engine)


def create_engine(url: str, password: str | None = None) -> sa.Engine:
    """An engine for a store URL; `password` (PostgreSQL) goes to the driver directly, so
    it is never part of the URL SQLAlchemy shows in reprs, logs or errors."""
    file = None
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path is not None:
            # SQLite creates the database with the umask (0644, or 0666 under umask 000)
            # and gives its -wal, -shm and -journal files the database's mode.
            create_private_file(path)
            file = DatabaseFile(path)
    else:
        check_store_url(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            # Pooled: a connection (and with it the WAL and its index) stays open between
            # transactions. Opening one per transaction cost four PRAGMAs, and closing the
            # last one checkpointed the WAL and deleted it: ~5 fsyncs per transaction.
            engine = sa.create_engine(
                url,
                connect_args={
                    "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                    "check_same_thread": False,
                },
                poolclass=sa.QueuePool,
                pool_size=SQLITE_POOL_SIZE,
                max_overflow=-1,
            )
            _tune_sqlite(engine, file)
            if file is not None:
                _FILES[engine] = file
        else:
            connect_args = {"password": password} if password else {}
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreUnavailable(
            f"store URL '{redact(url)}' is not usable: {exc}",
            "use sqlite:///PATH or postgresql://USER@HOST/DB in privca.toml",
        ) from exc
    return engine


def _tune_sqlite(engine: sa.Engine, file: DatabaseFile | None) -> None:
    @event.listens_for(engine, "do_connect")
    def _before_connect(*_args: Any) -> None:
        # create_engine made the file. If it has gone since, SQLite would make an empty
        # one, with the umask's mode, beside the old -wal; a file put in its place would be
        # read through that -wal: refuse both (DatabaseFile).
        if file is not None:
            file.check()

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A pooled connection keeps the file it opened: if another is at the path now (an
        # operator's mv, cp or restore), or none, it would go on reading a ghost, stale
        # state nobody else sees. Refused, once per transaction (one stat): the pool then
        # closes this connection (SQLite checkpoints nothing into a file that moved, and
        # leaves its -wal); the others stay, in case the same file comes back.
        if file is not None:
            file.check()
        record.info[WRITE_FLAG] = False

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Again now that the file is open, before the first statement reads it (and its
        # -wal): a replacement that slipped in between the check above and the open is
        # refused too, and this connection, which has read nothing, closes harmlessly.
        if file is not None:
            file.check()
        # Let SQLAlchemy's begin hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Switching to WAL needs the write lock and ignores the busy handler, so only ask
        # when the file is not in WAL yet (a new database), and wait for a writer by hand.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            _switch_to_wal(cursor)
        # FULL: a committed record survives power loss, which "record before return" needs.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # BEGIN through the dialect's do_begin, not a "begin" event: one event listener on the
    # connections makes SQLAlchemy dispatch events around every statement (~20 % of a short
    # transaction's CPU), and do_begin's errors are wrapped like a statement's.
    engine.dialect.do_begin = _sqlite_begin  # type: ignore[method-assign]

    _WRITERS[engine] = _WriterLock()


def _sqlite_begin(dbapi_connection: Any) -> None:
    """BEGIN for a connection checked out to read, BEGIN IMMEDIATE for one `_for_writing`:
    IMMEDIATE takes the write lock up front, so concurrent writers queue on the busy timeout
    instead of failing with "database is locked" when a read upgrades to a write. A writer
    with a deadline (WRITE_DEADLINE) waits in SQLite only for what is left of it."""
    info = dbapi_connection.info
    driver = dbapi_connection.driver_connection
    if not info.get(WRITE_FLAG, False):
        driver.execute("BEGIN")
        return
    _begin_immediate(driver, info.get(WRITE_DEADLINE))


def _begin_immediate(driver: Any, deadline: float | None) -> None:
    """BEGIN IMMEDIATE on a driver connection or cursor, waiting in SQLite's busy handler
    only for what is left of `deadline` (see `_writing`), the whole busy timeout without."""
    if deadline is None:
        driver.execute("BEGIN IMMEDIATE")
        return
    # 0 when nothing is left: one try, no busy handler. Set back at once either way, as
    # the connection's next transactions (reads too) must have the whole timeout.
    left_ms = max(0, int((deadline - time.monotonic()) * 1000))
    driver.execute(f"PRAGMA busy_timeout={left_ms}")
    try:
        driver.execute("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _for_writing(connection: sa.Connection, deadline: float | None = None) -> sa.Connection:
    """The connection, marked for a write transaction (before its BEGIN): see WRITE_FLAG;
    `deadline` (time.monotonic()) see WRITE_DEADLINE."""
    if connection.dialect.name == "sqlite":
        info = connection.connection.info
        info[WRITE_FLAG] = True
        info[WRITE_DEADLINE] = deadline
    return connection


def _switch_to_wal(cursor: Any) -> None:
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _Deferred:
    """The durable commits a `one_flush` block let return before they reached the disk."""

    def __init__(self) -> None:
        self.commits = 0


_deferred_flush: contextvars.ContextVar[_Deferred | None] = contextvars.ContextVar(
    "privca_deferred_flush", default=None
)


def _level_for(durable: bool) -> bool:
    """Whether a commit asked to be `durable` waits for the disk now: inside `one_flush`
    it does not, and the block's flush makes it durable before the block ends."""
    deferred = _deferred_flush.get()
    if durable and deferred is not None:
        deferred.commits += 1
        return False
    return durable


@contextlib.contextmanager
def one_flush(engine: sa.Engine) -> Iterator[None]:
    """Durable commits made in this block by this thread (its context) return before they
    reach the disk; when the block ends, one flush makes every one of them durable. So
    several commits that must all survive a power cut cost one flush instead of one each.
    Nothing that depends on them may leave the process inside the block (no response, no
    file): only after it. The flush happens even when the block raises (what committed
    stays committed, and is then durable)."""
    deferred = _Deferred()
    token = _deferred_flush.set(deferred)
    try:
        yield
    finally:
        _deferred_flush.reset(token)
        if deferred.commits:
            flush(engine)


def flush(engine: sa.Engine) -> None:
    """Make every commit made so far durable, as a durable commit would have.

    SQLite (WAL): a commit that skipped the flush has written its frames to the -wal file
    already; fdatasync of that file is what synchronous=FULL does at commit. If the file
    is gone, the last connection closed and checkpointed it into the database, which
    SQLite syncs. PostgreSQL: a synchronous commit of a transaction that has an id flushes
    the WAL up to its commit record, past every asynchronous commit before it."""
    if engine.dialect.name == "sqlite":
        path = _sqlite_file(str(engine.url))
        if path is None:
            return  # in memory: nothing to flush
        try:
            descriptor = os.open(f"{path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreUnavailable(
                f"the inventory database could not be flushed to disk: {exc.strerror}",
                UNAVAILABLE_HINT,
            ) from exc
        try:
            os.fdatasync(descriptor)
        except OSError as exc:
            raise StoreUnavailable(
                f"the inventory database could not be flushed to disk: {exc.strerror}",
                UNAVAILABLE_HINT,
            ) from exc
        finally:
            os.close(descriptor)
        return
    with transaction(engine, write=True) as connection:
        connection.exec_driver_sql("SELECT txid_current()")


@contextlib.contextmanager
def transaction(engine: sa.Engine, *, write: bool, durable: bool = True) -> Iterator[sa.Connection]:
    """One transaction; a store that cannot be reached is StoreUnavailable (exit 3).

    `write` takes SQLite's write lock at BEGIN (see WRITE_FLAG). `durable=False` lets
    the commit return before it reaches the disk (SQLite synchronous=NORMAL, PostgreSQL
    synchronous_commit=off): for rows whose loss in a power cut is harmless, never for a
    certificate. A later durable commit still flushes everything committed before it.
    Inside `one_flush`, a durable commit is made as a non-durable one, and flushed with
    the block's others when it ends."""
    sqlite = engine.dialect.name == "sqlite"
    durable = _level_for(durable) if write else durable
    try:
        with _writing(engine, write and sqlite) as deadline, engine.connect() as connection:
            if write:
                _for_writing(connection, deadline)
            level = "FULL" if durable or not sqlite else "NORMAL"
            with _sqlite_synchronous(connection, level), connection.begin():
                if not durable and not sqlite:
                    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield connection
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"the inventory database is unavailable: {driver_message(exc)}", UNAVAILABLE_HINT
        ) from exc


@contextlib.contextmanager
def sqlite_cursor(engine: sa.Engine, *, write: bool, durable: bool = True) -> Iterator[Any]:
    """`transaction` on SQLite as the driver's cursor of a pooled connection, without
    SQLAlchemy's Connection, transaction and result objects (their cost is most of a short
    transaction's CPU). The same rules: a write queues on this process's writer lock and
    takes the write lock at BEGIN IMMEDIATE, the two waits sharing one deadline; `durable`
    and `one_flush` as there; committed when the block ends, rolled back if it raises. A
    read is BEGIN ... COMMIT (several statements see one snapshot).

    Driver errors are SQLAlchemy's, as `connection.execute` raises them (an
    IntegrityError is sa.exc.IntegrityError), and OperationalError is StoreUnavailable."""
    import sqlite3

    durable = _level_for(durable) if write else True
    try:
        with (
            _writing(engine, write) as deadline,
            # The pool's checkout checks the file (see _tune_sqlite); closing returns it.
            contextlib.closing(engine.raw_connection()) as connection,
            contextlib.closing(connection.cursor()) as cursor,
        ):
            if not durable:
                cursor.execute("PRAGMA synchronous=NORMAL")
            try:
                if write:
                    _begin_immediate(cursor, deadline)
                else:
                    cursor.execute("BEGIN")
                try:
                    yield cursor
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            finally:
                if not durable:  # FULL again before the pool has it back
                    _restore_full(connection, cursor)
    except sqlite3.Error as exc:
        wrapped = sa.exc.DBAPIError.instance(None, None, exc, sqlite3.Error)
        if isinstance(wrapped, sa.exc.OperationalError):
            raise StoreUnavailable(
                f"the inventory database is unavailable: {driver_message(wrapped)}",
                UNAVAILABLE_HINT,
            ) from exc
        raise wrapped from exc
    except sa.exc.OperationalError as exc:  # from the pool: a connection it could not open
        raise StoreUnavailable(
            f"the inventory database is unavailable: {driver_message(exc)}", UNAVAILABLE_HINT
        ) from exc


def _restore_full(connection: Any, cursor: Any) -> None:
    """synchronous=FULL again on a pooled connection a relaxed write used. If that fails,
    the connection is invalidated (closed, never handed out again): one left at NORMAL
    would make later durable commits on it not durable, and nothing would say so."""
    try:
        cursor.connection.rollback()  # only if COMMIT failed: the PRAGMA needs no transaction
        cursor.execute("PRAGMA synchronous=FULL")
    except BaseException:
        connection.invalidate()
        raise


class _WriterLock:
    """One SQLite engine's writer lock in this process, knowing which thread holds it: a
    write transaction opened inside another on the same thread would wait for the lock its
    own outer transaction holds (in SQLite's busy handler) and fail only after the whole
    busy timeout, a minute, as "unavailable". It is refused at once, as the bug it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to `timeout` seconds (0: only if it is free now)."""
        if self.owner == threading.get_ident():
            raise RuntimeError(
                "a write transaction was opened inside another one on the same SQLite "
                "store and thread: it would wait for its own lock"
            )
        if timeout > 0:
            taken = self._lock.acquire(timeout=timeout)
        else:
            taken = self._lock.acquire(blocking=False)
        if taken:
            self.owner = threading.get_ident()
        return taken

    def release(self) -> None:
        self.owner = None
        self._lock.release()


# One lock per SQLite engine that this process's writers take before BEGIN IMMEDIATE.
_WRITERS: weakref.WeakKeyDictionary[sa.Engine, _WriterLock] = weakref.WeakKeyDictionary()


def _fresh_writer_locks() -> None:
    # A child forked while a thread of its parent held a lock (serve --workers forks) would
    # inherit it held, by a thread that does not exist in the child: give it its own.
    for engine in list(_WRITERS):
        _WRITERS[engine] = _WriterLock()


os.register_at_fork(after_in_child=_fresh_writer_locks)


@contextlib.contextmanager
def _writing(engine: sa.Engine, sqlite_write: bool) -> Iterator[float | None]:
    """This process's writers to one SQLite file, one at a time, in the order they came.

    Without it, threads of one process that want the write lock at once meet SQLite's busy
    handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries: a writer that had to wait
    could sleep for many times what the holder took, and an ACME server spends most of its
    requests writing (every POST spends a nonce). Waiting here, a thread wakes as soon as
    the one before it is done. Writers in other processes still meet the busy handler.
    A write transaction nested in another on the same thread is refused with RuntimeError
    (see _WriterLock): it could only wait for itself.

    Yields None when the lock was free (SQLite's busy timeout is then the whole wait), else
    the deadline that the wait here and the one in SQLite share (WRITE_DEADLINE): a writer
    gives up after the busy timeout, not after it twice."""
    lock = _WRITERS.get(engine) if sqlite_write else None
    if lock is None:
        yield None
        return
    deadline = None
    if not lock.acquire():
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        if not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise StoreUnavailable(
                "the inventory database is unavailable: this process's other writers held it "
                f"for over {SQLITE_BUSY_TIMEOUT_MS / 1000:g} s",
                UNAVAILABLE_HINT,
            )
    try:
        yield deadline
    finally:
        lock.release()


@contextlib.contextmanager
def _sqlite_synchronous(connection: sa.Connection, level: str) -> Iterator[None]:
    """SQLite's synchronous level for the transactions inside (it cannot change within
    one), FULL again after: the connection may go back to a pool."""
    if level == "FULL":
        yield
        return
    # On the driver's connection: SQLAlchemy's would begin a transaction first.
    driver: Any = connection.connection.driver_connection
    driver.execute(f"PRAGMA synchronous={level}")
    try:
        yield
    finally:
        driver.execute("PRAGMA synchronous=FULL")


def driver_message(exc: sa.exc.DBAPIError) -> str:
    """The database driver's reason on one line (psycopg's span several)."""
    return printable(" ".join(str(exc.orig).split()), 500)


def unreachable_hint(exc: sa.exc.OperationalError) -> str:
    """The hint for a store that refused the connection. libpq says "no password supplied"
    or "password authentication failed" when the password is what is missing or wrong, and
    the URL, which never carries one, is then not what to check."""
    if "password" in str(exc.orig).lower():
        return PASSWORD_HINT
    return "check the store URL and that the database is reachable"


def current_revision(connection: sa.Connection) -> str | None:
    inspector = sa.inspect(connection)
    if not inspector.has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


class SchemaFromNewerPrivca(EnvironmentRefused):
    """The store is at a schema revision this privca does not know: a newer one migrated
    it (one replica or host upgraded before the others). privca never downgrades."""

    def __init__(self, revision: str) -> None:
        self.revision = revision
        super().__init__(
            f"the store is at schema revision '{printable(revision, 60)}', which this privca "
            f"(at '{SCHEMA_REVISION}') does not know: a newer privca migrated it",
            "run that newer privca here too: every host and replica that opens this store "
            "needs it (privca never downgrades a store)",
        )


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(__file__).parent / "migrations"))
    return any(script.revision == revision for script in scripts.walk_revisions())


def migrate(engine: sa.Engine) -> str | None:
    """Bring the schema to SCHEMA_REVISION. Cheap when it already is (no Alembic import).

    Returns the revision the database had before (None for a new one).

    Raises:
        SchemaFromNewerPrivca: the store is at a revision this privca does not know.
    """
    try:
        with engine.connect() as connection:
            before = current_revision(connection)
            if before == SCHEMA_REVISION:
                return before
            if before is not None and not _known_revision(before):
                # Alembic would fail with "Can't locate revision", an internal error.
                raise SchemaFromNewerPrivca(before)
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"cannot open the inventory database: {driver_message(exc)}",
            unreachable_hint(exc),
        ) from exc
    except sa.exc.DatabaseError as exc:  # SQLite: "file is not a database" (overwritten)
        raise StoreUnavailable(
            f"cannot read the inventory database: {driver_message(exc)}",
            "the file was overwritten or damaged: restore the CA from a backup (privca restore)"
            if engine.dialect.name == "sqlite"
            # PostgreSQL: e.g. a parameter libpq does not know (`?sslmod=`) in the URL
            else "check the store URL's parameters and that privca may read the database",
        ) from exc
    with engine.connect() as connection, _for_writing(connection).begin():
        if engine.dialect.name == "postgresql":
            # Serialise replicas that start at the same time.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7279)"))
        upgrade_schema(connection)
    return before


def upgrade_schema(connection: sa.Connection) -> None:
    """Run the migrations up to SCHEMA_REVISION inside the transaction `connection` has
    begun: on PostgreSQL, whatever the caller writes next commits or rolls back with the
    schema (a restore leaves no half-made store behind)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


# Connections that a parent process's OwnConnections had open when this process forked
# from it: kept here, never used nor closed, for this process's life. SQLite must not close
# or use a connection opened in another process (its locks and WAL index are the
# parent's), and sqlite3 closes a connection that is garbage collected. serve's workers
# leave with os._exit, so nothing closes them at exit either.
_INHERITED: list[Any] = []


class OwnConnection:
    """A SQLite connection of its own beside the pool, for a probe read often (no pool, no
    SQLAlchemy, no transaction left open), and the lock its users take around it (sqlite3
    connections are not for concurrent use).

    It belongs to one process. A child forked after it opened (serve --workers forks)
    opens one of its own at its first use, and sets the parent's aside, never used nor
    closed (_INHERITED); the lock is a new one too, as a thread of the parent may have held
    it, and no thread in the child would ever release it. Opened with mode=rw: never
    creates a database file (the pool refuses a vanished one too)."""

    def __init__(self, file: DatabaseFile) -> None:
        self.file = file
        self.lock = threading.Lock()
        self._connection: Any = None
        # How many connections this object has opened, the one in use included (read with
        # `lock` held): tells a value read on one from a value read on another.
        self.opened = 0
        _OWN_CONNECTIONS.add(self)

    def _opened_connection(self) -> Any:
        """The open connection (call with `lock` held); sqlite3.Error if it cannot open,
        or if the file at the path is not the store's (DatabaseFile) once it has."""
        import sqlite3
        import urllib.parse

        if self._connection is None:
            self._connection = sqlite3.connect(
                f"file:{urllib.parse.quote(str(self.file.path))}?mode=rw",
                uri=True,
                timeout=1.0,
                check_same_thread=False,
            )
            self.opened += 1
            if not self.file.unchanged():  # replaced between a caller's check and the open
                self._close()
                raise sqlite3.OperationalError("the database file was replaced")
        return self._connection

    def read(self, sql: str) -> tuple[list[Any], int] | None:
        """The rows of one statement, and which connection of this object's it ran on (see
        `opened`); None when the caller must ask the store instead: the file at the path
        is not the store's (the pool then refuses, and says why), or this cannot read."""
        import sqlite3

        if not self.file.unchanged():
            return None
        try:
            with self.lock:
                # fetchall: the statement ends here and keeps no read snapshot open.
                return self._opened_connection().execute(sql).fetchall(), self.opened
        except sqlite3.Error:
            return None

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _forked(self) -> None:
        self.lock = threading.Lock()
        if self._connection is not None:
            _INHERITED.append(self._connection)
            self._connection = None

    def close(self) -> None:
        with self.lock:
            self._close()


# Every OwnConnection of this process, for the fork hook below.
_OWN_CONNECTIONS: weakref.WeakSet[OwnConnection] = weakref.WeakSet()


def _own_connections_after_fork() -> None:
    # At the fork, not at the child's next use: one the child drops before using it would
    # otherwise take the parent's connection with it (closed when collected).
    for own in list(_OWN_CONNECTIONS):
        own._forked()


os.register_at_fork(after_in_child=_own_connections_after_fork)


# data_version counts from the same small number on every new connection: the values of
# the n-th connection an OwnConnection opened are offset by n times this, far above any
# count of commits one connection sees.
_CONNECTION_EPOCH = 1 << 48


class ChangeCounter:
    """SQLite's `PRAGMA data_version` on a connection of its own (OwnConnection): it
    changes when any other connection commits, and reading it takes no lock and no query
    plan. Its values on a new connection (a forked child's, or one opened again) never
    equal those of an earlier one, so a cache keyed on a value read before is re-read."""

    def __init__(self, file: DatabaseFile) -> None:
        self._own = OwnConnection(file)

    def value(self) -> int | None:
        """The counter, or None if it cannot be read (callers then re-read the store): also
        once another file is at the path, as the old file's counter stands still."""
        read = self._own.read("PRAGMA data_version")
        if read is None:
            return None
        rows, connection_number = read
        return int(rows[0][0]) + connection_number * _CONNECTION_EPOCH

    def close(self) -> None:
        self._own.close()


# action, serial, detail (an object; a plain string is kept as {"note": ...})
Event = tuple[str, int | str | None, auditlog.Detail | str | None]


class Change:
    """One write transaction: the statements of a change and the audit entries it appends."""

    def __init__(self, connection: sa.Connection, now: dt.datetime) -> None:
        self.connection = connection
        self.now = now
        self.last_seq = 0  # the last audit entry this change appended

    def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]:
        return self.connection.execute(statement, parameters)

    def record(
        self,
        action: str,
        serial: int | str | None = None,
        detail: auditlog.Detail | str | None = None,
    ) -> None:
        """Append one entry (what happened, to which serial) to the audit log."""
        self.record_all([(action, serial, detail)])

    def record_all(self, happened: Iterable[Event]) -> None:
        appended = auditlog.append(
            self.connection,
            self.now,
            (
                (action, serial_hex(serial) if isinstance(serial, int) else serial, detail)
                for action, serial, detail in happened
            ),
        )
        if appended:
            self.last_seq = appended[-1].seq


class Database:
    """One inventory database, safe to share between threads and processes: reads on
    plain connections, every change in one write transaction (`change`)."""

    def __init__(self, url: str, password: str | None = None) -> None:
        """`password` is the PostgreSQL password, never part of `url` (check_store_url)."""
        self.url = url
        self.engine = create_engine(url, password)
        # The SQLite file every connection of this process reads (None elsewhere).
        self.file = database_file(self.engine)
        # The newest audit entry this process committed: lets the authority tell whether
        # a checkpoint may be due without asking the database after every change.
        self.appended_seq = 0

    def migrate(self) -> str | None:
        """Bring the schema up to date; returns the revision it had before."""
        return migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection for queries; connection failures become StoreUnavailable (exit 3)."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(
                f"the inventory database is unavailable: {driver_message(exc)}"
            ) from exc

    @contextlib.contextmanager
    def change(self, now: dt.datetime, *, durable: bool = True) -> Iterator[Change]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends
        and rolled back if it raises; connection failures become StoreUnavailable.
        `durable=False` as for `transaction`: only for rows a later durable commit must
        follow before anything depends on them. Inside `one_flush`, see there."""
        with transaction(self.engine, write=True, durable=durable) as connection:
            change = Change(connection, now)
            yield change
        self.appended_seq = max(self.appended_seq, change.last_seq)

    def change_counter(self) -> ChangeCounter | None:
        """A cheap "has anyone committed since?" probe, or None where the database has none."""
        if self.file is None:
            return None
        return ChangeCounter(self.file)
