"""How ACME rows are read and written: one codec per row type, one row lookup, one
transaction helper, and state transitions as compare-and-set updates."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import sqlalchemy as sa

from privca.acme.repository import (
    AccountRow,
    AuthorizationRow,
    ChallengeRow,
    EabKeyRow,
    OrderRow,
    ProblemDocument,
)
from privca.acme.state import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
    Transition,
)
from privca.errors import StoreUnavailable
from privca.store.database import (
    UNAVAILABLE_HINT,
    driver_message,
    one_flush,
    sqlite_cursor,
    transaction,
)
from privca.store.schema import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_orders,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    RowT = TypeVar("RowT", bound=DataclassInstance)
else:
    RowT = TypeVar("RowT")

Convert = Callable[[Any], Any]


class Sealer(Protocol):
    """What seals secrets at rest (privca.keys.sealing.SealingKey); the store never holds
    the key, only sealed values."""

    def seal(self, secret: bytes, context: str) -> str: ...

    def unseal(self, sealed: str, context: str) -> bytes: ...


def dump_problem(problem: ProblemDocument | None) -> str | None:
    return json.dumps(problem) if problem else None


def _load_problem(text: str | None) -> ProblemDocument | None:
    return json.loads(text) if text else None


def _load_identifiers(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((i["type"], i["value"]) for i in json.loads(text))


def _dump_identifiers(identifiers: Iterable[tuple[str, str]]) -> str:
    return json.dumps([{"type": kind, "value": value} for kind, value in identifiers])


@dataclass(frozen=True)
class Codec(Generic[RowT]):
    """Between a row value of privca.acme.repository and its table's columns: a field's
    column has the field's name; `load`/`dump` convert the fields that need it."""

    row_type: type[RowT]
    table: sa.Table
    load: Mapping[str, Convert]
    dump_fields: Mapping[str, Convert]
    # (field, converter) in field order, worked out once: ~17 rows are read per issuance,
    # and `fields()` and the lookups per row cost more than building the row.
    _loads: tuple[tuple[str, Convert | None], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        loads = tuple((f.name, self.load.get(f.name)) for f in fields(self.row_type))
        object.__setattr__(self, "_loads", loads)

    def row(self, record: sa.Row[Any]) -> RowT:
        return self.from_mapping(record._mapping)

    def from_mapping(self, values: Mapping[Any, Any]) -> RowT:
        return self.row_type(
            **{
                name: values[name] if load is None else load(values[name])
                for name, load in self._loads
            }
        )

    def dump(self, value: RowT) -> dict[str, Any]:
        return {
            f.name: self.dump_fields.get(f.name, _same)(getattr(value, f.name))
            for f in fields(self.row_type)
        }


def _same(value: Any) -> Any:
    return value


ACCOUNTS = Codec(
    AccountRow,
    acme_accounts,
    load={"status": AccountStatus, "contact": lambda text: tuple(json.loads(text))},
    dump_fields={"status": str, "contact": lambda contact: json.dumps(list(contact))},
)
ORDERS = Codec(
    OrderRow,
    acme_orders,
    load={"status": OrderStatus, "identifiers": _load_identifiers, "error": _load_problem},
    dump_fields={"status": str, "identifiers": _dump_identifiers, "error": dump_problem},
)
AUTHORIZATIONS = Codec(
    AuthorizationRow,
    acme_authorizations,
    load={"status": AuthorizationStatus, "wildcard": bool},
    dump_fields={"status": str},
)
CHALLENGES = Codec(
    ChallengeRow,
    acme_challenges,
    load={"status": ChallengeStatus, "error": _load_problem},
    dump_fields={"status": str, "error": dump_problem},
)
EAB_KEYS = Codec(EabKeyRow, acme_eab_keys, load={}, dump_fields={})


def moved(table: sa.Table, transition: Transition[Any]) -> sa.Update:
    """The UPDATE that applies `transition`: only rows still in one of its sources move."""
    return (
        table.update()
        .where(table.c.status.in_(sorted(str(s) for s in transition.sources)))
        .values(status=str(transition.target))
    )


_MOVES: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], sa.Update] = {}


def move_by_id(
    statements: Statements,
    table: sa.Table,
    transition: Transition[Any],
    row_id: str,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Apply `transition` to the row `row_id` (setting `values` with it); whether it moved.
    The statement is built once per table, transition and columns set (see _BY_ID)."""
    values = values or {}
    sources = tuple(sorted(str(s) for s in transition.sources))
    key = (table.name, str(transition.target), sources, tuple(sorted(values)))
    statement = _MOVES.get(key)
    if statement is None:
        statement = (
            moved(table, transition)
            .where(table.c.id == sa.bindparam("row_id"))
            .values(
                {name: sa.bindparam(f"set_{name}", type_=table.c[name].type) for name in values}
            )
        )
        _MOVES[key] = statement
    parameters = {"row_id": row_id, **{f"set_{name}": value for name, value in values.items()}}
    return statements.run(statement, parameters) == 1


class Queries:
    """What every part of the ACME store shares: the engine, the sealer, transactions and
    the row lookups."""

    def __init__(self, engine: sa.Engine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        self.sealer = sealer

    def transaction(
        self, *, write: bool = True, durable: bool = True
    ) -> contextlib.AbstractContextManager[sa.Connection]:
        return transaction(self.engine, write=write, durable=durable)

    def one_flush(self) -> contextlib.AbstractContextManager[None]:
        """See privca.store.database.one_flush."""
        return one_flush(self.engine)

    def first(
        self,
        codec: Codec[RowT],
        where: sa.ColumnElement[bool],
        connection: sa.Connection | None = None,
    ) -> RowT | None:
        """The one row matching `where`, or None; inside `connection`'s transaction if given."""
        record = self.first_record(codec.table.select().where(where), connection)
        return codec.row(record) if record is not None else None

    def first_record(
        self, query: sa.Select[Any], connection: sa.Connection | None = None
    ) -> sa.Row[Any] | None:
        """The first record `query` selects, or None (for columns no row value carries)."""
        with self._reading(connection) as reader:
            return reader.execute(query).first()

    def by_id(
        self, codec: Codec[RowT], row_id: str, connection: sa.Connection | None = None
    ) -> RowT | None:
        """The row whose id is `row_id`, or None; inside `connection`'s transaction if given.
        Every ACME request reads a few rows by id, so the statement is built once."""
        if connection is None and self.engine.dialect.name == "sqlite":
            with _sqlite_reads(self.engine, several=False) as reads:
                return reads.by_id(codec, row_id)
        with self._reading(connection) as reader:
            record = reader.execute(_by_id(codec.table), {"row_id": row_id}).first()
        return codec.row(record) if record is not None else None

    def all(
        self,
        codec: Codec[RowT],
        query: sa.Select[Any],
        connection: sa.Connection | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> list[RowT]:
        """Every row `query` selects (with the values of its bound `parameters`); inside
        `connection`'s transaction if given."""
        with self._reading(connection) as reader:
            return [codec.row(record) for record in reader.execute(query, parameters)]

    @contextlib.contextmanager
    def reads(self, *, one: bool = False) -> Iterator[Reads]:
        """Reads of statements built once, several in one read transaction (`one`: a
        single statement, its own transaction): on SQLite without SQLAlchemy's objects
        (_SqliteCursor), elsewhere through a transaction."""
        if self.engine.dialect.name == "sqlite":
            with _sqlite_reads(self.engine, several=not one) as reads:
                yield reads
        else:
            with self.transaction(write=False) as connection:
                yield _OnConnection(self, connection)

    @contextlib.contextmanager
    def writes(self, *, durable: bool = True) -> Iterator[Statements]:
        """One write transaction, as `transaction()`, for statements built once: on SQLite
        on the pooled connection's cursor (_SqliteCursor; store/database.py sqlite_cursor),
        elsewhere through SQLAlchemy's Connection. Every ACME POST writes at least once
        (its nonce), and those objects were most of a short write's CPU."""
        if self.engine.dialect.name == "sqlite":
            with sqlite_cursor(self.engine, write=True, durable=durable) as cursor:
                yield _SqliteCursor(self.engine.dialect, cursor)
        else:
            with self.transaction(durable=durable) as connection:
                yield _OnConnection(self, connection)

    @contextlib.contextmanager
    def _reading(self, connection: sa.Connection | None) -> Iterator[sa.Connection]:
        if connection is not None:
            yield connection
        else:
            with self.transaction(write=False) as reader:
                yield reader


class Reads(Protocol):
    """Reads in one read transaction (Queries.reads)."""

    def by_id(self, codec: Codec[RowT], row_id: str) -> RowT | None: ...

    def all(
        self, codec: Codec[RowT], query: sa.Select[Any], parameters: Mapping[str, str]
    ) -> list[RowT]:
        """The rows of `query` (built once), with the value of its one bound parameter."""

    # Any statement built once (a module constant, or cached like _BY_ID's): the fast
    # SQLite path compiles each once per set of parameter names and keeps it.

    def first(
        self, statement: sa.Executable, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row a SELECT or a RETURNING gives, or None."""

    def scalars(self, statement: sa.Select[Any], parameters: Mapping[str, Any]) -> list[Any]:
        """The first column of every row a SELECT gives."""


class Statements(Reads, Protocol):
    """Statements in one write transaction (Queries.writes)."""

    def run(self, statement: sa.Executable, parameters: Mapping[str, Any]) -> int:
        """Run an INSERT, UPDATE or DELETE; how many rows it matched."""

    def run_many(self, statement: sa.Insert, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT once per row (every row with the same columns)."""


@dataclass(frozen=True)
class _OnConnection:
    queries: Queries
    connection: sa.Connection

    def by_id(self, codec: Codec[RowT], row_id: str) -> RowT | None:
        return self.queries.by_id(codec, row_id, self.connection)

    def all(
        self, codec: Codec[RowT], query: sa.Select[Any], parameters: Mapping[str, str]
    ) -> list[RowT]:
        return self.queries.all(codec, query, self.connection, parameters)

    def run(self, statement: sa.Executable, parameters: Mapping[str, Any]) -> int:
        return int(self.connection.execute(statement, parameters).rowcount)

    def run_many(self, statement: sa.Insert, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:  # SQLAlchemy runs a statement given no rows once, without parameters
            self.connection.execute(statement, list(rows))

    def first(
        self, statement: sa.Executable, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        row = self.connection.execute(statement, parameters).first()
        return tuple(row) if row is not None else None

    def scalars(self, statement: sa.Select[Any], parameters: Mapping[str, Any]) -> list[Any]:
        return list(self.connection.execute(statement, parameters).scalars())


@dataclass(frozen=True)
class _SqliteSelect:
    """A statement built once, as SQLite runs it: its SQL, and each selected column's
    name and result processor (what SQLAlchemy's result converts the value with)."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Convert | None, ...]

    def rows(self, cursor: Any, parameter: str) -> list[dict[str, Any]]:
        cursor.execute(self.sql, (parameter,))
        # fetchall: the statement ends here and keeps no read snapshot open.
        return [
            {
                name: value if process is None else process(value)
                for name, value, process in zip(self.names, row, self.processors, strict=True)
            }
            for row in cursor.fetchall()
        ]


# Keyed by the statement object: only statements built once (module constants, _BY_ID).
_SQLITE_SELECTS: dict[int, tuple[sa.Select[Any], _SqliteSelect]] = {}


def _sqlite_select(dialect: sa.Dialect, query: sa.Select[Any]) -> _SqliteSelect:
    found = _SQLITE_SELECTS.get(id(query))
    if found is None or found[0] is not query:
        compiled = query.compile(dialect=dialect)
        binds = list(compiled.binds.values())
        placeholders = compiled.positiontup or ()
        if len(placeholders) != 1 or binds[0].type.bind_processor(dialect) is not None:
            # Never for the statements read this way (one id or foreign key, a string).
            raise ValueError("a fast SQLite read takes one string parameter")
        columns = list(query.selected_columns)
        select = _SqliteSelect(
            str(compiled),
            tuple(column.name for column in columns),
            tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )
        found = (query, select)
        _SQLITE_SELECTS[id(query)] = found
    return found[1]


@dataclass(frozen=True)
class _SqliteStatement:
    """A statement built once, as SQLite runs it for one set of parameter names: its SQL
    (IN lists expanded), where each positional value comes from (a parameter by name, or
    a value the statement carries) with the bind processor SQLAlchemy would apply, and the
    result processor of each column it returns."""

    sql: str
    # (parameter name, None) or (None, the statement's own value, processed already)
    slots: tuple[tuple[str | None, Any], ...]
    binds: tuple[Convert | None, ...]
    processors: tuple[Convert | None, ...]

    def values(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if name is None else parameters[name] if bind is None else bind(parameters[name])
            for (name, value), bind in zip(self.slots, self.binds, strict=True)
        )

    def converted(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, self.processors, strict=True)
        )


# Keyed by the statement object and the parameter names: only statements built once.
# The ACME store has a few dozen; the bound is far above that.
_SQLITE_STATEMENTS_KEPT = 512
_SQLITE_STATEMENTS: dict[tuple[int, frozenset[str]], tuple[sa.Executable, _SqliteStatement]] = {}


def _sqlite_statement(
    dialect: sa.Dialect, statement: sa.Executable, parameters: Mapping[str, Any]
) -> _SqliteStatement:
    names = frozenset(parameters)
    key = (id(statement), names)
    found = _SQLITE_STATEMENTS.get(key)
    if found is None or found[0] is not statement:
        if len(_SQLITE_STATEMENTS) >= _SQLITE_STATEMENTS_KEPT:
            # A statement built per call by mistake would otherwise grow this for ever
            # (each entry keeps its statement alive): start over, at the cost of compiling.
            _SQLITE_STATEMENTS.clear()
        found = (statement, _compile_for_sqlite(dialect, statement, names))
        _SQLITE_STATEMENTS[key] = found
    return found[1]


def _compile_for_sqlite(
    dialect: sa.Dialect, statement: sa.Executable, names: frozenset[str]
) -> _SqliteStatement:
    """What SQLAlchemy's execution does once per call, done once: compile for these
    parameter names (an INSERT's columns are the names given), expand IN lists, pick the
    bind and result processors."""
    clause: Any = statement  # every Executable given here is a ClauseElement
    compiled = clause.compile(dialect=dialect, column_keys=sorted(names))
    if compiled.insert_prefetch or compiled.update_prefetch:
        # Python-side column defaults: SQLAlchemy computes them per execution.
        raise ValueError("a fast SQLite write takes no column defaults")
    late = names.intersection(
        bind.key for bind in (*compiled.post_compile_params, *compiled.literal_execute_params)
    )
    if late:
        # An expanding IN list or a literal rendered per call: compiled once with no value,
        # it would match nothing (or render NULL) whatever the caller passes.
        raise ValueError(f"a fast SQLite statement takes no per-call IN list: {sorted(late)}")
    expanded = compiled.construct_expanded_state(dict.fromkeys(names))
    slots: list[tuple[str | None, Any]] = []
    binds: list[Convert | None] = []
    for name in expanded.positiontup or ():
        bind = compiled.binds.get(name)
        process = (
            bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind is not None
            else expanded.processors.get(name)  # an expanded IN list's value
        )
        if name in names:
            slots.append((name, None))
            binds.append(process)
        else:
            value = expanded.parameters[name]
            slots.append((None, value if process is None else process(value)))
            binds.append(None)
    columns = list(getattr(statement, "exported_columns", ()))
    return _SqliteStatement(
        expanded.statement,
        tuple(slots),
        tuple(binds),
        tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ),
    )


@dataclass(frozen=True)
class _SqliteCursor:
    """Reads and writes on a pooled connection's cursor, without SQLAlchemy's Connection,
    statement execution and result objects: ~0.04 ms of CPU for a primary-key read where
    those took ~0.14 ms (several reads per ACME request). Values are converted by each
    column's own bind and result processors, as SQLAlchemy's execution does."""

    dialect: sa.Dialect
    cursor: Any

    def by_id(self, codec: Codec[RowT], row_id: str) -> RowT | None:
        rows = _sqlite_select(self.dialect, _by_id(codec.table)).rows(self.cursor, row_id)
        return codec.from_mapping(rows[0]) if rows else None

    def all(
        self, codec: Codec[RowT], query: sa.Select[Any], parameters: Mapping[str, str]
    ) -> list[RowT]:
        (parameter,) = parameters.values()
        rows = _sqlite_select(self.dialect, query).rows(self.cursor, parameter)
        return [codec.from_mapping(row) for row in rows]

    # Any statement, its parameters by name (run and run_many: in Queries.writes).

    def run(self, statement: sa.Executable, parameters: Mapping[str, Any]) -> int:
        compiled = _sqlite_statement(self.dialect, statement, parameters)
        self.cursor.execute(compiled.sql, compiled.values(parameters))
        return int(self.cursor.rowcount)

    def run_many(self, statement: sa.Insert, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = _sqlite_statement(self.dialect, statement, rows[0])
        self.cursor.executemany(compiled.sql, [compiled.values(row) for row in rows])

    def first(
        self, statement: sa.Executable, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        compiled = _sqlite_statement(self.dialect, statement, parameters)
        self.cursor.execute(compiled.sql, compiled.values(parameters))
        # fetchall: a RETURNING statement is done only once every row is fetched.
        rows = self.cursor.fetchall()
        return compiled.converted(rows[0]) if rows else None

    def scalars(self, statement: sa.Select[Any], parameters: Mapping[str, Any]) -> list[Any]:
        compiled = _sqlite_statement(self.dialect, statement, parameters)
        self.cursor.execute(compiled.sql, compiled.values(parameters))
        return [compiled.converted(row)[0] for row in self.cursor.fetchall()]


@contextlib.contextmanager
def _sqlite_reads(engine: sa.Engine, *, several: bool) -> Iterator[_SqliteCursor]:
    """One read transaction on SQLite: a pooled connection (its checkout still checks the
    file; the connection keeps its PRAGMAs), its driver in autocommit as the pool sets it
    up. One statement is its own read transaction, as BEGIN + SELECT + COMMIT was;
    `several` reads see one snapshot, inside BEGIN ... COMMIT as before. Driver errors
    (OperationalError) are StoreUnavailable, as in store/database.py transaction()."""
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                if several:
                    cursor.execute("BEGIN")
                try:
                    yield _SqliteCursor(engine.dialect, cursor)
                finally:
                    if several:
                        cursor.execute("COMMIT")  # a read: nothing to keep or undo
            finally:
                cursor.close()
        finally:
            connection.close()
    # What transaction() turns into StoreUnavailable, from the pool or from the driver.
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(
            f"the inventory database is unavailable: {driver_message(exc)}", UNAVAILABLE_HINT
        ) from exc
    except sqlite3.OperationalError as exc:
        wrapped = sa.exc.OperationalError(None, None, exc)
        raise StoreUnavailable(
            f"the inventory database is unavailable: {driver_message(wrapped)}", UNAVAILABLE_HINT
        ) from exc


# A statement built for every call costs SQLAlchemy a new cache key, ~0.04 ms of CPU
# here, three times what running a statement built once with a bound parameter costs.
_BY_ID: dict[str, sa.Select[Any]] = {}


def _by_id(table: sa.Table) -> sa.Select[Any]:
    statement = _BY_ID.get(table.name)
    if statement is None:
        statement = table.select().where(table.c.id == sa.bindparam("row_id"))
        _BY_ID[table.name] = statement
    return statement


__all__ = [
    "ACCOUNTS",
    "AUTHORIZATIONS",
    "CHALLENGES",
    "EAB_KEYS",
    "ORDERS",
    "Codec",
    "Queries",
    "Sealer",
    "Statements",
    "dump_problem",
    "move_by_id",
    "moved",
]
