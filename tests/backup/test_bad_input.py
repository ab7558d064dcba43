"""Bad and hostile input to `backup`, `backup verify` and `restore`: one error line and a
hint, exit 2, nothing written, no traceback."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.backup.archive import FORMAT, GZIP_HEADER, SEAL_PREFIX
from tests.backup.conftest import members, tar_gz
from tests.conftest import Cli, assert_user_error, tree_snapshot


def _sealed(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A hostile archive with a valid privca seal: the attacker can compute one."""
    import struct
    import zlib

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in entries:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    plain = buffer.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(plain) + deflate.flush()
    body += struct.pack("<II", zlib.crc32(plain), len(plain))
    return GZIP_HEADER + SEAL_PREFIX + hashlib.sha256(body).hexdigest().encode() + b"\0" + body


def _manifest(names: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "created_at": "2026-01-01T00:00:00Z",
            "privca_version": "0.1.0",
            "schema_revision": None,
            "members": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in names.items()
            },
        }
    ).encode()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def _hostile(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", listed: bool = True):
    payload = b"owned\n"
    listed_names = {name: payload} if listed else {}
    return _sealed(
        [
            (_entry("manifest.json"), _manifest(listed_names)),
            (_entry(name, kind, link), payload),
        ]
    )


HOSTILE = {
    "parent-traversal": _hostile("../x"),
    "nested-traversal": _hostile("home/certs/../../x"),
    "absolute-path": _hostile("/tmp/privca-hostile-x"),
    "unlisted-absolute": _hostile("/tmp/privca-hostile-x", listed=False),
    "symlink": _hostile("home/certs/root.crt", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": _hostile("home/certs/root.crt", tarfile.LNKTYPE, "/etc/passwd"),
    "directory": _hostile("home/certs/dir", tarfile.DIRTYPE),
    "fifo": _hostile("home/certs/fifo", tarfile.FIFOTYPE),
    "unknown-place": _hostile("home/elsewhere/x"),
    "no-manifest-first": _sealed([(_entry("home/privca.toml"), b"[ca]\n")]),
    "other-format": _sealed([(_entry("manifest.json"), b'{"format": "tar-of-something"}')]),
    "plain-tar-gz": tar_gz([(_entry("../x"), b"owned\n")]),
    "text-file": b"this is not an archive\n",
    "empty-file": b"",
}


@pytest.mark.parametrize("command", ["restore", "verify"])
@pytest.mark.parametrize("data", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written(
    run_cli: Cli, tmp_path: Path, command: str, data: bytes
) -> None:
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(data)
    target = tmp_path / "target"
    before = tree_snapshot(tmp_path)
    if command == "restore":
        result = run_cli("restore", str(archive), "--home", str(target))
    else:
        result = run_cli("backup", "verify", str(archive))
    assert_user_error(result, "")
    assert "owned" not in result.stderr
    assert tree_snapshot(tmp_path) == before
    assert not target.exists()
    assert not Path("/tmp/privca-hostile-x").exists()
    assert not (tmp_path.parent / "x").exists()


def test_missing_archive(run_cli: Cli, tmp_path: Path) -> None:
    for args in (
        ["restore", str(tmp_path / "nope.tar.gz"), "--home", str(tmp_path / "t")],
        ["backup", "verify", str(tmp_path / "nope.tar.gz")],
    ):
        assert_user_error(run_cli(*args), "does not exist")
    assert not (tmp_path / "t").exists()


def test_restore_refuses_a_non_empty_home(
    run_cli: Cli, backup: Callable[..., Path], home: Path, tmp_path: Path
) -> None:
    archive = backup()
    before = tree_snapshot(home)
    assert_user_error(run_cli("restore", str(archive), "--home", str(home)), "not empty")
    assert tree_snapshot(home) == before
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / ".keep").write_text("")
    assert_user_error(run_cli("restore", str(archive), "--home", str(occupied)), "not empty")
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_user_error(run_cli("restore", str(archive), "--home", str(afile)), "is a file")


def test_restore_into_an_empty_directory(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("restore", str(backup()), "--home", str(empty))
    assert result.exit_code == 0, result.stderr
    assert (empty / "privca.toml").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["backup"], "--out"),
        (["backup", "--out", "{home}/inside.tar.gz"], "inside the CA home"),
        (["backup", "--out", "{tmp}"], "is a directory"),
        (["backup", "--out", "{tmp}/no/such/dir/b.tar.gz"], "not a directory"),
        (["backup", "--out", "{existing}"], "already exists"),
    ],
    ids=["no-out", "inside-home", "out-is-dir", "no-parent", "exists"],
)
def test_backup_bad_out(
    run_cli: Cli, home: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    existing = tmp_path / "existing.tar.gz"
    existing.write_bytes(b"keep me")
    filled = [a.format(home=home, tmp=tmp_path, existing=existing) for a in args]
    before = tree_snapshot(tmp_path)
    assert_user_error(run_cli(*filled), fragment)
    assert tree_snapshot(tmp_path) == before


def test_force_replaces_an_existing_archive(run_cli: Cli, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"old")
    out.chmod(0o644)
    assert run_cli("backup", "--out", str(out), "--force").exit_code == 0
    assert "manifest.json" in members(out)
    assert out.stat().st_mode & 0o777 == 0o600


def test_backup_of_no_ca(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("backup", "--out", str(tmp_path / "b.tar.gz"))
    assert_user_error(result, "no CA found")
    assert not (tmp_path / "b.tar.gz").exists()


def _with_revision(archive: Path, revision: str, tmp_path: Path, **changes: object) -> Path:
    """The archive again, its store claiming `revision`, resealed as anyone can reseal one
    (with `changes` to its manifest)."""
    statement = f"UPDATE alembic_version SET version_num = '{revision}'"
    return _resealed(archive, statement, tmp_path, f"{revision}.tar.gz", **changes)


def _resealed(archive: Path, statement: str, tmp_path: Path, name: str, **changes: object) -> Path:
    """The archive with `statement` run on its store, its hashes made again."""
    import dataclasses
    import sqlite3

    from privca.backup.archive import Manifest, Member, build_archive

    files = members(archive)
    manifest = Manifest.parse(files.pop("manifest.json"))
    database = tmp_path / "edited.db"
    database.write_bytes(files["store/privca.db"])
    with sqlite3.connect(database) as connection:
        connection.execute(statement)
    connection.close()
    files["store/privca.db"] = database.read_bytes()
    database.unlink()  # the next edit starts from the archive again
    hashed = {n: Member(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
    edited = tmp_path / name
    edited.write_bytes(
        build_archive(dataclasses.replace(manifest, members=hashed, **changes), files)
    )
    return edited


@pytest.mark.parametrize(
    ("revision", "fragment"),
    [
        # Its schema revision is unknown here: a clear error, not a migration failure.
        ("9999_from_the_future", "unknown to this privca"),
        # An older revision than its tables: the migrations from it fail (exit 70 before).
        ("0012_audit_compact", "does not match the schema revision it names"),
    ],
    ids=["newer", "older-than-its-tables"],
)
@pytest.mark.parametrize("command", ["restore", "verify"])
def test_a_store_whose_revision_cannot_be_migrated_is_refused(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    revision: str,
    fragment: str,
    command: str,
) -> None:
    archive = _with_revision(backup(), revision, tmp_path)
    target = tmp_path / "target"
    if command == "restore":
        result = run_cli("restore", str(archive), "--home", str(target))
    else:
        result = run_cli("backup", "verify", str(archive))
    assert_user_error(result, fragment)
    assert not target.exists()


@pytest.mark.parametrize("command", ["verify", "restore"])
def test_a_resealed_archive_whose_store_contradicts_its_audit_log_is_refused(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path, command: str
) -> None:
    """The hashes in the manifest are anyone's to compute again: a revocation undone in
    the archived store used to pass `backup verify` (exit 0), and `restore` brought the
    certificate back as valid. The store's own audit log says otherwise, and both ask it
    before anything is put in place."""
    statement = (
        "UPDATE certificates SET status = 'issued', revoked_at = NULL, "
        "revocation_reason = NULL WHERE status = 'revoked'"
    )
    archive = _resealed(backup(), statement, tmp_path, "unrevoked.tar.gz")
    target = tmp_path / "target"
    if command == "restore":
        result = run_cli("restore", str(archive), "--home", str(target))
    else:
        result = run_cli("backup", "verify", str(archive))
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "audit log does not hold" in result.stderr
    assert "the revocation was undone in the store" in result.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".target")] == []


def test_what_an_archive_says_is_never_printed_raw(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    """The manifest's text is the archive maker's: an escape sequence in it would reach
    the operator's terminal through verify's and restore's summaries."""
    from privca.store.schema import SCHEMA_REVISION

    hostile = "1.0\x1b]0;owned\x07\x1b[41m"
    archive = _with_revision(backup(), SCHEMA_REVISION, tmp_path, privca_version=hostile)
    verified = run_cli("backup", "verify", str(archive))
    restored = run_cli("restore", str(archive), "--home", str(tmp_path / "target"))
    for result in (verified, restored):
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout
    assert "\\x1b]0;owned" in verified.stdout


def test_two_restores_into_one_home_at_once(backup: Callable[..., Path], tmp_path: Path) -> None:
    """One wins; the other says the home changed (exit 2) and leaves nothing behind."""
    import subprocess
    import sys

    archive = backup()
    target = tmp_path / "contested"
    command = [sys.executable, "-m", "privca", "restore", str(archive), "--home", str(target)]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [(run.wait(timeout=120), run.stderr.read() if run.stderr else "") for run in runs]
    assert sorted(code for code, _ in outcomes)[0] == 0
    assert sum(code == 0 for code, _ in outcomes) == 1, outcomes
    for code, stderr in outcomes:
        assert code in (0, 2) and "Traceback" not in stderr, stderr
    assert (target / "privca.toml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".contested")] == []


def test_a_store_that_is_down_fails_the_backup_cleanly(
    run_cli: Cli, home: Path, tmp_path: Path
) -> None:
    """PostgreSQL unreachable: exit 3 with the reason, and no archive (not even a part)."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = home / "privca.toml"
    text = settings.read_text().replace(
        '\nurl = ""', f'\nurl = "postgresql://privca@127.0.0.1:{port}/privca"'
    )
    settings.write_text(text)
    out = tmp_path / "down.tar.gz"
    before = tree_snapshot(tmp_path)
    assert_user_error(run_cli("backup", "--out", str(out)), "cannot read the inventory", code=3)
    assert tree_snapshot(tmp_path) == before
