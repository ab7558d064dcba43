"""`privca backup`: one archive of a CA home and its store, taken while the CA works.

The store is copied first (snapshot.py), then the files: a key is written before the CA
that uses it is recorded, so every key the copied store names exists by then.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from privca import __version__
from privca.auditing import read_audit_key_ref
from privca.backup.archive import (
    DATABASE,
    SETTINGS,
    Manifest,
    Member,
    Source,
    is_member_name,
    member_limit,
    sha256_file,
    sha256_hex,
    write_archive,
)
from privca.backup.snapshot import (
    StoreSummary,
    snapshot_postgresql,
    snapshot_sqlite,
    summarize_file,
)
from privca.errors import AlreadyExists, EnvironmentRefused, InputError, StoreUnavailable
from privca.home import CAHome, atomic_write_stream, check_home, check_key_file
from privca.keys.custody import is_token_reference
from privca.settings import Settings

ENCRYPTED_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
PRIVATE_KEY_TAIL = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    size: int


def holds_clear_private_key(data: bytes) -> bool:
    """True if `data` has a PEM private key block that is not ENCRYPTED PRIVATE KEY (the
    one form of PEM key whose content is useless without the passphrase)."""
    for line in data.splitlines():
        line = line.strip()
        is_key = line.startswith(b"-----BEGIN ") and line.endswith(PRIVATE_KEY_TAIL)
        if is_key and line != ENCRYPTED_HEADER:
            return True
    return False


def _key_member(home: CAHome, path: Path, key_ref: str) -> tuple[str, bytes]:
    if path.parent != home.private:
        raise InputError(
            f"the CA key '{key_ref}' is not a file in '{home.private}'",
            "move it into private/ (and its key_ref with it), or back up with --exclude-keys",
        )
    check_key_file(path)
    data = path.read_bytes()
    if holds_clear_private_key(data) or ENCRYPTED_HEADER not in data:
        raise InputError(
            f"the CA key '{key_ref}' is not encrypted: a backup never holds a key in the clear",
            "back up with --exclude-keys and keep private/ elsewhere, or move the keys to "
            "encrypted files (privca rotate) or an HSM",
        )
    return f"home/private/{path.name}", data


def _key_files(
    home: CAHome, summary: StoreSummary, exclude: bool
) -> tuple[dict[str, bytes], dict[str, list[str]]]:
    files: dict[str, bytes] = {}
    where: dict[str, list[str]] = {"included": [], "excluded": [], "offline": [], "hsm": []}
    # The CA keys, and the audit key that signs the log's checkpoints (kept like them).
    refs = [authority.key_ref for authority in summary.authorities]
    audit_ref = read_audit_key_ref(home)
    for ref in [*refs, *([audit_ref] if audit_ref else [])]:
        if ref in {*where["included"], *where["excluded"], *where["offline"], *where["hsm"]}:
            continue
        if is_token_reference(ref):
            where["hsm"].append(ref)
            continue
        path = home.root / ref
        if exclude:
            where["excluded"].append(ref)
        elif not path.exists():
            where["offline"].append(ref)  # a root key kept offline, say
        else:
            name, data = _key_member(home, path, ref)
            files[name] = data
            where["included"].append(ref)
    sealing = home.eab_sealing_key
    ref = str(sealing.relative_to(home.root))
    if sealing.exists():
        if exclude:
            where["excluded"].append(ref)
        else:
            check_key_file(sealing)
            files[f"home/private/{sealing.name}"] = sealing.read_bytes()
            where["included"].append(ref)
    return files, where


def _public_files(directory: Path, prefix: str) -> dict[str, bytes]:
    """The regular files of certs/ or crl/ (links and odd names are not a CA's files)."""
    files: dict[str, bytes] = {}
    if not directory.is_dir():
        return files
    for path in sorted(directory.iterdir()):
        name = f"{prefix}/{path.name}"
        if path.is_file() and not path.is_symlink() and is_member_name(name):
            files[name] = path.read_bytes()
    return files


def _check_sizes(files: dict[str, bytes]) -> None:
    """No archive restore would refuse (archive.member_limit): a file larger than its
    place in a CA home can hold is not the CA's."""
    for name, data in files.items():
        limit = member_limit(name)
        if limit is not None and len(data) > limit:
            raise InputError(
                f"'{name.removeprefix('home/')}' is {len(data)} bytes, more than a backup "
                f"takes for a file there ({limit})",
                "certs/, crl/ and private/ hold a CA's certificates, CRLs and keys: move "
                "other files out of the home",
            )


def check_out_file(out: Path, home: CAHome, force: bool) -> None:
    """Before any work: `out` can be written, is not in the home, and is new (or --force)."""
    if out.is_dir():
        raise InputError(f"--out '{out}' is a directory", "name the archive file to write")
    if (out.exists() or out.is_symlink()) and not force:
        raise AlreadyExists(
            f"'{out}' already exists", "use --force to replace it, or another --out"
        )
    parent = out.absolute().parent
    if not parent.is_dir():
        raise InputError(f"--out '{out}': '{parent}' is not a directory", "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EnvironmentRefused(f"cannot write into '{parent}': permission denied")
    if parent.resolve().is_relative_to(home.root.resolve()):
        raise InputError(
            f"--out '{out}' is inside the CA home", "write backups outside the home they copy"
        )


def write_backup(
    home_root: Path, out: Path, now: dt.datetime, *, exclude_keys: bool = False, force: bool = False
) -> BackupResult:
    """Write one archive of the CA at `home_root` to `out`, atomically, mode 0600."""
    home = CAHome(home_root)
    check_home(home)
    settings = Settings.read(home.settings)
    check_out_file(out, home, force)
    with tempfile.TemporaryDirectory(prefix="privca-backup-") as scratch:
        snapshot = Path(scratch) / "privca.db"
        if settings.store_url:
            snapshot_postgresql(settings.store_url, settings.store_password(), snapshot)
        else:
            if not home.database.exists():
                raise StoreUnavailable(
                    f"the inventory '{home.database}' is missing",
                    "is --home pointing at the right CA?",
                )
            snapshot_sqlite(home.database, snapshot)
        summary = summarize_file(snapshot)
        keys, where = _key_files(home, summary, exclude_keys)
        # The small files are read once, here: what is hashed is what is archived.
        files: dict[str, bytes] = {SETTINGS: home.settings.read_bytes()}
        files |= _public_files(home.certs, "home/certs")
        files |= _public_files(home.crl, "home/crl")
        files |= keys
        _check_sizes(files)
        clear = [name for name, data in files.items() if holds_clear_private_key(data)]
        if clear:
            raise InputError(
                f"'{clear[0]}' holds an unencrypted private key: a backup never holds one",
                "remove it from the home, or back up with --exclude-keys",
            )
        hashes = {name: Member(sha256_hex(data), len(data)) for name, data in files.items()}
        # The snapshot is privca's own copy, unchanging: streamed, never held in memory.
        hashes[DATABASE] = Member(sha256_file(snapshot), snapshot.stat().st_size)
        sources: dict[str, Source] = {**files, DATABASE: snapshot}
        manifest = Manifest(
            created_at=now,
            privca_version=__version__,
            schema_revision=summary.schema_revision,
            source_store="postgresql" if settings.store_url else "sqlite",
            members=hashes,
            summary=summary.document(),
            keys={k: v for k, v in where.items() if v},
        )
        atomic_write_stream(
            out,
            lambda handle: write_archive(handle, manifest, sources),
            0o600,
            overwrite=force,
        )
    return BackupResult(out, manifest, out.stat().st_size)


__all__ = ["BackupResult", "check_out_file", "holds_clear_private_key", "write_backup"]
