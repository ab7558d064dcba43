"""CRLs served from memory: rebuilt (and renumbered) only when a revocation happened or
half of the previous CRL's validity has passed, never per request."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import Encoding
from starlette.concurrency import run_in_threadpool

from privca.errors import KeyUnavailable
from privca.server.watch import Snapshot, StoreWatch

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.store import AuthorityRecord


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


class CrlPublisher:
    def __init__(self, ca: CertificateAuthority, watch: StoreWatch) -> None:
        self._ca = ca
        self._watch = watch
        self._crls: dict[int, PublishedCrl] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _build(
        self, authority: AuthorityRecord, snapshot: Snapshot, now: dt.datetime
    ) -> PublishedCrl:
        try:
            crl = self._ca.crl(authority, now)
            fresh = None
        except KeyUnavailable:
            if authority.role != "root":
                raise
            # An offline root: serve what `privca crl --root` published, and look at the
            # file again within the hour in case a newer one was dropped in.
            crl = self._ca.published_root_crl(now)
            fresh = now + dt.timedelta(hours=1)
        this_update = crl.last_update_utc
        next_update = crl.next_update_utc or now
        half = this_update + (next_update - this_update) / 2
        return PublishedCrl(
            der=crl.public_bytes(Encoding.DER),
            pem=crl.public_bytes(Encoding.PEM),
            this_update=this_update,
            next_update=next_update,
            fresh_until=min(half, fresh) if fresh is not None else half,
            # From the snapshot taken before the build: a revocation racing the build
            # makes the fingerprints differ next time and forces another build.
            fingerprint=snapshot.fingerprints.get(authority.id),
        )

    async def get(self, authority: AuthorityRecord, now: dt.datetime) -> PublishedCrl:
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
