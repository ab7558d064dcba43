"""Engines and migrations: SQLite tuned for durability and concurrent writers, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from privca.errors import StoreUnavailable
from privca.home import create_private_file
from privca.store.schema import SCHEMA_REVISION

SQLITE_BUSY_TIMEOUT_MS = 60_000
# Execution option marking a connection that will write: SQLite then takes the write lock
# at BEGIN, so writers queue on the busy timeout; readers use a plain BEGIN and never wait.
WRITE_OPTIONS = {"privca_write": True}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite:///PATH URL (None for in-memory or URI forms)."""
    try:
        database = sa.engine.make_url(url).database
    except sa.exc.ArgumentError:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path is not None:
            # SQLite creates the database with the umask (0644, or 0666 under umask 000)
            # and gives its -wal, -shm and -journal files the database's mode.
            create_private_file(path)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = sa.create_engine(
                url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, poolclass=sa.NullPool
            )
            _tune_sqlite(engine)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreUnavailable(
            f"store URL '{_redact(url)}' is not usable: {exc}",
            "use sqlite:///PATH or postgresql://USER@HOST/DB in privca.toml",
        ) from exc
    return engine


def _tune_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
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

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so concurrent writers queue on the busy
        # timeout instead of failing with "database is locked" when a read upgrades to a write.
        if connection.get_execution_options().get("privca_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _switch_to_wal(cursor: Any) -> None:
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid>"


def current_revision(connection: sa.Connection) -> str | None:
    inspector = sa.inspect(connection)
    if not inspector.has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to SCHEMA_REVISION. Cheap when it already is (no Alembic import)."""
    try:
        with engine.connect() as connection:
            if current_revision(connection) == SCHEMA_REVISION:
                return
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"cannot open the inventory database: {exc.orig}",
            "check the store URL and that the database is reachable",
        ) from exc
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.connect() as connection, connection.execution_options(**WRITE_OPTIONS).begin():
        if engine.dialect.name == "postgresql":
            # Serialise replicas that start at the same time.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7279)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
