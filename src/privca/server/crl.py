"""CRLs served from memory: rebuilt (and renumbered) only when a revocation happened or
half of the previous CRL's validity has passed, never per request.

The root key is never used for a request: a root that only signs CAs (two tiers) is
served from the CRL `privca crl --root` published for it (<home>/crl/<serial>.crl, or
root.crl when that is newer and signed by this root), read again when either file is
replaced and at least hourly; during a root rollover each root has its own. Every CRL the
server builds is also written to <home>/crl/<serial>.crl (and .pem), the same files
`privca crl` writes; while the store does not answer, the last CRL built is served, else
that file: a CRL is signed and dated, so an old one is still the truest answer there is.

Several replicas: each CRL a server signs is also kept in the store (crl_state.published_*,
with the revocation fingerprint it was built against) before it is served, and a replica
serves the store's CRL instead of its own whenever that one has a higher CRLNumber (the
watcher's snapshot carries the numbers). It builds a CRL of its own only when the store's
does not list every revocation (another fingerprint) or is past half its life; the store
keeps the higher number when two replicas publish at once. So a client that asks each
replica in turn never sees the CRLNumber go backwards, and once the store has a CRL every
replica serves that same one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.concurrency import run_in_threadpool

from privca.errors import KeyUnavailable, PrivcaError, StoreUnavailable
from privca.home import atomic_write_many
from privca.publication import crl_file_of, crl_files, root_crl_file
from privca.server.watch import Snapshot, StoreWatch
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.registry import CaCertificate

log = logging.getLogger("privca.server")

# How often a CRL read from a file is looked at again (a newer one may be dropped in).
REREAD_FILE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PublishedCrl:
    der: bytes
    pem: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    fresh_until: dt.datetime
    fingerprint: tuple[int, str] | None
    number: int = -1  # its CRLNumber (-1: none)

    def valid(self, authority_id: int, snapshot: Snapshot, now: dt.datetime) -> bool:
        """Still the CRL to serve: fresh, listing every revocation the snapshot knows of,
        and no other replica published a newer one in the store."""
        return (
            now < self.fresh_until
            and snapshot.fingerprints.get(authority_id) == self.fingerprint
            and snapshot.crl_numbers.get(authority_id, -1) <= self.number
        )


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return -1


def _published(
    crl: x509.CertificateRevocationList,
    now: dt.datetime,
    fingerprint: tuple[int, str] | None,
    reread: dt.datetime | None = None,
) -> PublishedCrl:
    this_update = crl.last_update_utc
    next_update = crl.next_update_utc or now
    half = this_update + (next_update - this_update) / 2
    return PublishedCrl(
        der=crl.public_bytes(Encoding.DER),
        pem=crl.public_bytes(Encoding.PEM),
        this_update=this_update,
        next_update=next_update,
        fresh_until=min(half, reread) if reread is not None else half,
        fingerprint=fingerprint,
        number=_crl_number(crl),
    )


class CrlPublisher:
    def __init__(self, ca: CertificateAuthority, watch: StoreWatch) -> None:
        self._ca = ca
        self._watch = watch
        self._directory: Path = ca.home.crl
        self._crls: dict[int, PublishedCrl] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # What the files of each published root CRL were when last read (see _files_of).
        self._read_from: dict[int, tuple[tuple[int, int, int] | None, ...]] = {}

    def _is_published_root(self, authority: CaCertificate) -> bool:
        """A root that signs only CAs: its CRL comes from `privca crl --root`."""
        return authority.role == "root" and not self._watch.authorities.publishes(authority.id)

    def _files_of(self, authority: CaCertificate) -> tuple[tuple[int, int, int] | None, ...]:
        """Inode, mtime and size of the files a root's published CRL is read from: a new
        one (`privca crl --root`, `privca issuer revoke` with the root key) is served at
        the next request, not at the hourly re-read."""
        found: list[tuple[int, int, int] | None] = []
        for path in (crl_file_of(self._ca.home, authority.serial), root_crl_file(self._ca.home)):
            try:
                stat = path.stat()
            except OSError:
                found.append(None)
            else:
                found.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def _current(
        self,
        cached: PublishedCrl | None,
        authority: CaCertificate,
        snapshot: Snapshot,
        now: dt.datetime,
    ) -> TypeGuard[PublishedCrl]:
        """`cached` is still the CRL to serve (and, for a published root, its files are
        the ones it was read from)."""
        if cached is None or not cached.valid(authority.id, snapshot, now):
            return False
        if not self._is_published_root(authority):
            return True
        return self._read_from.get(authority.id) == self._files_of(authority)

    def _build(
        self, authority: CaCertificate, snapshot: Snapshot, now: dt.datetime
    ) -> PublishedCrl:
        if self._is_published_root(authority):
            # Looked at before reading: a file replaced meanwhile is read again next time.
            self._read_from[authority.id] = self._files_of(authority)
            crl = self._ca.published_root_crl(authority, now)
            return _published(crl, now, snapshot.fingerprints.get(authority.id), now + REREAD_FILE)
        fingerprint = snapshot.fingerprints.get(authority.id)
        if self._ca.key_destroyed(authority):
            return self._signed_last(authority, now)
        adopted = self._from_store(authority, fingerprint, now)
        if adopted is not None:
            return adopted
        crl = self._ca.sign_crl(authority, now)
        # From the snapshot taken before the build: a revocation racing the build makes
        # the fingerprints differ next time and forces another build.
        published = _published(crl, now, fingerprint)
        # In the store before anyone sees it: another replica then never serves an older
        # number after this one. If a replica published a higher number meanwhile, serve
        # that one instead (it lists the same revocations when built on the same basis).
        stored = self._ca.publish_crl(authority, crl, fingerprint)
        if stored is not None and stored.number > published.number:
            crl = x509.load_der_x509_crl(stored.der)
            same_basis = stored.built_on(fingerprint)
            published = _published(crl, now, fingerprint if same_basis else None)
        self._write(authority, crl)
        return published

    def _from_store(
        self, authority: CaCertificate, fingerprint: tuple[int, str] | None, now: dt.datetime
    ) -> PublishedCrl | None:
        """The CRL another replica published, if it lists what this snapshot knows of
        (same revocation fingerprint) and is not past half its life; else None."""
        stored = self._ca.published_crl(authority)
        if stored is None or not stored.built_on(fingerprint):
            return None
        cached = self._crls.get(authority.id)
        if cached is not None and cached.number >= stored.number:
            return None  # ours is that one or newer: it is no longer fresh, so build
        crl = x509.load_der_x509_crl(stored.der)
        published = _published(crl, now, fingerprint)
        if now >= published.fresh_until:
            return None
        self._write(authority, crl)
        return published

    def _signed_last(self, authority: CaCertificate, now: dt.datetime) -> PublishedCrl:
        """The last CRL of a revoked CA whose key was destroyed, as published (nothing can
        sign another: the root's CRL lists the CA itself). Read again at each request.

        Raises:
            KeyUnavailable: it never published one.
        """
        path = crl_file_of(self._ca.home, authority.serial)
        try:
            crl = x509.load_der_x509_crl(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(
                f"CA {serial_hex(authority.serial)} was revoked and its key destroyed "
                "before it published a CRL"
            ) from exc
        return _published(crl, now, None, now)

    def _write(self, authority: CaCertificate, crl: x509.CertificateRevocationList) -> None:
        stem = self._directory / serial_hex(authority.serial)
        try:
            atomic_write_many(crl_files(stem, crl))
        except (OSError, PrivcaError) as exc:  # serving matters more than the copy on disk
            log.warning("could not write %s: %s", stem.with_suffix(".crl"), type(exc).__name__)

    def _from_file(self, authority: CaCertificate, now: dt.datetime) -> PublishedCrl:
        if self._is_published_root(authority):
            crl = self._ca.published_root_crl(authority, now)
            return _published(crl, now, None, now + REREAD_FILE)
        path = (self._directory / serial_hex(authority.serial)).with_suffix(".crl")
        try:
            crl = x509.load_der_x509_crl(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StoreUnavailable("the store does not answer and no CRL was published") from exc
        return _published(crl, now, None, now)

    def _last_known(self, authority: CaCertificate, now: dt.datetime) -> PublishedCrl:
        """Without the store: the CRL built last, else the one on disk."""
        cached = self._crls.get(authority.id)
        if cached is not None:
            return cached
        return self._from_file(authority, now)

    async def get(self, authority: CaCertificate, now: dt.datetime) -> PublishedCrl:
        if not self._watch.reachable:
            return await run_in_threadpool(self._last_known, authority, now)
        try:
            return await self._get(authority, now)
        except StoreUnavailable as exc:
            self._watch.failed(exc)
            return await run_in_threadpool(self._last_known, authority, now)

    async def _get(self, authority: CaCertificate, now: dt.datetime) -> PublishedCrl:
        snapshot = await self._watch.snapshot()
        cached = self._crls.get(authority.id)
        if self._current(cached, authority, snapshot, now):
            return cached
        lock = self._locks.setdefault(authority.id, asyncio.Lock())
        async with lock:  # concurrent requests after a revocation share one build
            snapshot = await self._watch.snapshot()
            cached = self._crls.get(authority.id)
            if self._current(cached, authority, snapshot, now):
                return cached
            # In the revocation threads, as the snapshot reads: not behind ACME work.
            published = await self._watch.run(self._build, authority, snapshot, now)
            self._crls[authority.id] = published
            return published

    async def refresh(self, now: dt.datetime) -> None:
        """Rebuild the CRLs already served whose CA had a revocation (the watcher calls
        this), so the next request and the file on disk already show it."""
        for authority in self._watch.authorities.all:
            if authority.id in self._crls and not self._is_published_root(authority):
                try:
                    await self._get(authority, now)
                except (KeyUnavailable, StoreUnavailable) as exc:
                    log.warning("CRL of %x not rebuilt: %s", authority.serial, type(exc).__name__)


__all__ = ["CrlPublisher", "PublishedCrl"]
