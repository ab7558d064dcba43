"""The CA home: where each file lives, atomic writes, and permission checks on secrets.

The home is guarded like ~/.ssh: whoever can write it can swap privca.toml (and with it
the HSM module privca loads, or the store it trusts) or the inventory, and whoever can read
it can read the inventory and the EAB secrets. So the home is made 0700, privca.toml and
the SQLite files 0600 from their first byte, and every command refuses (exit 3, with the
chmod/chown fix) a home, settings file or database that group or others can read or
write, that another user owns, or whose private/ is a symlink. Mode bits and owners are
checked, not whether an open fails: root can open anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from privca.errors import (
    AlreadyExists,
    EnvironmentRefused,
    InputError,
    InsecurePermissions,
    KeyUnavailable,
    NotFound,
)

HOME_ENV = "PRIVCA_HOME"
SETTINGS_FILE = "privca.toml"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
BATCH_SYNC_THRESHOLD = 8
# A temporary privca writes beside a target: `.NAME.privca-` + mkstemp's 8 random
# characters + `.tmp` (the marker keeps a user's own `.NAME.backup_1.tmp` out of reach).
# One of a killed run (often a private key, 0600) is removed by the next write of the
# same target once it is this old and no process holds its lock (staged files, kept
# across a commit, are locked: see stage_files).
STALE_TEMPORARY_SECONDS = 60
TEMPORARY_MARK = "privca-"
_RANDOM_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # mkstemp's
_MKSTEMP_CHARACTERS = frozenset(_RANDOM_CHARACTERS)
# Staged temporaries this process holds locked (path -> open descriptor).
_HELD: dict[str, int] = {}


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
    def database_files(self) -> tuple[Path, ...]:
        """The SQLite database and the files SQLite keeps beside it."""
        db = self.database
        return (db, *(db.with_name(db.name + suffix) for suffix in SQLITE_SIDE_FILES))

    @property
    def eab_sealing_key(self) -> Path:
        """The key that encrypts EAB HMAC keys at rest in the inventory."""
        return self.private / "eab.key"

    @property
    def root_cert(self) -> Path:
        return self.certs / "root.crt"

    @property
    def roots(self) -> Path:
        """Every root to trust now (two during a root rollover); written by rollovers."""
        return self.certs / "roots.pem"

    @property
    def previous_root_cert(self) -> Path:
        """The old root while a root rollover lasts (trust install adds it; removed when
        the rollover ends)."""
        return self.certs / "previous-root.crt"

    @property
    def cross(self) -> Path:
        """The cross-certificate of a root rollover under way (empty after it ends)."""
        return self.certs / "cross.pem"

    @property
    def issuing_cert(self) -> Path:
        return self.certs / "issuing.crt"

    @property
    def scans(self) -> Path:
        """What `privca scan` last saw at each endpoint (for `privca rotate status`)."""
        return self.root / "scans.json"

    @property
    def chain(self) -> Path:
        return self.certs / "chain.pem"

    @property
    def audit_certificate(self) -> Path:
        """The audit key's certificate (checkpoints and exports verify against it)."""
        return self.certs / "audit.crt"

    @property
    def audit_key_reference(self) -> Path:
        """Where the audit signing key is: its key_ref (private/audit-*.key or a pkcs11:
        URI), not a secret, kept beside its certificate so backups carry it."""
        return self.certs / "audit-key.ref"

    @property
    def audit_checkpoint(self) -> Path:
        """The latest signed checkpoint of the audit log, published for copies elsewhere."""
        return self.certs / "audit-checkpoint.json"

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


@contextlib.contextmanager
def scratch_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory `parent/prefix` + 8 random characters (mode 0700, like mkdtemp's),
    removed with what it holds when the block ends. Its name is chosen before it exists
    and it is made inside the block: an exception at any moment, a signal turned into
    one included (cli/backup.py), never leaves it behind. mkdtemp returns only after
    making it, so such an exception there left it, with the CA's keys it came to hold."""
    path: Path | None = None
    try:
        for _attempt in range(100):
            path = parent / (prefix + "".join(secrets.choice(_RANDOM_CHARACTERS) for _ in range(8)))
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                path = None  # not ours: never removed
                continue
            break
        else:
            raise FileExistsError(errno.EEXIST, "no unused name", str(parent / prefix))
        yield path
    finally:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked_scratch_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """scratch_directory(), locked while in use, for work that puts the CA's keys in it
    (a restore, a backup's verification): what a process killed outright (SIGKILL, a
    power cut) left under the same prefix is removed first, when it is this user's,
    older than STALE_TEMPORARY_SECONDS and locked by no process. A run in progress
    holds its lock however long it takes, so it is never taken for a leftover."""
    _remove_stale_scratch(parent, prefix)
    with scratch_directory(parent, prefix) as scratch:
        fd: int | None = None
        try:
            with contextlib.suppress(OSError):  # a directory cannot be opened on Windows
                fd = os.open(scratch, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            if fd is not None:
                _lock(fd)
            yield scratch
        finally:
            if fd is not None:
                os.close(fd)


def _remove_stale_scratch(parent: Path, prefix: str) -> None:
    """Never fails: cleaning up after another process is a courtesy."""
    now = time.time()
    try:
        with os.scandir(parent) as entries:
            stale = [
                Path(entry.path)
                for entry in entries
                if entry.name.startswith(prefix)
                and is_random_tail(entry.name.removeprefix(prefix))
                and is_stale_leftover(entry, now, directory=True)
            ]
    except OSError:
        return
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for path in stale:
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path, mode: int) -> Iterator[None]:
    """Hold an advisory lock on `path` (created read-only with `mode`: flock needs no
    write access) so that processes of one home take turns; none where flock is missing
    (Windows: processes then start one by one)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
        _refuse_existing([path for path, _, _ in files])
    remove_stale_temporaries([path for path, _, _ in files])
    written: list[tuple[Path, Path]] = []
    target = files[0][0] if files else Path(".")  # named in an error, never a temp file
    # Past a handful of files, one sync() of everything is far cheaper than an fsync per
    # file, and gives the same guarantee: every byte is on disk before any rename.
    batch = len(files) > BATCH_SYNC_THRESHOLD
    try:
        for path, data, mode in files:
            target = path
            written.append((_write_temporary(path, data, mode, sync=not batch), path))
        if batch:
            os.sync()
        for tmp, path in written:
            target = path
            _publish(tmp, path, overwrite=overwrite)
        for directory in {path.parent for path, _, _ in files}:
            _fsync_directory(directory)
    except FileExistsError as exc:
        _discard(tmp for tmp, _ in written)
        raise AlreadyExists(f"'{exc.filename2 or exc.filename}' already exists") from exc
    except OSError as exc:
        _discard(tmp for tmp, _ in written)
        raise EnvironmentRefused(
            f"cannot write '{target}': {exc.strerror}",
            "check that the directory exists and is writable",
        ) from exc


def stage_files(files: Iterable[tuple[Path, bytes, int]]) -> list[tuple[Path, Path]]:
    """Write each file's bytes, fsynced, to a temporary file beside it (its mode from the
    first byte) without touching the target; returns (target, temporary) pairs for
    `publish_staged`. A full or unwritable directory fails here, before the caller commits
    anything: none of the temporaries is left behind then.

    Raises:
        EnvironmentRefused: a file could not be written (the target is named).
    """
    files = list(files)
    remove_stale_temporaries([path for path, _, _ in files])
    staged: list[tuple[Path, Path]] = []
    for path, data, mode in files:
        try:
            staged.append((path, _write_temporary(path, data, mode, sync=True, hold=True)))
        except OSError as exc:
            _discard(tmp for _, tmp in staged)
            raise EnvironmentRefused(
                f"cannot write '{path}': {exc.strerror}",
                "check that the directory exists, is writable and has room",
            ) from exc
    return staged


def publish_staged(staged: Iterable[tuple[Path, Path]], *, overwrite: bool) -> None:
    """Move staged temporaries onto their targets, in order, then fsync the directories.

    Without `overwrite` each is linked (link() never replaces a file, so one that appeared
    since any earlier check is found here, not clobbered) and the first target in the way
    undoes the targets this call already placed: it places all or none, and leaves every
    temporary for the caller to keep or discard. With `overwrite` each is renamed over
    its target. The temporaries of placed files are gone once this returns.

    Raises:
        AlreadyExists: without `overwrite`, a target exists (nothing placed).
        EnvironmentRefused: a target could not be placed.
    """
    staged = list(staged)
    placed: list[tuple[Path, Path]] = []
    try:
        for path, tmp in staged:
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
            placed.append((path, tmp))
    except OSError as exc:
        if overwrite:
            for _, tmp in placed:
                _release(tmp)  # renamed onto its target: nothing left to hold
        else:
            _unplace(placed)
        if isinstance(exc, FileExistsError):
            raise AlreadyExists(
                f"'{exc.filename2 or exc.filename}' already exists",
                "use --force to replace it, or another --out",
            ) from exc
        raise EnvironmentRefused(
            f"cannot write '{staged[len(placed)][0]}': {exc.strerror}",
            "check that the directory exists, is writable and has room",
        ) from exc
    if not overwrite:
        _discard(tmp for _, tmp in placed)
    for _, tmp in placed:
        _release(tmp)
    try:
        for directory in {path.parent for path, _ in staged}:
            _fsync_directory(directory)
    except OSError as exc:
        raise EnvironmentRefused(f"cannot sync '{staged[0][0].parent}': {exc.strerror}") from exc


def _unplace(placed: list[tuple[Path, Path]]) -> None:
    """Unlink the targets linked from these temporaries, each only while it is still that
    very file (the same inode): never one another process put there since."""
    for path, tmp in placed:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, tmp):
                path.unlink()


def discard_staged(staged: Iterable[tuple[Path, Path]]) -> None:
    """Remove staged temporaries that were not (or could not be) published."""
    _discard(tmp for _, tmp in staged)


def _refuse_existing(paths: list[Path]) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise AlreadyExists(
                f"'{path}' already exists",
                "remove it or choose another --out directory",
            )


def _write_temporary(path: Path, data: bytes, mode: int, *, sync: bool, hold: bool = False) -> Path:
    """`data` in a new temporary file beside `path`, with `mode` from the first byte;
    with `hold`, kept open and locked until published or discarded (so no other run
    takes it for a killed run's leftover, however long a commit takes)."""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{TEMPORARY_MARK}", suffix=".tmp", dir=path.parent
    )
    tmp = Path(tmp_name)
    try:
        try:
            if hold:
                _lock(fd)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            if hold:
                _HELD[tmp_name] = fd
            else:
                os.close(fd)
    except OSError:
        _discard([tmp])
        raise
    return tmp


def _lock(fd: int, *, wait: bool = True) -> bool:
    """flock `fd` exclusively; False if another process holds it (and not `wait`). Where
    flock is missing (Windows), nothing is locked and True is returned."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _release(tmp: Path) -> None:
    fd = _HELD.pop(str(tmp), None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def remove_stale_temporaries(targets: Iterable[Path]) -> None:
    """Remove what killed runs left beside these targets: only privca's own temporaries
    of exactly these names (`.NAME.privca-XXXXXXXX.tmp`), regular files of this user, older than
    STALE_TEMPORARY_SECONDS and locked by no process. Never fails: cleaning is a courtesy."""
    by_directory: dict[Path, set[str]] = {}
    for target in targets:
        by_directory.setdefault(target.parent, set()).add(target.name)
    now = time.time()
    for directory, names in by_directory.items():
        try:
            with os.scandir(directory) as entries:
                stale = [
                    Path(entry.path)
                    for entry in entries
                    if _temporary_of(entry.name) in names and is_stale_leftover(entry, now)
                ]
        except OSError:
            continue
        for path in stale:
            _remove_unlocked(path)


def is_random_tail(text: str) -> bool:
    """Whether `text` is the 8 random characters privca (and mkstemp) end a name with."""
    return len(text) == 8 and set(text) <= _MKSTEMP_CHARACTERS


def _temporary_of(name: str) -> str | None:
    """The target a temporary's name is for (`.db.key.privca-k3j_9x0a.tmp` -> `db.key`)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    target, _, marked = name[1:-4].rpartition(".")
    random = marked.removeprefix(TEMPORARY_MARK)
    if random == marked or not is_random_tail(random):
        return None
    return target or None


def is_stale_leftover(entry: os.DirEntry[str], now: float, *, directory: bool = False) -> bool:
    """A file (or, with `directory`, a directory; never a symlink) of this user, untouched
    for STALE_TEMPORARY_SECONDS: what a process killed outright may have left."""
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
    return kind(info.st_mode) and mine and now - info.st_mtime > STALE_TEMPORARY_SECONDS


def _remove_unlocked(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if _lock(fd, wait=False):
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)


# link() refused by the filesystem (vfat, some network mounts), not by the target.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _publish(tmp: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # link() fails if the target appeared since the check above: never clobber.
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links here: a rename after a check, which only a run racing within
        # that instant could defeat.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.rename(tmp, path)
        return
    tmp.unlink()


def _discard(temporaries: Iterable[Path]) -> None:
    for tmp in temporaries:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _release(tmp)


class HomeConstruction:
    """What a CA-establishing command (init, import) has created so far, so that a failure
    removes exactly that and a retry starts clean; it never touches anything else."""

    def __init__(self, home: CAHome) -> None:
        self.home = home
        self.created: list[Path] = []
        self.root_existed = home.root.exists()

    def make_directories(self) -> None:
        """The home (0700, or an existing one that passes `check_home_directory`),
        certs/ and crl/, and private/ (0700, never through a symlink)."""
        if self.root_existed:
            check_home_directory(self.home.root)
        else:
            self.home.root.parent.mkdir(parents=True, exist_ok=True)
            self.home.root.mkdir(mode=0o700)
            os.chmod(self.home.root, 0o700)  # exactly 0700 whatever the umask
        for directory in (self.home.certs, self.home.crl):
            if not directory.exists():
                directory.mkdir(mode=0o755)
                self.created.append(directory)
        if not self.home.private.exists() and not self.home.private.is_symlink():
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
        for side_file in self.home.database_files[1:]:
            with contextlib.suppress(OSError):
                side_file.unlink()
        if not self.root_existed:
            with contextlib.suppress(OSError):
                self.home.root.rmdir()


def make_private_directory(path: Path) -> None:
    """Create private/ 0700, or tighten an existing real directory of ours to 0700.

    Opened with O_NOFOLLOW, so a `private -> elsewhere` symlink planted beforehand is
    refused instead of followed (and its target chmodded and filled with CA keys)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if path.is_symlink():
            raise InsecurePermissions(
                f"private key directory '{path}' is a symlink",
                f"remove it and let privca create the directory: rm '{path}'",
            ) from exc
        raise EnvironmentRefused(
            f"cannot use '{path}' as the private key directory: {exc.strerror}"
        ) from exc
    try:
        info = os.fstat(fd)
        _check_owner(path, info)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


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


def _check_mode(path: Path, info: os.stat_result, what: str, fix_mode: int) -> None:
    if info.st_mode & 0o077:
        raise InsecurePermissions(
            f"{what} '{path}' is readable or writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o})",
            f"run: chmod {fix_mode:o} '{path}'",
        )


def _check_not_shared(path: Path, info: os.stat_result, what: str, fix_mode: int) -> None:
    _check_mode(path, info, what, fix_mode)
    _check_owner(path, info)


def check_home_directory(path: Path) -> None:
    """Refuse a home directory that group or others can enter, or another user owns.

    The home itself may be a symlink to the real directory (the target is checked)."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise NotFound(
            f"no CA found at '{path}'",
            "run `privca init --name NAME`, or pass --home / set $PRIVCA_HOME",
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise EnvironmentRefused(f"CA home '{path}' is not a directory")
    _check_not_shared(path, info, "CA home", 0o700)


def check_private_file(path: Path, what: str) -> None:
    """Refuse a home file (settings, database) that is a symlink, not a regular file,
    readable or writable by group or others, or owned by another user."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise InsecurePermissions(
            f"{what} '{path}' is a symlink", "replace the symlink with the file itself"
        )
    if not stat.S_ISREG(info.st_mode):
        raise InsecurePermissions(f"{what} '{path}' is not a regular file")
    _check_not_shared(path, info, what, 0o600)


def check_home(home: CAHome) -> None:
    """Everything an opening command checks before it trusts a home (see the docstring
    of this module): the directory, privca.toml, private/ and the SQLite files."""
    check_home_directory(home.root)
    if home.settings.exists() or home.settings.is_symlink():
        check_private_file(home.settings, "settings file")
    if home.private.exists() or home.private.is_symlink():
        check_private_directory(home.private)
    for path in home.database_files:
        if path.exists() or path.is_symlink():
            check_private_file(path, "inventory database file")


def create_private_file(path: Path) -> None:
    """Create an empty file 0600 unless it exists, so that whatever writes it later (SQLite
    creates its database with the umask) finds it private from the first byte."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except (FileExistsError, FileNotFoundError, NotADirectoryError):
        return  # exists (checked by check_home), or a directory the caller reports
    os.close(fd)


def check_secret_file(path: Path, what: str) -> None:
    """Refuse a passphrase, PIN or password file group or others can read, or that another
    user owns (OpenSSH's rule for its private keys, and the home's): whoever owns the file
    can swap the secret or loosen its mode at any time. A symlink is followed, as systemd's
    credential files may be one; a pipe (`<(...)`) is not a file anyone else can open."""
    try:
        info = path.stat()
    except OSError:
        return  # read_input_file reports a missing or unreadable file
    if stat.S_ISREG(info.st_mode):
        _check_not_shared(path, info, what, 0o600)


def read_secret_file(path: Path, what: str) -> bytes:
    """A passphrase, PIN or password from a file only its owner can read (else exit 3).

    The trailing newline editors and `echo` add is dropped: a secret never ends in one."""
    check_secret_file(path, what)
    secret = read_input_file(path, what, limit=4096).rstrip(b"\r\n")
    if not secret:
        raise InputError(f"{what} '{path}' is empty", "write the secret into it, on one line")
    return secret


def _check_owner(path: Path, info: os.stat_result) -> None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise InsecurePermissions(
            f"'{path}' is owned by uid {info.st_uid}, not by the user running privca "
            f"(uid {os.geteuid()})",
            f"run privca as its owner, or: chown {os.geteuid()} '{path}'",
        )


def read_input_file(path: Path, what: str, limit: int = 1 << 20) -> bytes:
    """Read a user-supplied file with a size cap, turning OS errors into input errors."""
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
            f"give the {what} meant here" if what != "file" else "give a smaller file",
        )
    return data


def atomic_write_stream(
    path: Path, write: Callable[[BinaryIO], None], mode: int, *, overwrite: bool = False
) -> None:
    """`atomic_write` for a file too large to hold in memory: `write` fills a temporary
    file (created with `mode`, seekable) beside `path`, which is then fsynced and renamed
    (or, without `overwrite`, linked: never over a file that appeared meanwhile)."""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{TEMPORARY_MARK}", suffix=".tmp", dir=path.parent
    )
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
        _fsync_directory(path.parent)
    except FileExistsError as exc:
        raise AlreadyExists(f"'{path}' already exists") from exc
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot write '{path}': {exc.strerror}",
            "check that the directory exists and is writable, and the disk not full",
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
