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


def test_disk_full_mid_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    """The second file's write fails (ENOSPC) after its temporary file exists."""
    import errno

    real_write = os.write
    calls: list[int] = []

    def filling_write(fd: int, data) -> int:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", filling_write)
    with pytest.raises(EnvironmentRefused, match="No space left"):
        atomic_write_many([(tmp_path / "a", b"1", 0o644), (tmp_path / "b", b"2", 0o600)])
    assert list(tmp_path.iterdir()) == []


def test_target_appearing_after_the_check_is_never_clobbered(tmp_path: Path, monkeypatch) -> None:
    """Another process creates the file between the existence check and the link."""
    target = tmp_path / "cert.pem"
    real_link = os.link

    def racing_link(src, dst, *args, **kwargs) -> None:
        Path(dst).write_bytes(b"theirs")
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(AlreadyExists, match="already exists"):
        atomic_write(target, b"ours", 0o644, overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["cert.pem"]
