"""Migrations: the pinned revision is the Alembic head, migrating is idempotent and safe to
run from several processes at once, and the migrated tables match schema.py."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import privca.store.database as database
from privca.errors import InputError, StoreUnavailable
from privca.keys.sealing import SealingKey
from privca.store.database import current_revision, sqlite_url
from privca.store.inventory import Intent, Store
from privca.store.schema import SCHEMA_REVISION, metadata

MIGRATIONS = Path(database.__file__).parent / "migrations"


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_schema_revision_is_the_single_alembic_head() -> None:
    heads = script_directory().get_heads()
    assert heads == [SCHEMA_REVISION]


def test_migrate_sets_the_revision(store: Store) -> None:
    with store.engine.connect() as connection:
        assert current_revision(connection) == SCHEMA_REVISION


def test_migrating_again_is_a_no_op_that_keeps_the_data(
    store: Store,
    open_store: Callable[[], Store],
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
) -> None:
    [serial] = issue_records(make_intent("keep.corp.internal"))
    store.migrate()
    store.migrate()
    again = open_store()  # migrates on open, as CertificateAuthority.open does
    record = again.get(serial)
    assert record is not None and record.der is not None
    assert again.count() == 1
    with again.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_concurrent_first_migrations_all_succeed(store_url: str, backend: str) -> None:
    """Several replicas starting at once on an empty database: one creates, the rest wait."""
    if backend == "sqlite":
        # Start from an empty file already in WAL mode (WAL is persistent). From a brand-new
        # file in rollback mode, `PRAGMA journal_mode=WAL` in database._tune_sqlite fails
        # now and then with 'database is locked' despite busy_timeout: a bug reported
        # separately; this test is about migrations racing, not about that.
        path = sa.make_url(store_url).database
        assert path is not None
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    stores = [Store(store_url) for _ in range(4)]

    def run(store: Store) -> None:
        try:
            barrier.wait()
            store.migrate()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        with stores[0].engine.connect() as connection:
            assert current_revision(connection) == SCHEMA_REVISION
    finally:
        for store in stores:
            store.close()


def _columns(engine: sa.Engine, table: str) -> dict[str, tuple[bool, bool]]:
    inspector = sa.inspect(engine)
    return {
        column["name"]: (bool(column["nullable"]), column["name"] in primary)
        for primary in [inspector.get_pk_constraint(table)["constrained_columns"]]
        for column in inspector.get_columns(table)
    }


@pytest.mark.parametrize("table", sorted(metadata.tables))
def test_migrated_table_matches_schema_py(store: Store, table: str) -> None:
    expected = {
        column.name: (bool(column.nullable) and not column.primary_key, column.primary_key)
        for column in metadata.tables[table].columns
    }
    assert _columns(store.engine, table) == expected


def _index_definitions(engine: sa.Engine, table: str) -> dict[str, str]:
    """name -> CREATE INDEX text of each index the database has on `table` (expression
    indexes included, which SQLAlchemy's inspector skips on SQLite), primary keys aside."""
    if engine.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
    else:
        query = (
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = :t AND NOT "
            "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname)"
        )
    with engine.connect() as connection:
        rows = connection.execute(sa.text(query), {"t": table}).all()
    return {str(name): " ".join(str(sql).split()) for name, sql in rows if sql is not None}


def test_migrated_indexes_match_schema_py(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    for name, table in metadata.tables.items():
        found = _index_definitions(store.engine, name)
        assert set(found) == {index.name for index in table.indexes}, name
        for index in table.indexes:
            if index.expressions and not index.columns:  # a prefix (schema.PrefixIndex)
                assert "substr(" in found[str(index.name)], found
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)  # expression indexes skipped
            reflected = {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(name)}
        for index in table.indexes:
            if index.columns:
                assert reflected[index.name] == tuple(c.name for c in index.columns), name


def test_the_foreign_key_to_authorities_exists(store: Store) -> None:
    [foreign_key] = sa.inspect(store.engine).get_foreign_keys("certificates")
    assert foreign_key["referred_table"] == "authorities"
    assert foreign_key["constrained_columns"] == ["issuer_id"]


def test_timestamps_keep_their_instant(
    store: Store,
    make_intent: Callable[..., Intent],
    now: dt.datetime,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """An aware time in another zone is stored as the same instant and read back as UTC."""
    other_zone = dt.timezone(dt.timedelta(hours=5, minutes=30))
    intent = make_intent("tz.corp.internal")
    shifted = Intent(**{**intent.__dict__, "not_after": intent.not_after.astimezone(other_zone)})
    [serial] = store.reserve([shifted], now)
    record = store.get(serial)
    assert record is not None
    assert record.not_after == intent.not_after
    assert record.not_after.tzinfo == dt.UTC


def test_an_unreachable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    store = Store(sqlite_url(tmp_path / "missing-dir" / "privca.db"))
    with pytest.raises(StoreUnavailable, match="cannot open the inventory database"):
        store.migrate()
    store.close()


def test_an_unreachable_postgresql_server_is_store_unavailable() -> None:
    from tests.pg import free_port

    store = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/privca")
    assert store.engine.dialect.driver == "psycopg"  # postgresql:// means psycopg 3
    with pytest.raises(StoreUnavailable, match="cannot open the inventory database"):
        store.migrate()
    store.close()


def test_a_bad_url_is_input_error() -> None:
    with pytest.raises(InputError, match="neither PostgreSQL nor SQLite"):
        Store("nosuchdb://x")


def _intent(now: dt.datetime) -> Intent:
    return Intent(
        issuer_id=1,
        profile="server",
        names=("svc.corp.internal",),
        subject="CN=svc.corp.internal",
        not_before=now,
        not_after=now,
        public_key_sha256="00" * 32,
    )


@pytest.mark.parametrize("operation", ["complete", "abandon", "add_authority"])
def test_a_write_to_an_unreachable_store_is_store_unavailable(
    tmp_path: Path, operation: str
) -> None:
    store = Store(sqlite_url(tmp_path / "missing-dir" / "privca.db"))
    now = dt.datetime.now(dt.UTC)
    calls = {
        "complete": lambda: store.complete([(1, b"der")], now, [_intent(now)]),
        "abandon": lambda: store.abandon([1], now, "test"),
        "add_authority": lambda: store.add_authority("root", "CN=R", 1, b"d", "k", now, now),
    }
    try:
        with pytest.raises(StoreUnavailable):
            calls[operation]()
    finally:
        store.close()


def _hold_write_lock_while_migrating(path: Path, wal: bool) -> None:
    """Another process holds the write lock for 0.3 s while a Store opens the database."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if wal:
            holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
        holder.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.3, holder.execute, args=("COMMIT",))
        timer.start()
        store = Store(sqlite_url(path))
        try:
            store.migrate()  # must wait on busy_timeout, not fail
        finally:
            timer.join()
            store.close()
    finally:
        holder.close()


def test_opening_a_wal_database_waits_for_a_writer(tmp_path: Path) -> None:
    _hold_write_lock_while_migrating(tmp_path / "privca.db", wal=True)


def test_opening_a_new_database_waits_for_a_writer(tmp_path: Path) -> None:
    _hold_write_lock_while_migrating(tmp_path / "privca.db", wal=False)


# 0005_custody: sealed EAB keys, max_accounts -------------------------------------------


def _upgrade_to(url: str, revision: str) -> sa.Engine:
    from alembic import command

    engine = database.create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def _downgrade_to(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@pytest.fixture
def sealer(tmp_path: Path) -> SealingKey:
    """The real sealing key of a CA home, in a private/ of this test's own."""
    private = tmp_path / "home" / "private"
    private.mkdir(parents=True, mode=0o700)
    return SealingKey(private / "eab.key")


LEGACY_SECRET = b"legacy-eab-hmac-key-0123456789ab"


def test_0005_keeps_legacy_eab_keys_until_they_are_sealed(
    store_url: str, sealer: SealingKey
) -> None:
    import base64

    from privca.store.acme import AcmeStore

    engine = _upgrade_to(store_url, "0004")
    legacy = base64.urlsafe_b64encode(LEGACY_SECRET).rstrip(b"=").decode()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO acme_eab_keys (kid, hmac_key, label, created_at, accounts) "
                "VALUES ('kid-old', :k, 'old', :t, 3), ('kid-unused', :k, 'unused', :t, 0)"
            ),
            {"k": legacy, "t": dt.datetime.now(dt.UTC)},
        )
    engine.dispose()

    store = Store(store_url, sealer=sealer)
    assert store.migrate() == "0004"
    acme = AcmeStore.of(store)
    keys = {k.kid: k for k in acme.eab_keys()}
    # What a key had bound stays; no key gains accounts it did not have.
    assert (keys["kid-old"].accounts, keys["kid-old"].max_accounts) == (3, 3)
    assert (keys["kid-unused"].accounts, keys["kid-unused"].max_accounts) == (0, 1)
    assert acme.seal_plaintext_keys() == 2
    assert acme.seal_plaintext_keys() == 0
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT plaintext_hmac_key, sealed_hmac_key FROM acme_eab_keys")
        ).all()
    assert all(plain is None and sealed.startswith("aesgcm1.") for plain, sealed in rows)
    assert stat.S_IMODE(sealer.path.stat().st_mode) == 0o400
    assert acme.eab_secret("kid-old") == LEGACY_SECRET

    _downgrade_to(store.engine, "0004")
    with store.engine.connect() as connection:
        assert current_revision(connection) == "0004"
        assert "hmac_key" in {
            c["name"] for c in sa.inspect(connection).get_columns("acme_eab_keys")
        }
    store.close()


def test_a_legacy_key_is_sealed_on_first_use(store_url: str, sealer: SealingKey) -> None:
    import base64

    from privca.store.acme import AcmeStore

    engine = _upgrade_to(store_url, "0004")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO acme_eab_keys (kid, hmac_key, label, created_at, accounts) "
                "VALUES ('kid-old', :k, 'old', :t, 0)"
            ),
            {
                "k": base64.urlsafe_b64encode(LEGACY_SECRET).decode(),
                "t": dt.datetime.now(dt.UTC),
            },
        )
    engine.dispose()
    store = Store(store_url, sealer=sealer)
    store.migrate()
    acme = AcmeStore.of(store)
    assert acme.eab_secret("kid-old") == LEGACY_SECRET
    with store.engine.connect() as connection:
        plain = connection.execute(sa.text("SELECT plaintext_hmac_key FROM acme_eab_keys")).scalar()
    assert plain is None
    store.close()


def test_a_store_from_a_newer_privca_is_refused_by_name(
    store: Store, open_store: Callable[[], Store]
) -> None:
    """One host or replica upgraded first migrates the shared store; an older privca that
    then opens it met Alembic's "Can't locate revision": an internal error (exit 70)."""
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_\x1bnewer'"))
    with pytest.raises(database.SchemaFromNewerPrivca) as raised:
        open_store()
    assert raised.value.exit_code == 3
    assert "'9999_\\x1bnewer'" in raised.value.message  # shown escaped, as it came
    assert SCHEMA_REVISION in raised.value.message
    with store.engine.connect() as connection:  # and left as it was: never downgraded
        assert current_revision(connection) == "9999_\x1bnewer"
