"""Knowing cheaply whether the store changed, so caches can be trusted without a query.

Caches in the server are keyed on store state only, so several replicas over one store
never need to agree with each other. The state that matters is each CA's revocation
fingerprint (`Store.revocation_fingerprints`): it changes with every revocation.

Reading the fingerprints costs a query per CA (milliseconds on SQLite). On SQLite,
`PRAGMA data_version` on one long-lived connection answers "did any other connection
commit since I last asked?" in microseconds without taking a lock, so the fingerprints
are re-read only after some commit. On other stores (PostgreSQL) there is no such
counter, so every snapshot reads the fingerprints (in the threadpool): strictly correct
across replicas, at the price of one round trip.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority


@dataclass(frozen=True)
class Snapshot:
    """The store as last seen. `generation` is None when the store offers no cheap change
    counter; then nothing may be assumed about certificates issued since."""

    generation: int | None
    fingerprints: dict[int, tuple[int, str]] = field(default_factory=dict)


class StoreWatch:
    def __init__(self, ca: CertificateAuthority) -> None:
        self._ca = ca
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._probe = ca.store.change_counter()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def _data_version(self) -> int | None:
        # None is treated as "changed": the slow path asks the store itself.
        return self._probe.value() if self._probe is not None else None

    def _read_fingerprints(self) -> dict[int, tuple[int, str]]:
        return self._ca.store.revocation_fingerprints()

    def current(self) -> Snapshot | None:
        """The snapshot if the store certainly has not changed since, without any I/O
        beyond the SQLite counter; None when it must be re-read (see `snapshot`)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.generation is None:
            return None
        return snapshot if self._data_version() == snapshot.generation else None

    async def snapshot(self) -> Snapshot:
        cached = self.current()
        if cached is not None:
            return cached
        if self._probe is None:
            return Snapshot(None, await run_in_threadpool(self._read_fingerprints))
        async with self._lock:  # one re-read for all requests that noticed the change
            cached = self.current()
            if cached is not None:
                return cached
            # Read the counter before the fingerprints: a commit in between makes the
            # next check see a new counter and read again, never miss a revocation.
            version = self._data_version()
            fingerprints = await run_in_threadpool(self._read_fingerprints)
            self._snapshot = Snapshot(version, fingerprints)
            return self._snapshot
