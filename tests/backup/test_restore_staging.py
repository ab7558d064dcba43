"""`privca restore` builds the home in `.NAME.restore-XXXXXXXX` beside the target. It
holds the CA's keys, so it must not linger: removed on every failure (and renamed into
place on success); what a killed restore left (SIGKILL cannot be cleaned up after) is
removed by the next restore into the same name once a minute old and held by no run,
as issue does with its temporaries."""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import privca.backup.archive
import privca.backup.restore
from privca.backup.restore import restore
from privca.errors import AlreadyExists
from privca.home import STALE_TEMPORARY_SECONDS
from tests.backup.test_bad_input import HOSTILE, _with_revision
from tests.conftest import Cli, assert_user_error

NOW = dt.datetime.now(dt.UTC)


def _staging_dirs(parent: Path, name: str = "target") -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.restore-"))


@pytest.mark.parametrize("data", [HOSTILE["symlink"], HOSTILE["unlisted-absolute"]])
def test_a_hostile_member_leaves_no_staging_directory(
    run_cli: Cli, tmp_path: Path, data: bytes
) -> None:
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(data)
    assert_user_error(run_cli("restore", str(archive), "--home", str(tmp_path / "target")), "")
    assert _staging_dirs(tmp_path) == []
    assert not (tmp_path / "target").exists()


def test_a_failed_check_leaves_no_staging_directory(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    archive = _with_revision(backup(), "9999_from_the_future", tmp_path)
    result = run_cli("restore", str(archive), "--home", str(tmp_path / "target"))
    assert_user_error(result, "unknown to this privca")
    assert _staging_dirs(tmp_path) == []


def _failing_after(count: int, error: BaseException) -> Callable[..., str]:
    """archive._write_member that writes `count` members, then raises `error`: a disk
    that fills, or Ctrl-C, in the middle of the extraction."""
    real = privca.backup.archive._write_member
    written = iter(range(count))

    def write_member(*args: Any) -> str:
        if next(written, None) is None:
            raise error
        return real(*args)

    return write_member


@pytest.mark.parametrize(
    "error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()]
)
def test_an_interrupted_extraction_leaves_no_staging_directory(
    backup: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    archive = backup()
    monkeypatch.setattr(privca.backup.archive, "_write_member", _failing_after(3, error))
    with pytest.raises(type(error)):
        restore(archive, tmp_path / "target", NOW)
    assert _staging_dirs(tmp_path) == []
    assert not (tmp_path / "target").exists()


def test_a_target_filled_meanwhile_leaves_no_staging_directory(
    backup: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = backup()
    target = tmp_path / "target"
    target.mkdir()
    real = privca.backup.restore.check_home

    def check_home_while_another_run_fills_the_target(home: Any) -> None:
        real(home)
        (target / "theirs").write_text("another run's\n")

    monkeypatch.setattr(
        privca.backup.restore, "check_home", check_home_while_another_run_fills_the_target
    )
    with pytest.raises(AlreadyExists, match="was filled while"):
        restore(archive, target, NOW)
    assert _staging_dirs(tmp_path) == []
    assert [p.name for p in target.iterdir()] == ["theirs"]


def _left_by_a_killed_restore(parent: Path, name: str, age: float) -> Path:
    """A staging directory as a SIGKILLed restore leaves it, with a key in it."""
    staging = parent / name
    (staging / "home" / "private").mkdir(parents=True)
    (staging / "home" / "private" / "root.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    old = time.time() - age
    os.utime(staging, (old, old))
    return staging


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Lock a directory as a restore in progress does (from another open file)."""
    fds: list[int] = []

    def hold(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        fds.append(fd)

    yield hold
    for fd in fds:
        os.close(fd)


def test_the_next_restore_removes_a_killed_restores_staging_directory(
    run_cli: Cli,
    backup: Callable[..., Path],
    tmp_path: Path,
    held: Callable[[Path], None],
) -> None:
    archive = backup()
    parent = tmp_path / "srv"
    parent.mkdir()
    stale = STALE_TEMPORARY_SECONDS + 60
    killed = _left_by_a_killed_restore(parent, ".target.restore-k1ll3d_x", stale)
    # Kept: a restore still running (however old its directory looks), one just begun,
    # another home's, and names privca's mkdtemp does not make.
    running = _left_by_a_killed_restore(parent, ".target.restore-running1", stale)
    held(running)
    fresh = _left_by_a_killed_restore(parent, ".target.restore-justmade", 0)
    other = _left_by_a_killed_restore(parent, ".other.restore-k1ll3d_x", stale)
    unlike = [
        _left_by_a_killed_restore(parent, name, stale)
        for name in (".target.restore-short", ".target.restore-UPPERCAS", "target.restore-k1ll3d_x")
    ]

    result = run_cli("restore", str(archive), "--home", str(parent / "target"))
    assert result.exit_code == 0, result.stderr

    assert not killed.exists()
    for kept in (running, fresh, other, *unlike):
        assert (kept / "home" / "private" / "root.key").exists(), kept
    assert _staging_dirs(parent) == sorted(p.name for p in (running, fresh, *unlike[:2]))
    assert (parent / "target" / "privca.toml").exists()


def test_a_link_named_like_a_staging_directory_is_not_followed(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    archive = backup()
    precious = _left_by_a_killed_restore(tmp_path, "precious", STALE_TEMPORARY_SECONDS + 60)
    link = tmp_path / ".target.restore-l1nk3d_x"
    link.symlink_to(precious)
    old = time.time() - STALE_TEMPORARY_SECONDS - 60
    os.utime(link, (old, old), follow_symlinks=False)

    result = run_cli("restore", str(archive), "--home", str(tmp_path / "target"))
    assert result.exit_code == 0, result.stderr
    assert (precious / "home" / "private" / "root.key").exists()
    assert link.is_symlink()


def test_a_failed_restore_also_removes_a_killed_ones_staging_directory(
    run_cli: Cli, tmp_path: Path
) -> None:
    killed = _left_by_a_killed_restore(tmp_path, ".target.restore-k1ll3d_x", 3600)
    archive = tmp_path / "hostile.tar.gz"
    archive.write_bytes(HOSTILE["symlink"])
    result = run_cli("restore", str(archive), "--home", str(tmp_path / "target"))
    assert result.exit_code == 2, result.stderr
    assert not killed.exists()
    assert _staging_dirs(tmp_path) == []


def _terminated_while_staging(command: list[str], staging_parent: Path, prefix: str, sig: int):
    """Run `command`, send `sig` once a staging directory appears; None when the run
    ended before one was seen (a fast machine: the caller tries again)."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        if any(p.name.startswith(prefix) for p in staging_parent.iterdir()):
            run.send_signal(sig)
            run.wait(timeout=60)
            return run
        time.sleep(0.001)
    run.kill()
    run.wait(timeout=60)
    return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_restore_removes_its_staging_directory(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path, sig: signal.Signals
) -> None:
    archive = backup()
    parent = tmp_path / "srv"
    parent.mkdir()
    command = [sys.executable, "-m", "privca", "restore", str(archive), "--home"]
    for attempt in range(5):
        target = parent / f"target{attempt}"
        run = _terminated_while_staging(
            [*command, str(target)], parent, f".{target.name}.restore-", sig
        )
        if run is not None:
            break
        shutil.rmtree(target, ignore_errors=True)
    else:
        pytest.fail("no restore was caught while staging in 5 attempts")
    assert run.returncode == -sig, run.stderr.read() if run.stderr else ""
    assert _staging_dirs(parent, target.name) == []


def test_a_terminated_backup_verify_removes_its_temporary_home(
    backup: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = backup()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where verify restores, keys and all
    command = [sys.executable, "-m", "privca", "backup", "verify", str(archive)]
    for _ in range(5):
        run = _terminated_while_staging(command, scratch, "privca-verify-", signal.SIGTERM)
        if run is not None:
            break
    else:
        pytest.fail("no verify was caught while restoring in 5 attempts")
    assert run.returncode == -signal.SIGTERM, run.stderr.read() if run.stderr else ""
    assert list(scratch.iterdir()) == []


def _interrupted_right_after_making(marker: str) -> Callable[..., None]:
    """os.mkdir that makes the directory, then raises as a signal's exception (cli/backup.py)
    does when it lands just after the call: the moment mkdtemp gave no one the chance to
    clean up (a loaded CI machine once hit it with a real SIGTERM)."""
    real = os.mkdir

    def mkdir(path: Any, mode: int = 0o777, *args: Any, **kwargs: Any) -> None:
        real(path, mode, *args, **kwargs)
        if marker in os.fspath(path):
            raise KeyboardInterrupt

    return mkdir


def test_an_interruption_as_the_staging_directory_is_made_leaves_nothing(
    backup: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = backup()
    monkeypatch.setattr(os, "mkdir", _interrupted_right_after_making(".target.restore-"))
    with pytest.raises(KeyboardInterrupt):
        restore(archive, tmp_path / "target", NOW)
    monkeypatch.undo()
    assert _staging_dirs(tmp_path) == []


def test_an_interruption_as_verify_makes_its_home_leaves_nothing(
    backup: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privca.backup.verify import verify_backup

    archive = backup()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(os, "mkdir", _interrupted_right_after_making("privca-verify-"))
    with pytest.raises(KeyboardInterrupt):
        verify_backup(archive, NOW)
    monkeypatch.undo()
    assert list(scratch.iterdir()) == []


def test_the_next_backup_verify_removes_a_killed_ones_temporary_home(
    backup: Callable[..., Path], tmp_path: Path, held: Callable[[Path], None]
) -> None:
    """A SIGKILLed `backup verify` (an OOM kill, a timeout's -9) left a restored home, its
    keys included, in the shared temporary directory: the next verify removes it."""
    archive = backup()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    stale = STALE_TEMPORARY_SECONDS + 60
    killed = _left_by_a_killed_restore(scratch, "privca-verify-k1ll3d_x", stale)
    running = _left_by_a_killed_restore(scratch, "privca-verify-running1", stale)
    held(running)
    fresh = _left_by_a_killed_restore(scratch, "privca-verify-justmade", 0)
    unlike = _left_by_a_killed_restore(scratch, "privca-verify-notrandom", stale)

    result = subprocess.run(
        [sys.executable, "-m", "privca", "backup", "verify", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stderr
    assert not killed.exists()
    assert sorted(p.name for p in scratch.iterdir()) == sorted(
        p.name for p in (running, fresh, unlike)
    )
