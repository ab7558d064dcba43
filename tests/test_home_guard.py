"""The CA home is guarded like ~/.ssh.

Modes after init, issue, serve and import under umask 000 and 022 (real processes, the
umask set by the shell that starts them); refusals, exit 3 with the chmod/chown fix, of a
home, privca.toml or database that group or others can read or write or another user
owns, of a symlinked private/ (also at init), and of passphrase files others can read or
another user owns.
Tests run as root, so mode bits and owners are checked, never a failed open.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from privca.home import CAHome, atomic_write
from privca.store.database import sqlite_url
from privca.store.inventory import Store
from tests.adopt.conftest import Runbook, runbook, runbook_template  # noqa: F401  (fixtures)
from tests.conftest import PASSPHRASE, Cli, assert_user_error, tree_snapshot, write
from tests.server.conftest import free_port

OTHER_UID = 65534  # nobody

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def privca(home: Path, umask: int, *args: str, env: dict[str, str] | None = None):
    """`privca --home HOME ARGS` in a real process started under `umask`."""
    command = " ".join(
        f"'{a}'" for a in [sys.executable, "-m", "privca", "--home", str(home), *args]
    )
    return subprocess.run(
        ["sh", "-c", f"umask {umask:03o} && exec {command}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}, **(env or {})},
    )


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_guarded(home: Path) -> None:
    """Nothing in the home is open to group or others beyond certs and CRLs, which are
    public anyway and sit inside the 0700 home; every secret has its exact mode."""
    found = modes(home)
    assert found["."] == 0o700, found
    assert found["private"] == 0o700, found
    assert found["privca.toml"] == 0o600, found
    for name, mode in found.items():
        if name.startswith("privca.db"):
            assert mode == 0o600, (name, found)
        elif name == "private/serve":
            # serve's own TLS and OCSP responder credentials (unencrypted, rewritten).
            assert mode == 0o700, (name, found)
        elif name.startswith("private/serve/"):
            assert mode == 0o600, (name, found)
        elif name.startswith("private/"):
            assert mode == 0o400, (name, found)
        elif name in ("certs", "crl"):
            assert mode == 0o755, (name, found)
        elif name.startswith(("certs/", "crl/")):
            assert mode in (0o644, 0o600), (name, found)
        elif name not in (".", "privca.toml", "private"):
            raise AssertionError(f"unexpected file in the home: {name} {mode:04o}")
    assert any(name.startswith("privca.db") for name in found)


@pytest.fixture(params=[0o000, 0o022], ids=["umask-000", "umask-022"])
def umask(request: pytest.FixtureRequest) -> int:
    return request.param


def test_init_issue_serve_leave_a_guarded_home(
    umask: int, tmp_path: Path, passphrase_file: Path
) -> None:
    home = tmp_path / "home"
    secret = ["--passphrase-file", str(passphrase_file)]
    result = privca(home, umask, "init", "--name", "Guarded CA", *secret)
    assert result.returncode == 0, result.stderr
    assert_guarded(home)
    result = privca(home, umask, "issue", "db.example", "--out", str(tmp_path / "out"), *secret)
    assert result.returncode == 0, result.stderr
    assert_guarded(home)
    assert stat.S_IMODE((tmp_path / "out" / "db.example.key").stat().st_mode) == 0o600

    port = free_port()
    command = " ".join(
        f"'{a}'"
        for a in [
            sys.executable, "-m", "privca", "--home", str(home), "serve", "--no-tls",
            "--listen", f"127.0.0.1:{port}", *secret,
        ]
    )  # fmt: skip
    server = subprocess.Popen(
        ["sh", "-c", f"umask {umask:03o} && exec {command}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.communicate()[1].decode()) from None
                time.sleep(0.1)
        # Writes through the server: a nonce row, a CRL.
        nonce = urllib.request.Request(f"http://127.0.0.1:{port}/acme/new-nonce", method="HEAD")
        urllib.request.urlopen(nonce, timeout=5).read()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/crl/issuing.crl", timeout=5).read()
        assert_guarded(home)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert_guarded(home)


def test_import_leaves_a_guarded_home(
    umask: int,
    tmp_path: Path,
    runbook: Runbook,  # noqa: F811
    passphrase_file: Path,
) -> None:
    home = tmp_path / "adopted"
    result = privca(
        home, umask, *runbook.import_args("--new-passphrase-file", str(passphrase_file))
    )
    assert result.returncode == 0, result.stderr
    assert_guarded(home)


def test_the_database_is_private_before_sqlite_touches_it(tmp_path: Path) -> None:
    """Created 0600 before the first connection, so SQLite's -wal and -shm (which copy the
    database's mode) are never wider either, even under umask 000."""
    path = tmp_path / "privca.db"
    old = os.umask(0)
    try:
        store = Store(sqlite_url(path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size == 0  # nothing written yet
        store.migrate()
        with store.engine.connect() as held:  # the last close removes -wal and -shm
            held.exec_driver_sql("SELECT count(*) FROM certificates").scalar()
            sides = [p for p in tmp_path.iterdir() if p.name.startswith("privca.db-")]
            assert {p.name for p in sides} == {"privca.db-wal", "privca.db-shm"}
            for side in sides:
                assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
        store.close()
    finally:
        os.umask(old)


# refusals ------------------------------------------------------------------------------


@pytest.fixture
def home_cli(run_cli: Cli) -> Iterator[Cli]:
    result = run_cli(
        "init", "--name", "Guarded CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.output
    yield run_cli


def _restore(path: Path, mode: int, uid: int) -> None:
    os.chmod(path, mode, follow_symlinks=False)
    os.chown(path, uid, -1, follow_symlinks=False)


LOOSE = [
    (".", 0o750, "chmod 700"),
    (".", 0o705, "chmod 700"),
    (".", 0o777, "chmod 700"),
    ("privca.toml", 0o640, "chmod 600"),
    ("privca.toml", 0o604, "chmod 600"),
    ("privca.toml", 0o620, "chmod 600"),
    ("privca.db", 0o644, "chmod 600"),
    ("privca.db", 0o660, "chmod 600"),
    ("private", 0o750, "chmod 700"),
]


@pytest.mark.parametrize(
    ("relative", "mode", "fix"), LOOSE, ids=[f"{r}-{m:04o}" for r, m, _f in LOOSE]
)
def test_a_loose_home_is_refused_with_the_chmod_fix(
    home_cli: Cli, relative: str, mode: int, fix: str
) -> None:
    target = home_cli.home / relative
    before = tree_snapshot(home_cli.home)
    original = target.stat()
    os.chmod(target, mode)
    try:
        result = home_cli("list")
        assert_user_error(result, fix, code=3)
        assert str(target.resolve()).rstrip("/.") in result.stderr.replace("/.'", "'")
        assert f"{mode:04o}" in result.stderr
    finally:
        _restore(target, stat.S_IMODE(original.st_mode), original.st_uid)
    assert tree_snapshot(home_cli.home) == before
    assert home_cli("list").exit_code == 0


def test_a_loose_wal_file_is_refused(home_cli: Cli) -> None:
    wal = home_cli.home / "privca.db-wal"
    wal.touch()
    os.chmod(wal, 0o644)
    assert_user_error(home_cli("list"), "chmod 600", code=3)


@requires_root
@pytest.mark.parametrize("relative", [".", "privca.toml", "privca.db", "private"])
def test_a_home_owned_by_another_user_is_refused_with_the_chown_fix(
    home_cli: Cli, relative: str
) -> None:
    target = home_cli.home / relative
    original = target.stat()
    os.chown(target, OTHER_UID, -1)
    try:
        result = home_cli("list")
        assert_user_error(result, f"chown {os.geteuid()}", code=3)
        assert f"owned by uid {OTHER_UID}" in result.stderr
    finally:
        _restore(target, stat.S_IMODE(original.st_mode), original.st_uid)


def test_a_symlinked_private_directory_is_refused(home_cli: Cli, tmp_path: Path) -> None:
    private = home_cli.home / "private"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(private, elsewhere)
    private.symlink_to(elsewhere)
    assert_user_error(home_cli("list"), "symlink", code=3)


def test_a_symlinked_settings_file_is_refused(home_cli: Cli, tmp_path: Path) -> None:
    settings = home_cli.home / "privca.toml"
    moved = tmp_path / "privca.toml"
    shutil.move(settings, moved)
    settings.symlink_to(moved)
    assert_user_error(home_cli("list"), "symlink", code=3)


def test_init_refuses_a_planted_private_symlink(run_cli: Cli, tmp_path: Path) -> None:
    """init used to chmod the symlink's target and write the CA keys there."""
    home = run_cli.home
    home.mkdir(mode=0o700)
    elsewhere = tmp_path / "attacker-dir"
    elsewhere.mkdir(mode=0o755)
    (home / "private").symlink_to(elsewhere)
    result = run_cli("init", "--name", "X", "--passphrase-file", str(run_cli.passphrase_file))
    assert_user_error(result, "symlink", code=3)
    assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
    assert sorted(p.name for p in home.iterdir()) == ["private"]  # nothing else created


def test_init_refuses_an_existing_loose_home(run_cli: Cli) -> None:
    run_cli.home.mkdir(mode=0o755)
    os.chmod(run_cli.home, 0o755)
    result = run_cli("init", "--name", "X", "--passphrase-file", str(run_cli.passphrase_file))
    assert_user_error(result, f"chmod 700 '{run_cli.home}'", code=3)
    assert list(run_cli.home.iterdir()) == []


def test_init_makes_a_new_home_0700_whatever_the_umask(run_cli: Cli) -> None:
    old = os.umask(0)
    try:
        result = run_cli("init", "--name", "X", "--passphrase-file", str(run_cli.passphrase_file))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert_guarded(run_cli.home)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_passphrase_file_others_can_read_is_refused(
    run_cli: Cli, tmp_path: Path, mode: int
) -> None:
    loose = write(tmp_path / "loose-passphrase", PASSPHRASE + b"\n", mode)
    result = run_cli("init", "--name", "X", "--passphrase-file", str(loose))
    assert_user_error(result, f"chmod 600 '{loose}'", code=3)
    assert not run_cli.home.exists()
    # ...and for a command on an existing home.
    good = run_cli("init", "--name", "X", "--passphrase-file", str(run_cli.passphrase_file))
    assert good.exit_code == 0
    issued = run_cli(
        "issue", "a.example", "--out", str(tmp_path / "o"), "--passphrase-file", str(loose)
    )
    assert_user_error(issued, "readable or writable by group or others", code=3)


@requires_root
@pytest.mark.parametrize("linked", [False, True], ids=["file", "symlink"])
def test_a_passphrase_file_another_user_owns_is_refused_with_the_chown_fix(
    run_cli: Cli, tmp_path: Path, linked: bool
) -> None:
    """Whoever owns the file can change the passphrase or loosen the mode at any time:
    the README promises the same refusal as for the home (it used to be accepted)."""
    theirs = write(tmp_path / "their-passphrase", PASSPHRASE + b"\n", 0o600)
    os.chown(theirs, OTHER_UID, -1)
    given = theirs
    if linked:  # a symlink is followed (systemd credentials), and its target checked
        given = tmp_path / "link-to-theirs"
        given.symlink_to(theirs)
    result = run_cli("init", "--name", "X", "--passphrase-file", str(given))
    assert_user_error(result, f"chown {os.geteuid()} '{given}'", code=3)
    assert f"owned by uid {OTHER_UID}" in result.stderr
    assert not run_cli.home.exists()
    good = run_cli("init", "--name", "X", "--passphrase-file", str(run_cli.passphrase_file))
    assert good.exit_code == 0, good.output
    before = tree_snapshot(run_cli.home)
    out = tmp_path / "o"
    issued = run_cli("issue", "a.example", "--out", str(out), "--passphrase-file", str(given))
    assert_user_error(issued, f"owned by uid {OTHER_UID}", code=3)
    assert tree_snapshot(run_cli.home) == before and not out.exists()
    # The owner's own file (root's, when the tests run as root) stays fine.
    os.chown(theirs, os.geteuid(), -1)
    issued = run_cli("issue", "a.example", "--out", str(out), "--passphrase-file", str(given))
    assert issued.exit_code == 0, issued.output


def test_atomic_write_of_settings_is_0600_under_umask_000(tmp_path: Path) -> None:
    from privca.settings import Settings

    old = os.umask(0)
    try:
        Settings(name="X").write(tmp_path / "privca.toml")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "privca.toml").stat().st_mode) == 0o600
    atomic_write(tmp_path / "x", b"y", 0o600)
    assert CAHome(tmp_path).settings.exists()
