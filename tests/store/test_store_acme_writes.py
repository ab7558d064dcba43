"""ACME writes on SQLite run on the pooled connection's cursor (rows.py `Queries.writes`,
store/database.py `sqlite_cursor`), not through SQLAlchemy's Connection. The same writes
through SQLAlchemy must leave the same bytes in the database and give the same answers,
and the cursor's transaction must keep transaction()'s rules: all or nothing, errors as
SQLAlchemy raises them (StoreUnavailable for an unavailable store), the connection back
at synchronous=FULL after a relaxed commit."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from privca.acme.repository import AccountRow, OrderRow
from privca.acme.state import AccountStatus, OrderStatus, order_finalizing, order_issued
from privca.errors import StoreUnavailable
from privca.store.acme import AcmeStore
from privca.store.acme.rows import Codec, Reads, RowT, Statements, _OnConnection
from privca.store.database import sqlite_cursor
from privca.store.inventory import Store
from tests.store.test_store_acme_orders import PROBLEM, _order

NOW = dt.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=dt.UTC)
LIFETIME = dt.timedelta(minutes=30)
TABLES = [
    "acme_accounts",
    "acme_orders",
    "acme_authorizations",
    "acme_challenges",
    "acme_spent_nonces",
]


class ThroughSqlalchemy(AcmeStore):
    """The ACME store with every read and write through SQLAlchemy's Connection, as on
    PostgreSQL."""

    @contextlib.contextmanager
    def writes(self, *, durable: bool = True) -> Iterator[Statements]:
        with self.transaction(durable=durable) as connection:
            yield _OnConnection(self, connection)

    @contextlib.contextmanager
    def reads(self, *, one: bool = False) -> Iterator[Reads]:
        with self.transaction(write=False) as connection:
            yield _OnConnection(self, connection)

    def by_id(
        self, codec: Codec[RowT], row_id: str, connection: sa.Connection | None = None
    ) -> RowT | None:
        with contextlib.ExitStack() as stack:
            if connection is None:
                connection = stack.enter_context(self.transaction(write=False))
            return super().by_id(codec, row_id, connection)


def _open(path: Path, kind: type[AcmeStore]) -> tuple[Store, AcmeStore]:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    return store, kind.of(store)


def _scenario(acme: AcmeStore) -> list[object]:
    """Every ACME write an issuance makes, and the refused ones, with what each answered."""
    answers: list[object] = []
    key = acme.nonce_key(NOW, starting=True)
    answers.append(acme.spend_nonce("n1", NOW + LIFETIME, key))
    answers.append(acme.spend_nonce("n1", NOW + LIFETIME, key))  # spent already
    answers.append(acme.spend_nonce("n2", NOW + LIFETIME, b"not the key"))
    answers.append(acme.spend_nonce_reading_account("n3", NOW + LIFETIME, key, "acct"))
    order, challenges = _order(acme, NOW, names=3)
    answers.append(acme.spend_nonce_reading_account("n4", NOW + LIFETIME, key, "acct"))
    answers.append(acme.spend_nonce_reading_account("n5", NOW + LIFETIME, key, "nobody"))
    answers.append(acme.spend_nonce_reading_account("n4", NOW + LIFETIME, key, "acct"))
    for challenge, valid in zip(challenges, [True, True, False], strict=True):
        answers.append(acme.start_challenge(challenge.id))
        answers.append(acme.start_challenge(challenge.id))  # started already
        acme.finish_challenge(challenge, valid=valid, now=NOW, error=None if valid else PROBLEM)
    answers.append(acme.order(order.id))
    # Another order, every column set, through to valid.
    ready = OrderRow(
        "order2", "acct", OrderStatus.READY, "server", (("dns", "*.b.test"), ("ip", "::1")),
        NOW, NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=7), None, None, "ari.id",
        NOW, issuer="second",
    )  # fmt: skip
    acme.add_order(ready, [], [])
    answers.append(acme.move_order("order2", order_issued()))  # not from ready
    answers.append(acme.move_order("order2", order_finalizing(), error=PROBLEM))
    answers.append(acme.move_order("order2", order_issued(), certificate_serial="0abc"))
    answers.append(acme.move_order("no-such-order", order_finalizing()))
    answers.append(acme.order_with_authorizations("order2"))
    # The reads that went on the cursor with them.
    answers.append(acme.account_by_thumbprint("thumb"))
    answers.append(acme.account_by_thumbprint("no such key"))
    for account, since in [("acct", NOW - LIFETIME), ("acct", NOW), ("nobody", NOW)]:
        answers.append(acme.count_orders_since(account, since))
    answers.append(acme.challenge_with_authorization("chall2"))
    answers.append(acme.authorization_with_challenges("authz0"))
    return answers


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the ACME tables as SQLite stores it (str, bytes, int: its storage class)."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in TABLES
        }


def test_the_cursor_writes_what_sqlalchemy_writes(tmp_path: Path) -> None:
    answers: dict[str, list[object]] = {}
    dumps = {}
    for name, kind in [("fast", AcmeStore), ("sqlalchemy", ThroughSqlalchemy)]:
        path = tmp_path / f"{name}.db"
        store, acme = _open(path, kind)
        try:
            answers[name] = _scenario(acme)
        finally:
            store.close()
        dumps[name] = _dump(path)
    assert answers["fast"] == answers["sqlalchemy"]
    assert dumps["fast"] == dumps["sqlalchemy"]
    assert all(dumps["fast"][table] for table in TABLES)  # every table was written
    assert answers["fast"][:3] == [True, False, False]


def test_a_duplicate_row_is_sqlalchemys_integrity_error_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    store, acme = _open(tmp_path / "privca.db", AcmeStore)
    try:
        order, _challenges = _order(acme, NOW, names=1)
        again = OrderRow(
            "order-b", "acct", OrderStatus.PENDING, "server", (("dns", "b.test"),),
            None, None, NOW, None, None, None, NOW,
        )  # fmt: skip
        authorization = acme.authorizations(order.id)[0]
        with pytest.raises(sa.exc.IntegrityError):
            acme.add_order(again, [authorization], [])  # the authorization's id is taken
        assert acme.order("order-b") is None  # the order's insert went with it
        acme.add_order(again, [], [])  # the connection is usable again
        assert acme.order("order-b") == again
    finally:
        store.close()


def test_a_failed_block_rolls_back_and_leaves_the_connection_durable(tmp_path: Path) -> None:
    store, acme = _open(tmp_path / "privca.db", AcmeStore)
    engine = sa.create_engine(store.engine.url, poolclass=sa.pool.StaticPool)
    try:
        key = acme.nonce_key(NOW)
        with pytest.raises(RuntimeError), sqlite_cursor(engine, write=True, durable=False) as cur:
            assert cur.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
            cur.execute("INSERT INTO acme_spent_nonces VALUES ('x', '2030-01-01 00:00:00')")
            raise RuntimeError("after the insert")
        assert acme.spend_nonce("x", NOW + LIFETIME, key)  # never spent: rolled back
        with engine.connect() as connection:  # the one connection StaticPool hands out
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()
        store.close()


@pytest.mark.parametrize(
    "write",
    [
        lambda acme: acme.spend_nonce("n", NOW + LIFETIME, b"k"),
        lambda acme: acme.start_challenge("chall0"),
        lambda acme: acme.move_order("order", order_finalizing()),
    ],
    ids=["spend", "start challenge", "move order"],
)
def test_a_write_to_a_vanished_sqlite_file_is_store_unavailable(
    tmp_path: Path, write: Callable[[AcmeStore], object]
) -> None:
    store, acme = _open(tmp_path / "privca.db", AcmeStore)
    try:
        acme.add_account(AccountRow("acct", "t", "{}", AccountStatus.VALID, (), None, NOW))
        store.database.engine.dispose()  # no pooled connection left to the file
        (tmp_path / "privca.db").rename(tmp_path / "aside.db")
        with pytest.raises(StoreUnavailable, match="unavailable"):
            write(acme)
        assert not (tmp_path / "privca.db").exists()  # nothing made an empty one
    finally:
        store.close()


@pytest.mark.parametrize(
    ("kind", "through_sqlalchemy"), [(AcmeStore, False), (ThroughSqlalchemy, True)]
)
def test_the_comparison_compares_two_paths(
    tmp_path: Path, kind: type[AcmeStore], through_sqlalchemy: bool
) -> None:
    """SQLAlchemy's execution events see the writes and reads of ThroughSqlalchemy only:
    the comparison above is between two paths, not one path twice."""
    store, acme = _open(tmp_path / "privca.db", kind)
    executed: list[str] = []

    def seen(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        executed.append(statement)

    try:
        _order(acme, NOW, names=1)
        key = acme.nonce_key(NOW)
        sa.event.listen(store.engine, "before_cursor_execute", seen)
        assert acme.spend_nonce_reading_account("n", NOW + LIFETIME, key, "acct")[0]
        assert acme.start_challenge("chall0")
        assert acme.count_orders_since("acct", NOW - LIFETIME)[0] == 1
        assert acme.account_by_thumbprint("thumb") is not None
        assert bool(executed) is through_sqlalchemy
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
        store.close()


_SPENT = sa.table("acme_spent_nonces", sa.column("value"), sa.column("expires"))


@pytest.fixture
def acme_store(tmp_path: Path) -> Iterator[AcmeStore]:
    store, acme = _open(tmp_path / "privca.db", AcmeStore)
    try:
        yield acme
    finally:
        store.close()


def test_statements_built_per_call_do_not_grow_the_compiled_cache(acme_store: AcmeStore) -> None:
    # The cursor path keeps what it compiled per statement object; one built per call by
    # mistake must cost compiling, never memory without end, and still run correctly.
    from privca.store.acme import rows

    with acme_store.writes() as statements:
        for number in range(rows._SQLITE_STATEMENTS_KEPT * 2):
            insert = sa.insert(_SPENT)  # a new statement object each time
            statements.run(insert, {"value": f"n{number}", "expires": "2030-01-01"})
            assert len(rows._SQLITE_STATEMENTS) <= rows._SQLITE_STATEMENTS_KEPT
    with acme_store.reads(one=True) as reads:
        count = sa.select(sa.func.count()).select_from(_SPENT)
        assert reads.scalars(count, {}) == [rows._SQLITE_STATEMENTS_KEPT * 2]


def test_a_per_call_in_list_is_refused_not_matched_against_nothing(acme_store: AcmeStore) -> None:
    # Compiled once with no value, an expanding IN parameter would match no row (an UPDATE
    # would move nothing, silently) whatever list the caller passes: refused instead. An
    # IN list the statement carries itself is compiled with its values and runs.
    with acme_store.writes() as statements:
        statements.run(sa.insert(_SPENT), {"value": "a", "expires": "2030-01-01"})
    per_call = sa.select(_SPENT.c.value).where(
        _SPENT.c.value.in_(sa.bindparam("values", expanding=True))
    )
    with acme_store.reads(one=True) as reads, pytest.raises(ValueError, match="per-call IN"):
        reads.scalars(per_call, {"values": ["a", "b"]})
    carried = sa.select(_SPENT.c.value).where(_SPENT.c.value.in_(["a", "b"]))
    with acme_store.reads(one=True) as reads:
        assert reads.scalars(carried, {}) == ["a"]
