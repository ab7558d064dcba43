"""`privca restore` and `privca backup verify`: a CA home brought back from an archive.

A restore is built in a private directory beside the target and renamed into place only
when complete (archive checked, store migrated, restore recorded in the store), so a
failure leaves nothing behind. What the restored CA publishes next cannot contradict what
the lost one published after the backup: CRL numbers never go below a time floor
(store/authorities.py), and serials are random (64+ bits), so a new one does not collide
with one the lost CA issued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from privca.backup.archive import DATABASE, Manifest, read_archive
from privca.backup.contents import check_staged
from privca.backup.snapshot import StoreSummary, load_into_postgresql
from privca.errors import AlreadyExists, EnvironmentRefused, InputError
from privca.home import (
    CAHome,
    _fsync_directory,
    atomic_write,
    check_home,
    locked_scratch_directory,
    make_private_directory,
)
from privca.settings import Settings
from privca.store.address import check_store_url
from privca.store.database import Database, sqlite_url

PUBLIC_DIRECTORY = 0o755


@dataclass(frozen=True)
class RestoreResult:
    home: Path
    manifest: Manifest
    summary: StoreSummary
    age: dt.timedelta
    store_url: str  # "" for SQLite in the home
    certificates_verified: int = 0  # each checked against the CA that signed it


def check_target_free(target: Path) -> None:
    """Refuse a target that exists and is not an empty directory (nothing is merged)."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise AlreadyExists(
            f"'{target}' exists and is not a directory", "restore into a new directory"
        )
    if target.is_dir() and any(target.iterdir()):
        raise AlreadyExists(
            f"'{target}' is not empty",
            "restore into a new or empty directory; move the old home away first",
        )
    if not target.absolute().parent.is_dir():
        raise InputError(
            f"'{target.absolute().parent}' does not exist", "create the parent directory first"
        )


def _settle_directories(home: Path) -> None:
    """The home 0700, private/ 0700, certs/ and crl/ 0755, as init makes them."""
    home.mkdir(exist_ok=True)
    os.chmod(home, 0o700)
    make_private_directory(home / "private")
    for name in ("certs", "crl"):
        directory = home / name
        directory.mkdir(exist_ok=True)
        os.chmod(directory, PUBLIC_DIRECTORY)


def _settings_for(settings_file: Path, store_url: str, password_file: str) -> None:
    """Point privca.toml at the store the CA was restored into (the bytes stay as they
    were when the store does not change)."""
    settings = Settings.from_toml(settings_file.read_text(encoding="utf-8"), "privca.toml")
    if settings.store_url == store_url and (not store_url or not password_file):
        return
    changed = dataclasses.replace(
        settings,
        store_url=store_url,
        store_password_file=password_file if store_url else "",
    )
    atomic_write(settings_file, changed.to_toml().encode(), 0o600)


def _record_restore(url: str, password: str | None, manifest: Manifest, now: dt.datetime) -> None:
    database = Database(url, password)
    try:
        with database.change(now) as change:
            # What came back and how old it is: anything after the backup may be missing
            # (`privca scan` + `privca import` bring lost certificates back).
            detail = {
                "backup_created_at": manifest.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "age_seconds": int((now - manifest.created_at).total_seconds()),
                "privca_version": manifest.privca_version,
                "schema_revision": manifest.schema_revision,
                "source_store": manifest.source_store,
                "certificates": manifest.summary.get("certificates"),
                "keys": {
                    where: sorted(refs) for where, refs in sorted(manifest.keys.items()) if refs
                },
            }
            change.record("restored", None, detail)
    finally:
        database.close()


STAGING_MARK = ".restore-"


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A private directory beside `target` to build the restore in, removed when the
    block ends, failed or not (on success its home was renamed out of it): it holds the
    CA's keys."""
    parent = target.absolute().parent
    with locked_scratch_directory(parent, f".{target.name}{STAGING_MARK}") as staging:
        yield staging


def restore(
    archive: Path,
    target: Path,
    now: dt.datetime,
    *,
    store_url: str = "",
    store_password: str | None = None,
    store_password_file: str = "",
) -> RestoreResult:
    """Bring the CA in `archive` back as a new home at `target` (absent or empty), its
    store in the home (SQLite) or in the empty PostgreSQL database `store_url`."""
    check_target_free(target)
    if store_url:
        store_url = check_store_url(store_url)
    with _staging(target) as staging:
        manifest = read_archive(archive, staging)
        home = staging / "home"
        _settle_directories(home)
        snapshot = staging / DATABASE
        # Everything `backup verify` refuses in an archive is refused here, by the same
        # checks, before anything is put in place or loaded into PostgreSQL.
        checked = check_staged(home, snapshot, manifest)
        if store_url:
            load_into_postgresql(snapshot, store_url, store_password)
            _record_restore(store_url, store_password, manifest, now)
        else:
            os.replace(snapshot, home / "privca.db")
            _record_restore(sqlite_url(home / "privca.db"), None, manifest, now)
        _settings_for(home / "privca.toml", store_url, store_password_file)
        check_home(CAHome(home))
        os.sync()  # every restored byte on disk before the home appears under its name
        try:
            os.rename(home, target)  # onto an empty directory, or a new name
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise AlreadyExists(
                    f"'{target}' was filled while the backup was restored",
                    "restore into a new directory",
                ) from exc
            raise EnvironmentRefused(  # e.g. a mount point: EBUSY
                f"cannot put the restored home at '{target}': {exc.strerror}",
                "restore into a new directory (not a mount point), then move its contents",
            ) from exc
        _fsync_directory(target.absolute().parent)
    return RestoreResult(
        target,
        manifest,
        checked.summary,
        now - manifest.created_at,
        store_url,
        checked.certificates_verified,
    )


__all__ = ["RestoreResult", "check_target_free", "restore"]
