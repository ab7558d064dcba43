import os
from pathlib import Path

import pytest

from privca.errors import AlreadyExists, EnvironmentRefused
from privca.home import atomic_write, atomic_write_many


def test_atomic_write_sets_final_mode_and_content(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    atomic_write(path, b"data", 0o600)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_temporary_file_has_final_mode_before_any_byte(tmp_path: Path, monkeypatch) -> None:
    """Observe the temp file at the moment of the first write: it must already be 0600."""
    seen: list[int] = []
    real_write = os.write

    def spying_write(fd: int, data) -> int:
        seen.append(os.fstat(fd).st_mode & 0o777)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spying_write)
    atomic_write(tmp_path / "k", b"x" * 10, 0o600)
    assert seen and set(seen) == {0o600}


def test_refuses_overwrite_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(AlreadyExists):
        atomic_write(path, b"new", overwrite=False)
    assert path.read_bytes() == b"old"


def test_replaces_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"


def test_failed_write_leaves_no_temporary_or_partial_file(tmp_path: Path) -> None:
    good = tmp_path / "good"
    missing_dir = tmp_path / "missing" / "bad"
    with pytest.raises(EnvironmentRefused):
        atomic_write_many([(good, b"1", 0o644), (missing_dir, b"2", 0o644)])
    assert list(tmp_path.iterdir()) == []


def test_batch_write_of_many_files(tmp_path: Path) -> None:
    files = [
        (tmp_path / f"f{i}.pem", f"data {i}".encode(), 0o600 if i % 2 else 0o644) for i in range(40)
    ]
    atomic_write_many(files)
    for path, data, mode in files:
        assert path.read_bytes() == data
        assert path.stat().st_mode & 0o777 == mode
    assert len(list(tmp_path.iterdir())) == 40
