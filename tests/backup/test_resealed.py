"""Archives changed and sealed again with privca's own build_archive (anyone can: the
manifest's hashes are unkeyed). What privca would never have written is refused by
`backup verify` and `restore` alike, before anything is put in place."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.backup.archive import Manifest, Member, build_archive
from tests.backup.conftest import members
from tests.conftest import Cli, assert_user_error, openssl, tree_snapshot
from tests.pg import PostgresCluster, postgres_cluster, postgres_url  # noqa: F401  (fixtures)

Edit = Callable[[dict[str, bytes], Path], None]


def resealed(
    archive: Path, edit: Edit, tmp_path: Path, name: str = "edited.tar.gz", **summary: object
) -> Path:
    """The archive with `edit` applied to its members (name -> bytes) and `summary` to
    its manifest's summary, its hashes made again and sealed as privca seals one."""
    files = members(archive)
    manifest = Manifest.parse(files.pop("manifest.json"))
    edit(files, tmp_path)
    hashed = {n: Member(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
    changed = dataclasses.replace(manifest, members=hashed, summary={**manifest.summary, **summary})
    out = tmp_path / name
    out.write_bytes(build_archive(changed, files))
    return out


def run_sql(script: str) -> Edit:
    def edit(files: dict[str, bytes], tmp_path: Path) -> None:
        database = tmp_path / "edited.db"
        database.write_bytes(files["store/privca.db"])
        connection = sqlite3.connect(database)
        connection.executescript(script)
        connection.close()
        files["store/privca.db"] = database.read_bytes()
        database.unlink()

    return edit


def run_command(run_cli: Cli, command: str, archive: Path, target: Path):
    if command == "restore":
        return run_cli("restore", str(archive), "--home", str(target))
    return run_cli("backup", "verify", str(archive))


def assert_refused_and_nothing_written(
    run_cli: Cli, command: str, archive: Path, tmp_path: Path, fragment: str, code: int = 2
) -> None:
    target = tmp_path / "target"
    before = tree_snapshot(tmp_path)
    assert_user_error(run_command(run_cli, command, archive, target), fragment, code=code)
    assert not target.exists()
    assert tree_snapshot(tmp_path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")] == []


# What the reviewer found: every later revocation moved to the root (issuer_id 1), so the
# issuing CA's CRL never listed it.
HIDES_REVOCATIONS = (
    "CREATE TRIGGER zz AFTER UPDATE OF status ON certificates WHEN NEW.status='revoked' "
    "BEGIN UPDATE certificates SET issuer_id=1 WHERE serial=NEW.serial; END;"
)
FOREIGN_OBJECTS = {
    "trigger": (HIDES_REVOCATIONS, "holds a trigger 'zz'"),
    "table": ("CREATE TABLE notes (x TEXT);", "holds a table 'notes'"),
    "index": ("CREATE INDEX ix_mine ON certificates (status);", "holds an index 'ix_mine'"),
    "view": ("CREATE VIEW v AS SELECT serial FROM certificates;", "holds a view 'v'"),
    "dropped-trigger": (
        "DROP TRIGGER revocation_clock_update;",
        "lacks privca's trigger 'revocation_clock_update'",
    ),
    "changed-trigger": (
        "DROP TRIGGER certificate_tally_insert; CREATE TRIGGER certificate_tally_insert "
        "AFTER INSERT ON certificates BEGIN SELECT 1; END;",
        "has a trigger 'certificate_tally_insert' that differs from privca's",
    ),
}


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize(
    ("script", "fragment"), list(FOREIGN_OBJECTS.values()), ids=list(FOREIGN_OBJECTS)
)
def test_a_store_with_schema_objects_privca_does_not_make_is_refused(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    command: str,
    script: str,
    fragment: str,
) -> None:
    """Its audit log agrees (a trigger changes no row until later), so it passed both, and
    the trigger ran inside every privca command afterwards."""
    archive = resealed(backup(), run_sql(script), tmp_path)
    assert_refused_and_nothing_written(run_cli, command, archive, tmp_path, fragment)


def test_a_postgresql_restore_refuses_it_too_and_leaves_the_database_empty(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    """A PostgreSQL restore builds its schema from privca's migrations and copies rows
    only, so the trigger would not reach it; the archive is refused all the same."""
    import sqlalchemy as sa

    archive = resealed(backup(), run_sql(HIDES_REVOCATIONS), tmp_path)
    target = tmp_path / "pg-home"
    result = run_cli("restore", str(archive), "--home", str(target), "--store-url", postgres_url)
    assert_user_error(result, "holds a trigger 'zz'")
    assert not target.exists()
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            assert sa.inspect(connection).get_table_names() == []
    finally:
        engine.dispose()


def _other_root(tmp_path: Path) -> bytes:
    made = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(tmp_path / "other.key"), "-subj", "/CN=Backup Test CA Root",
        "-days", "30", "-out", str(tmp_path / "other.crt"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    data = (tmp_path / "other.crt").read_bytes()
    for name in ("other.key", "other.crt"):
        (tmp_path / name).unlink()
    return data


def _swap_root(files: dict[str, bytes], tmp_path: Path) -> None:
    files["home/certs/root.crt"] = _other_root(tmp_path)


def _root_as_issuing(files: dict[str, bytes], tmp_path: Path) -> None:
    files["home/certs/issuing.crt"] = files["home/certs/root.crt"]


def _chain_with_a_stranger(files: dict[str, bytes], tmp_path: Path) -> None:
    files["home/certs/chain.pem"] += _other_root(tmp_path)


def _roots_pem_added(files: dict[str, bytes], tmp_path: Path) -> None:
    files["home/certs/roots.pem"] = files["home/certs/root.crt"] + _other_root(tmp_path)


def _root_crt_with_a_key_block(files: dict[str, bytes], tmp_path: Path) -> None:
    files["home/certs/root.crt"] += b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"


CERTIFICATE_FILES = {
    "root-swapped": (_swap_root, "certs/root.crt"),
    "issuing-is-the-root": (_root_as_issuing, "certs/issuing.crt"),
    "chain-with-a-stranger": (_chain_with_a_stranger, "certs/chain.pem"),
    "roots-pem-added": (_roots_pem_added, "certs/roots.pem"),
    "another-block": (_root_crt_with_a_key_block, "certs/root.crt"),
}


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize(
    ("edit", "name"), list(CERTIFICATE_FILES.values()), ids=list(CERTIFICATE_FILES)
)
def test_certificate_files_that_are_not_the_stores_cas_are_refused(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    command: str,
    edit: Edit,
    name: str,
) -> None:
    """certs/root.crt for another CA's root passed `backup verify` (OK) and came back as
    the root clients install by `privca trust install`."""
    archive = resealed(backup(), edit, tmp_path)
    assert_refused_and_nothing_written(run_cli, command, archive, tmp_path, name)


def test_an_untouched_archive_still_restores_and_verifies(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    """Resealed without a change, it is what privca wrote: both accept it."""
    archive = resealed(backup(), lambda files, _: None, tmp_path)
    assert run_cli("backup", "verify", str(archive)).exit_code == 0
    result = run_cli("restore", str(archive), "--home", str(tmp_path / "target"))
    assert result.exit_code == 0, result.stderr


def _empty_store(files: dict[str, bytes], tmp_path: Path) -> None:
    files["store/privca.db"] = b""


def _without(name: str) -> Edit:
    def edit(files: dict[str, bytes], tmp_path: Path) -> None:
        del files[name]

    return edit


STORES = {
    # 0 bytes passes SQLite's integrity check; migrating it made an empty store, restore
    # said "certificates: 0" (exit 0) and every command after it "has no root CA".
    "empty-store": (_empty_store, {"certificates": 0}, "empty or not privca's", 1),
    # sqlite3 made an empty file in its place: exit 70 OperationalError.
    "no-store": (_without("store/privca.db"), {}, "holds no store/privca.db", 2),
    # exit 70 FileNotFoundError.
    "no-settings": (_without("home/privca.toml"), {}, "holds no home/privca.toml", 2),
    "no-root": (run_sql("DELETE FROM authorities WHERE role = 'root';"), {}, "no root CA", 1),
    # backup verify refused these; restore brought them back.
    "count-differs": (lambda files, _: None, {"certificates": 7}, "its manifest says 7", 1),
    # The audit log's check names it first (the row no longer says what its issue entry
    # recorded); the signature check behind it would too.
    "issuer-changed": (
        run_sql("UPDATE certificates SET issuer_id = 1;"),
        {},
        "no longer has the issuer, profile, names or key its issue entry recorded",
        1,
    ),
}


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize(
    ("edit", "summary", "fragment", "code"), list(STORES.values()), ids=list(STORES)
)
def test_restore_refuses_what_verify_refuses(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    command: str,
    edit: Edit,
    summary: dict[str, object],
    fragment: str,
    code: int,
) -> None:
    """One set of checks (backup/contents.py) for both: a store that is no CA, a member
    missing, a store that is not the one its manifest describes."""
    archive = resealed(backup(), edit, tmp_path, **summary)
    assert_refused_and_nothing_written(run_cli, command, archive, tmp_path, fragment, code)
