"""The CA home: where each file lives, atomic writes, and permission checks on secrets."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from privca.errors import AlreadyExists, EnvironmentRefused, InsecurePermissions, KeyUnavailable

HOME_ENV = "PRIVCA_HOME"
SETTINGS_FILE = "privca.toml"
BATCH_SYNC_THRESHOLD = 8


def default_home() -> Path:
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("privca", appauthor=False))


@dataclass(frozen=True)
class CAHome:
    """Paths inside one CA home directory."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / SETTINGS_FILE

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def crl(self) -> Path:
        return self.root / "crl"

    @property
    def database(self) -> Path:
        return self.root / "privca.db"

    @property
    def root_cert(self) -> Path:
        return self.certs / "root.crt"

    @property
    def issuing_cert(self) -> Path:
        return self.certs / "issuing.crt"

    @property
    def chain(self) -> Path:
        return self.certs / "chain.pem"

    def key_path(self, role: str) -> Path:
        return self.private / f"{role}.key"

    def exists(self) -> bool:
        return self.settings.exists()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, overwrite: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    The temporary file is created with its final mode, so a secret is never readable by
    others even for an instant; it is fsynced, renamed over the target, then the directory
    is fsynced so the rename itself survives a crash.
    """
    atomic_write_many([(path, data, mode)], overwrite=overwrite)


def atomic_write_many(files: Iterable[tuple[Path, bytes, int]], *, overwrite: bool = True) -> None:
    """Atomically write several files, fsyncing each directory once at the end.

    Checks every target before writing any, so an existing file refuses the whole set.
    """
    files = list(files)
    if not overwrite:
        for path, _, _ in files:
            if path.exists() or path.is_symlink():
                raise AlreadyExists(
                    f"'{path}' already exists",
                    "remove it or choose another --out directory",
                )
    written: list[tuple[Path, Path]] = []
    directories: set[Path] = set()
    target = files[0][0] if files else Path(".")  # named in an error, never a temp file
    # Past a handful of files, one sync() of everything is far cheaper than an fsync per
    # file, and gives the same guarantee: every byte is on disk before any rename.
    batch = len(files) > BATCH_SYNC_THRESHOLD
    try:
        for path, data, mode in files:
            target = path
            directory = path.parent
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            tmp = Path(tmp_name)
            written.append((tmp, path))
            try:
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if not batch:
                    os.fsync(fd)
            finally:
                os.close(fd)
            directories.add(directory)
        if batch:
            os.sync()
        for tmp, path in written:
            target = path
            os.replace(tmp, path)
        for directory in directories:
            _fsync_directory(directory)
    except OSError as exc:
        for tmp, _ in written:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise EnvironmentRefused(
            f"cannot write '{target}': {exc.strerror}",
            "check that the directory exists and is writable",
        ) from exc


class HomeConstruction:
    """What a CA-establishing command (init, import) has created so far, so that a failure
    removes exactly that and a retry starts clean; it never touches anything else."""

    def __init__(self, home: CAHome) -> None:
        self.home = home
        self.created: list[Path] = []
        self.root_existed = home.root.exists()

    def make_directories(self) -> None:
        self.home.root.mkdir(parents=True, exist_ok=True)
        for directory in (self.home.certs, self.home.crl):
            if not directory.exists():
                directory.mkdir(mode=0o755)
                self.created.append(directory)
        if not self.home.private.exists():
            self.created.append(self.home.private)
        make_private_directory(self.home.private)

    def track(self, path: Path) -> None:
        self.created.append(path)

    def undo(self) -> None:
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                (self.home.database.parent / (self.home.database.name + suffix)).unlink()
        if not self.root_existed:
            with contextlib.suppress(OSError):
                self.home.root.rmdir()


def make_private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def check_private_directory(path: Path) -> None:
    """Refuse a private/ directory that group or others can enter, as ssh does."""
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise KeyUnavailable(
            f"private key directory '{path}' does not exist",
            "is --home pointing at the right CA?",
        ) from exc
    if stat.S_ISLNK(info.st_mode):
        raise InsecurePermissions(
            f"private key directory '{path}' is a symlink",
            "replace the symlink with the real directory",
        )
    if info.st_mode & 0o077:
        raise InsecurePermissions(
            f"private key directory '{path}' is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})",
            f"run: chmod 700 '{path}'",
        )
    _check_owner(path, info)


def check_key_file(path: Path) -> None:
    """Refuse a key file that is a symlink, owned by someone else, or readable by others.

    Mode bits are checked rather than relying on a failed open: root can open anything.
    """
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise KeyUnavailable(
            f"CA key file '{path}' does not exist",
            "is --home pointing at the right CA?",
        ) from exc
    if stat.S_ISLNK(info.st_mode):
        raise InsecurePermissions(
            f"CA key file '{path}' is a symlink",
            "replace the symlink with the key file itself, mode 0400",
        )
    if not stat.S_ISREG(info.st_mode):
        raise InsecurePermissions(f"CA key file '{path}' is not a regular file")
    if info.st_mode & 0o077:
        raise InsecurePermissions(
            f"CA key file '{path}' is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})",
            f"run: chmod 400 '{path}'",
        )
    _check_owner(path, info)


def _check_owner(path: Path, info: os.stat_result) -> None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise InsecurePermissions(
            f"'{path}' is owned by uid {info.st_uid}, not by the user running privca "
            f"(uid {os.geteuid()})",
            f"run privca as its owner, or: chown {os.geteuid()} '{path}'",
        )


def read_input_file(path: Path, what: str, limit: int = 1 << 20) -> bytes:
    """Read a user-supplied file with a size cap, turning OS errors into input errors."""
    from privca.errors import InputError

    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise InputError(f"{what} '{path}' does not exist", "check the path") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{what} '{path}' is a directory, not a file") from exc
    except OSError as exc:
        raise InputError(f"cannot read {what} '{path}': {exc.strerror}") from exc
    if len(data) > limit:
        raise InputError(
            f"{what} '{path}' is larger than {limit // 1024} KiB",
            "is this really a certificate, key or CSR?",
        )
    return data
