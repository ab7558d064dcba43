"""The store's INSERTs and UPDATEs as a test sees them, each with the commit level of its
transaction ("on": waits for the disk; "off": SQLite synchronous=NORMAL, PostgreSQL
synchronous_commit=off).

On SQLite from the driver's trace callback on every connection the pool hands out: the
ACME store writes on the driver's cursor, where SQLAlchemy's events never look. The level
is read from the connection when it is handed out, then followed through the PRAGMAs it
runs (a trace callback may not run statements of its own). On PostgreSQL, where every
write goes through SQLAlchemy, from its events, asking the server."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_SQLITE_LEVELS = {0: "off", 1: "off", 2: "on", 3: "on"}
_PRAGMA = re.compile(r"PRAGMA synchronous\s*=\s*(\w+)", re.IGNORECASE)
_NAMED = {"OFF": "off", "NORMAL": "off", "FULL": "on", "EXTRA": "on"}


@dataclass(frozen=True)
class Write:
    verb: str  # INSERT | UPDATE
    table: str
    level: str  # on | off (PostgreSQL: the server's synchronous_commit)


def _write(statement: str) -> tuple[str, str] | None:
    words = statement.split()
    if not words or words[0].upper() not in ("INSERT", "UPDATE"):
        return None
    verb = words[0].upper()
    table = words[2] if verb == "INSERT" else words[1]
    return verb, table.split("(")[0]


class _Trace:
    def __init__(self, seen: list[Write], level: str, watching: list[bool]) -> None:
        self.seen = seen
        self.level = level
        self.watching = watching  # the pool keeps the callback after the block: [False]
        self.last = ""

    def __call__(self, statement: str) -> None:
        # The driver calls back once more with its statement's text for every trigger
        # that statement fires (certificates has triggers): one statement, one entry.
        # (Executed twice with the same values, it would count once: never here.)
        repeated, self.last = statement == self.last, statement
        if repeated or not self.watching[0]:
            return
        pragma = _PRAGMA.search(statement)
        if pragma is not None:
            self.level = _NAMED[pragma.group(1).upper()]
            return
        found = _write(statement)
        if found is not None:
            self.seen.append(Write(*found, self.level))


@contextlib.contextmanager
def writes_seen(engine: sa.Engine) -> Iterator[list[Write]]:
    """Every write on `engine` while the block runs, in order."""
    seen: list[Write] = []
    if engine.dialect.name == "sqlite":
        watching = [True]

        def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            level = dbapi_connection.execute("PRAGMA synchronous").fetchone()[0]
            trace = _Trace(seen, _SQLITE_LEVELS[level], watching)
            dbapi_connection.set_trace_callback(trace)

        sa.event.listen(engine, "checkout", on_checkout)
        try:
            yield seen
        finally:
            watching[0] = False
            sa.event.remove(engine, "checkout", on_checkout)
        return

    def on_execute(connection: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        found = _write(statement)
        if found is not None:
            level = str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())
            seen.append(Write(*found, level))

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
