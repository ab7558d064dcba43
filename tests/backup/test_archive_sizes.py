"""A small archive that says it holds a lot: refused from its manifest, before a byte is
written (a 1 MB archive listing a 1 GiB CRL of zeros wrote 1 GB, then failed its hash)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.backup.archive import (
    CRL_MEMBER_LIMIT,
    DATABASE,
    SMALL_MEMBER_LIMIT,
    Manifest,
    Member,
    Source,
    build_archive,
    sha256_file,
)
from tests.backup.conftest import members
from tests.backup.test_resealed import assert_refused_and_nothing_written
from tests.conftest import Cli, assert_user_error, tree_snapshot


def _with_member(archive: Path, name: str, size: int, tmp_path: Path) -> Path:
    """The archive plus `name`: `size` zeros (a sparse file: nothing on disk), listed in
    the manifest with its true size and SHA-256, sealed as privca seals one."""
    files: dict[str, Source] = dict(members(archive))
    manifest = Manifest.parse(files.pop("manifest.json"))  # type: ignore[arg-type]
    zeros = tmp_path / "zeros"
    with open(zeros, "wb") as handle:
        handle.truncate(size)
    files[name] = zeros
    listed = {**manifest.members, name: Member(sha256_file(zeros), size)}
    out = tmp_path / "big.tar.gz"
    out.write_bytes(build_archive(dataclasses.replace(manifest, members=listed), files))
    zeros.unlink()
    return out


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize(
    ("name", "size"),
    [("home/crl/big.crl", CRL_MEMBER_LIMIT + 1), ("home/certs/big.pem", SMALL_MEMBER_LIMIT + 1)],
    ids=["crl", "certificate"],
)
def test_a_member_larger_than_its_kind_is_refused_before_writing(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path, command: str, name: str, size: int
) -> None:
    archive = _with_member(backup(), name, size, tmp_path)
    assert archive.stat().st_size < size // 10  # a small file, a large claim
    assert_refused_and_nothing_written(run_cli, command, archive, tmp_path, f"{size} bytes")


@pytest.mark.parametrize("command", ["verify", "restore"])
def test_an_archive_larger_than_the_free_space_is_refused_before_writing(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path, command: str
) -> None:
    """The store has no cap (a million certificates are near a gigabyte), so what it says
    it holds is checked against the disk: a pebibyte fits on none (exit 3)."""
    files = members(backup())
    manifest = Manifest.parse(files.pop("manifest.json"))
    listed = {**manifest.members, DATABASE: Member("0" * 64, 1 << 50)}
    archive = tmp_path / "huge.tar.gz"
    archive.write_bytes(build_archive(dataclasses.replace(manifest, members=listed), files))
    assert_refused_and_nothing_written(run_cli, command, archive, tmp_path, "which has", code=3)


def test_backup_refuses_a_file_no_restore_would_take(
    run_cli: Cli, home: Path, tmp_path: Path
) -> None:
    """What restore refuses, backup does not write (one limit, archive.member_limit)."""
    (home / "certs" / "big.pem").write_bytes(bytes(SMALL_MEMBER_LIMIT + 1))
    out = tmp_path / "b.tar.gz"
    before = tree_snapshot(tmp_path)
    assert_user_error(run_cli("backup", "--out", str(out)), "certs/big.pem")
    assert tree_snapshot(tmp_path) == before
