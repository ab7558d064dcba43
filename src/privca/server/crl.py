"""CRLs served from memory: rebuilt (and renumbered) only when a revocation happened or
half of the previous CRL's validity has passed, never per request.

The root key is never used for a request: a root that only signs CAs (two tiers) is
served from the CRL `privca crl --root` published for it (<home>/crl/<serial>.crl, or
root.crl when that is newer and signed by this root), re-read at least hourly; during a
root rollover each root has its own. Every CRL the server builds is also written to
<home>/crl/<serial>.crl (and .pem), the same files `privca crl` writes; while the store
does not answer, the last CRL built is served, else that file: a CRL is signed and dated,
so an old one is still the truest answer there is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.concurrency import run_in_threadpool

from privca.errors import KeyUnavailable, PrivcaError, StoreUnavailable
from privca.home import atomic_write_many
from privca.publication import crl_files
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

    def valid(self, authority_id: int, snapshot: Snapshot, now: dt.datetime) -> bool:
        return now < self.fresh_until and snapshot.fingerprints.get(authority_id) == (
            self.fingerprint
        )


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
    )


class CrlPublisher:
    def __init__(self, ca: CertificateAuthority, watch: StoreWatch) -> None:
        self._ca = ca
        self._watch = watch
        self._directory: Path = ca.home.crl
        self._crls: dict[int, PublishedCrl] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _is_published_root(self, authority: CaCertificate) -> bool:
        """A root that signs only CAs: its CRL comes from `privca crl --root`."""
        return authority.role == "root" and not self._watch.authorities.publishes(authority.id)

    def _build(
        self, authority: CaCertificate, snapshot: Snapshot, now: dt.datetime
    ) -> PublishedCrl:
        if self._is_published_root(authority):
            crl = self._ca.published_root_crl(authority, now)
            return _published(crl, now, snapshot.fingerprints.get(authority.id), now + REREAD_FILE)
        crl = self._ca.sign_crl(authority, now)
        # From the snapshot taken before the build: a revocation racing the build makes
        # the fingerprints differ next time and forces another build.
        published = _published(crl, now, snapshot.fingerprints.get(authority.id))
        self._write(authority, crl)
        return published

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
        if cached is not None and cached.valid(authority.id, snapshot, now):
            return cached
        lock = self._locks.setdefault(authority.id, asyncio.Lock())
        async with lock:  # concurrent requests after a revocation share one build
            snapshot = await self._watch.snapshot()
            cached = self._crls.get(authority.id)
            if cached is not None and cached.valid(authority.id, snapshot, now):
                return cached
            published = await run_in_threadpool(self._build, authority, snapshot, now)
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
