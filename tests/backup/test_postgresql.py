"""Backup of a CA whose store is PostgreSQL (one REPEATABLE READ snapshot), restored into
SQLite in a home and into an empty PostgreSQL database with --store-url."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.issuers import NewIssuer
from privca.x509.encoding import serial_hex
from tests.backup.conftest import manifest_of
from tests.conftest import PASSPHRASE, Cli, assert_user_error
from tests.pg import PostgresCluster, postgres_cluster, postgres_url  # noqa: F401  (fixtures)


def test_postgresql_store_backs_up_and_restores_into_either_store(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
    postgres_cluster: PostgresCluster,  # noqa: F811
    run_cli: Cli,
    tmp_path: Path,
) -> None:
    ca = make_ca(store_url=postgres_url)
    # A second issuer, made the default: the restored store must keep both and the choice
    # (not the `main` default its fresh migration seeds).
    ca.create_issuer(NewIssuer("team-a"))
    ca.set_default_issuer("team-a")
    issuers = [(i.name, i.default) for i in ca.issuers()]
    for n in range(3):
        ca.issue([f"pg{n}.corp.internal"])
    ca.revoke(serial_hex(ca.issue(["gone.corp.internal"]).serial))
    ca.crl()
    home = ca.home.root
    archive = tmp_path / "pg.tar.gz"
    result = run_cli("backup", "--out", str(archive), home=home)
    assert result.exit_code == 0, result.stderr
    manifest = manifest_of(archive)
    assert manifest["source_store"] == "postgresql"
    assert manifest["summary"]["certificates"] == 4  # type: ignore[index]

    # Into SQLite in a new home: privca.toml now names no store.
    sqlite_home = tmp_path / "as-sqlite"
    result = run_cli("restore", str(archive), "--home", str(sqlite_home))
    assert result.exit_code == 0, result.stderr
    assert '\nurl = ""' in (sqlite_home / "privca.toml").read_text()  # [store], not base_url
    restored = CertificateAuthority.open(sqlite_home, PASSPHRASE)
    try:
        assert len(restored.inventory.find(now=utcnow())) == 4
        assert [(i.name, i.default) for i in restored.issuers()] == issuers
    finally:
        restored.close()

    # Into an empty PostgreSQL database; the one in use is refused.
    assert_user_error(
        run_cli(
            "restore", str(archive), "--home", str(tmp_path / "x"), "--store-url", postgres_url
        ),
        "already holds privca tables",
    )
    assert not (tmp_path / "x").exists()
    with postgres_cluster.database() as empty_url:
        pg_home = tmp_path / "as-postgresql"
        result = run_cli(
            "restore", str(archive), "--home", str(pg_home), "--store-url", empty_url, "--json"
        )
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["summary"]["certificates"] == 4
        assert empty_url.split("@")[1] in (pg_home / "privca.toml").read_text()
        again = CertificateAuthority.open(pg_home, PASSPHRASE)
        try:
            assert len(again.inventory.find(now=utcnow())) == 4
            assert [(i.name, i.default) for i in again.issuers()] == issuers
            # Sequences continue past the copied rows: new records get new ids.
            again.issue(["after-restore.corp.internal"])
            assert len(again.inventory.find(now=utcnow())) == 5
        finally:
            again.close()
        verify = run_cli("backup", "verify", str(archive))
        assert verify.exit_code == 0, verify.stderr


def test_a_restore_that_postgresql_refuses_midway_leaves_the_database_empty(
    backup: Callable[..., Path],
    postgres_url: str,  # noqa: F811
    postgres_cluster: PostgresCluster,  # noqa: F811
    run_cli: Cli,
    tmp_path: Path,
) -> None:
    """A row PostgreSQL refuses (text with a NUL, which SQLite keeps) fails the copy after
    the schema was made. The schema used to stay (committed by its own migration), and the
    next restore into the same database was refused as 'already holds privca tables'; the
    failure itself was an internal error (exit 70)."""
    import sqlalchemy as sa

    from tests.backup.test_bad_input import _resealed

    statement = "UPDATE issuers SET profiles = '[]' || char(0)"
    archive = _resealed(backup(), statement, tmp_path, "nul.tar.gz")
    target = tmp_path / "pg-home"
    result = run_cli("restore", str(archive), "--home", str(target), "--store-url", postgres_url)
    assert_user_error(result, "PostgreSQL refused")
    assert not target.exists()
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            assert sa.inspect(connection).get_table_names() == []
    finally:
        engine.dispose()
    good = run_cli("restore", str(backup()), "--home", str(target), "--store-url", postgres_url)
    assert good.exit_code == 0, good.stderr
