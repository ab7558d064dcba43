"""The backup archive: a gzip'd tar whose first member, manifest.json, names every other
member with its size and SHA-256.

Members (nothing else is accepted when reading):

    manifest.json            format, privca version, schema revision, created-at, the
                             store's summary, which keys are in and which are not
    home/privca.toml         the settings as they are (they name a password file, never
                             hold a password: check_store_url refuses one in the URL)
    home/certs/NAME          every CA certificate and chain file
    home/crl/NAME            the published CRLs
    home/private/NAME        the encrypted CA key files byte for byte, and eab.key (the key
                             sealing EAB secrets in the store); absent with --exclude-keys
    store/privca.db          the store, one SQLite file (snapshot.py)

Reading trusts nothing: the manifest must come first, every name must match the list
above (no "..", no absolute path, no link or device), every size and hash must match the
manifest, no member may be larger than its kind can be (member_limit) and all of them must
fit on the disk before the first is written, and files are written by privca (never
tarfile.extract) with the mode the member's place calls for, not the mode the archive
claims.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from privca._text import printable
from privca.errors import CheckFailed, EnvironmentRefused, InputError, NotFound

FORMAT = "privca-backup/1"
MANIFEST = "manifest.json"
SETTINGS = "home/privca.toml"
DATABASE = "store/privca.db"
MANIFEST_LIMIT = 1 << 20
COPY_CHUNK = 1 << 20
# The gzip header build_archive writes: magic, deflate, FCOMMENT, mtime 0, default
# compression, unknown OS, then the comment "privca-backup sha256=<hex>" NUL. The hash
# covers every byte after the comment (deflate data, CRC-32, length), and the header is
# checked byte for byte, so no byte of the file can change unnoticed: deflate has bits a
# decoder ignores, which gzip's own CRC (of the decompressed data) cannot see.
GZIP_HEADER = bytes.fromhex("1f8b08100000000000ff")
# gzip's default: level 9 took half as long again for an archive 2% smaller
# (benchmarks/backup.py, 100k certificates).
COMPRESSION_LEVEL = 6
SEAL_PREFIX = b"privca-backup sha256="
SEAL_LENGTH = len(GZIP_HEADER) + len(SEAL_PREFIX) + 64 + 1
_MEMBER = re.compile(
    r"(?:home/privca\.toml|store/privca\.db|home/(?:certs|crl|private)/[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
)
PRIVATE_FILE = 0o600
KEY_FILE = 0o400  # as init writes them
PUBLIC_FILE = 0o644
# The most a member of each kind can hold, checked against the manifest before anything
# is written (a tiny archive of zeros listing a 1 GiB CRL wrote 1 GB before its hash
# was found wrong). Certificates, chains, key files and the settings are kilobytes; a
# CRL is ~40 bytes a revocation (3 million in 128 MiB); the store has no cap but the
# disk, whose free space is checked against the whole archive first.
SMALL_MEMBER_LIMIT = 1 << 20
CRL_MEMBER_LIMIT = 128 << 20


def is_member_name(name: str) -> bool:
    return _MEMBER.fullmatch(name) is not None and ".." not in name


def member_limit(name: str) -> int | None:
    """The largest size a member of this name can have; None for the store."""
    if name == DATABASE:
        return None
    if name.startswith("home/crl/"):
        return CRL_MEMBER_LIMIT
    return SMALL_MEMBER_LIMIT


def check_member_size(name: str, size: int) -> None:
    limit = member_limit(name)
    if size < 0 or (limit is not None and size > limit):
        raise InputError(
            f"the backup lists {printable(name, 80)!r} at {size} bytes; a CA home's file "
            f"there is never larger than {limit} bytes",
            "this is not an archive `privca backup` wrote, or it was altered: restore "
            "another backup",
        )


def member_mode(name: str) -> int:
    """The mode a member gets on disk, decided by where it goes, never by the archive."""
    if name.startswith("home/private/"):
        return KEY_FILE
    if name in (SETTINGS, DATABASE):
        return PRIVATE_FILE
    return PUBLIC_FILE


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    created_at: dt.datetime
    privca_version: str
    schema_revision: str | None
    source_store: str  # sqlite | postgresql
    members: dict[str, Member]
    summary: dict[str, Any]
    # key_refs by where they are: included | excluded (--exclude-keys) | offline (no file
    # at backup time: a root kept offline) | hsm (on a token, referenced, never copied)
    keys: dict[str, list[str]] = field(default_factory=dict)

    @property
    def keys_complete(self) -> bool:
        """Whether every key file the CA uses is in the archive."""
        return not self.keys.get("excluded") and not self.keys.get("offline")

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "privca_version": self.privca_version,
            "schema_revision": self.schema_revision,
            "source_store": self.source_store,
            "keys": self.keys,
            "summary": self.summary,
            "members": {
                name: {"sha256": m.sha256, "size": m.size} for name, m in self.members.items()
            },
        }

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise InputError(
                    f"unknown backup format {printable(str(document.get('format')), 40)!r}",
                    f"this privca reads {FORMAT} archives",
                )
            members = {
                str(name): Member(str(m["sha256"]), int(m["size"]))
                for name, m in document["members"].items()
            }
            created = dt.datetime.strptime(document["created_at"], "%Y-%m-%dT%H:%M:%SZ")
            manifest = cls(
                created_at=created.replace(tzinfo=dt.UTC),
                privca_version=str(document["privca_version"]),
                schema_revision=document.get("schema_revision"),
                source_store=str(document.get("source_store", "sqlite")),
                members=members,
                summary=dict(document.get("summary", {})),
                keys={str(k): [str(x) for x in v] for k, v in document.get("keys", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckFailed(f"the backup's manifest is malformed: {exc}") from exc
        bad = [name for name in members if not is_member_name(name)]
        if bad:
            raise InputError(
                f"the backup's manifest names a file outside a CA home: {printable(bad[0], 80)!r}",
                "this is not an archive `privca backup` wrote; do not restore it",
            )
        for name, member in members.items():
            check_member_size(name, member.size)
        # Every privca backup holds both: without them a restore failed with an internal
        # error (sqlite3 made an empty store where the archive had none).
        absent = [name for name in (SETTINGS, DATABASE) if name not in members]
        if absent:
            raise InputError(
                f"the backup holds no {absent[0]}: every privca backup does",
                "this is not an archive `privca backup` wrote, or it was altered: restore "
                "another backup",
            )
        return manifest


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _SealedBody:
    """What tarfile writes to: deflates it into `handle`, keeping the CRC-32 and length
    gzip's trailer needs and the SHA-256 of every byte written (the seal)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._deflate = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._length = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._crc = zlib.crc32(data, self._crc)
        self._length += len(data)
        self._emit(self._deflate.compress(data))
        return len(data)

    def tell(self) -> int:
        return self._length

    def finish(self) -> None:
        self._emit(self._deflate.flush())
        self._emit(struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self.digest.update(chunk)
            self._handle.write(chunk)


Source = bytes | Path  # a member's bytes, or a file privca alone holds (the snapshot)


def write_archive(handle: BinaryIO, manifest: Manifest, files: dict[str, Source]) -> None:
    """Write the archive into `handle` (seekable, at its start): manifest.json first, then
    the members in order, gzip'd with the seal described at GZIP_HEADER (any gzip and tar
    still read it). Streams, so a store of any size needs little memory."""
    handle.write(bytes(SEAL_LENGTH))  # the header, written once the seal is known
    body = _SealedBody(handle)
    mtime = int(manifest.created_at.timestamp())
    manifest_bytes = json.dumps(manifest.document(), indent=2, sort_keys=True).encode()
    with tarfile.open(fileobj=body, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, source in [(MANIFEST, manifest_bytes), *files.items()]:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = PRIVATE_FILE if name == MANIFEST else member_mode(name)
            if isinstance(source, Path):
                info.size = source.stat().st_size
                with open(source, "rb") as content:
                    tar.addfile(info, content)
            else:
                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
    body.finish()
    handle.seek(0)
    handle.write(GZIP_HEADER + SEAL_PREFIX + body.digest.hexdigest().encode() + b"\0")
    handle.seek(0, os.SEEK_END)


def build_archive(manifest: Manifest, files: dict[str, Source]) -> bytes:
    """The archive as bytes (for small archives and tests; `write_archive` streams)."""
    buffer = io.BytesIO()
    write_archive(buffer, manifest, files)
    return buffer.getvalue()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open_archive(path: Path) -> IO[bytes]:
    """The archive file, positioned at its start, once its header and seal are intact."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by read_archive)
    except FileNotFoundError as exc:
        raise NotFound(f"backup '{path}' does not exist", "check the path") from exc
    except IsADirectoryError as exc:
        raise InputError(f"backup '{path}' is a directory", "name the archive file") from exc
    except OSError as exc:
        raise InputError(f"cannot read backup '{path}': {exc.strerror}") from exc
    try:
        _check_seal(handle, path)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    return handle


def _check_seal(handle: IO[bytes], path: Path) -> None:
    head = handle.read(SEAL_LENGTH)
    # Any single changed byte leaves one of these two marks: still recognised, so a damaged
    # archive is reported as damaged (exit 1), not as something else (exit 2).
    header_found = head[: len(GZIP_HEADER)] == GZIP_HEADER
    prefix_found = head[len(GZIP_HEADER) : len(GZIP_HEADER) + len(SEAL_PREFIX)] == SEAL_PREFIX
    if not header_found and not prefix_found:
        raise InputError(
            f"'{path}' is not a privca backup",
            "name a file written by `privca backup --out FILE`",
        )
    expected = head[len(GZIP_HEADER) + len(SEAL_PREFIX) : -1]
    digest = hashlib.sha256()
    while chunk := handle.read(COPY_CHUNK):
        digest.update(chunk)
    intact = (
        len(head) == SEAL_LENGTH
        and header_found
        and prefix_found
        and head[-1:] == b"\0"
        and expected == digest.hexdigest().encode()
    )
    if not intact:
        raise CheckFailed(
            f"the backup '{path}' is corrupt: its bytes do not match its SHA-256 seal",
            "the archive was damaged or changed; use another copy",
        )


def _write_member(source: IO[bytes], target: Path, mode: int, expected: Member) -> str:
    """Copy one member to `target` (created new, never through a link), returning its
    SHA-256; stops at the manifest's size so a lying header cannot fill the disk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    written = 0
    try:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > expected.size:
                break
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return digest.hexdigest() if written == expected.size else ""


def _next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CheckFailed(f"the backup is corrupt: {printable(str(exc), 200)}") from exc


def _check_entry(info: tarfile.TarInfo) -> None:
    if not is_member_name(info.name) and info.name != MANIFEST:
        raise InputError(
            f"the backup holds a member outside a CA home: {printable(info.name, 80)!r}",
            "this is not an archive `privca backup` wrote; do not restore it",
        )
    if not info.isreg():
        raise InputError(
            f"the backup member {printable(info.name, 80)!r} is not a regular file",
            "this is not an archive `privca backup` wrote; do not restore it",
        )


def _check_free_space(manifest: Manifest, into: Path) -> None:
    """Refuse before writing a byte when the members cannot fit (exit 3): a restore
    that filled the disk would leave it full for the CA beside it."""
    needed = sum(member.size for member in manifest.members.values())
    stat = os.statvfs(into)
    free = stat.f_bavail * stat.f_frsize
    if needed > free:
        raise EnvironmentRefused(
            f"the backup needs {needed} bytes in '{into.parent}', which has {free} free",
            "free some space there, or restore into another filesystem",
        )


def read_archive(path: Path, into: Path) -> Manifest:
    """Check `path` against its manifest while writing its members under `into` (an empty
    private directory the caller removes on failure). Raises InputError (exit 2) for what
    is not a privca backup or is hostile, CheckFailed (exit 1) for a corrupt one."""
    handle = _open_archive(path)
    try:
        with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            manifest = _read(stream, into)
            # To the end of the gzip stream: its CRC-32 and length are checked only there,
            # and tar stops reading at its end-of-archive marker.
            while stream.read(COPY_CHUNK):
                pass
            if handle.read(1):
                raise CheckFailed("the backup is corrupt: data after the end of its archive")
        return manifest
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CheckFailed(f"the backup is corrupt: {printable(str(exc), 200)}") from exc
    finally:
        handle.close()


def _read(stream: gzip.GzipFile, into: Path) -> Manifest:
    try:
        tar = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 (the with below)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CheckFailed(f"the backup is corrupt: {printable(str(exc), 200)}") from exc
    with tar:
        first = _next_member(tar)
        if first is None or first.name != MANIFEST or not first.isreg():
            raise InputError(
                "the archive does not begin with a privca manifest",
                "name a file written by `privca backup --out FILE`",
            )
        if first.size > MANIFEST_LIMIT:
            raise InputError("the archive's manifest is too large to be privca's")
        extracted = tar.extractfile(first)
        if extracted is None:
            raise CheckFailed("the backup's manifest cannot be read")
        manifest = Manifest.parse(extracted.read())
        _check_free_space(manifest, into)
        seen: set[str] = set()
        while (info := _next_member(tar)) is not None:
            _check_entry(info)
            expected = manifest.members.get(info.name)
            if expected is None or info.name in seen:
                raise CheckFailed(
                    f"the backup member {printable(info.name, 80)!r} is not in its manifest"
                )
            if info.size != expected.size:
                raise CheckFailed(f"the backup member {info.name!r} has the wrong size")
            seen.add(info.name)
            source = tar.extractfile(info)
            if source is None:
                raise CheckFailed(f"the backup member {info.name!r} cannot be read")
            digest = _write_member(source, into / info.name, member_mode(info.name), expected)
            if digest != expected.sha256:
                raise CheckFailed(
                    f"the backup member {info.name!r} does not match its SHA-256 in the manifest",
                    "the archive was damaged or changed; use another copy",
                )
        missing = sorted(set(manifest.members) - seen)
        if missing:
            raise CheckFailed(f"the backup lacks {missing[0]!r}, which its manifest lists")
    return manifest


__all__ = [
    "DATABASE",
    "FORMAT",
    "MANIFEST",
    "SETTINGS",
    "Manifest",
    "Member",
    "build_archive",
    "check_member_size",
    "is_member_name",
    "member_limit",
    "member_mode",
    "read_archive",
    "sha256_file",
    "sha256_hex",
    "write_archive",
]
