"""Following the store: what changed, whether it answers, and which CAs exist.

Caches in the server are keyed on store state only, so several replicas over one store
never need to agree with each other. The state that matters is each CA's revocation
fingerprint (`InventoryView.revocation_fingerprints`): it changes with every revocation, and its
keys are the CAs, so a new one (`privca rotate issuing`) shows there too.

Reading the fingerprints costs a query (milliseconds on SQLite). On SQLite,
`PRAGMA data_version` on one long-lived connection answers "did any other connection
commit since I last asked?" in microseconds without taking a lock, so the fingerprints
are re-read only after some commit. On other stores (PostgreSQL) there is no such
counter, so every request-time snapshot reads the fingerprints (in the threadpool):
strictly correct across replicas, at the price of one round trip.

`follow()` runs for the server's life: every `interval` it polls the store (on SQLite only
when the counter moved), so a rotation or revocation made by another process is picked up
within about a second without waiting for a request, and it tracks whether the store
answers at all. While it does not, requests do not try it: they answer from what is
already known (cached OCSP answers, published CRLs) until a poll succeeds again.

`recent()` is what an OCSP cache hit is checked against. On SQLite it is exact: a
revocation by any process shows in the next answer. When the data version moved (in a
renewal storm, after nearly every ACME commit) it reads the one-row revocation counter
that triggers keep (store/revocation.py) on the event loop, instead of every CA's
fingerprints in a revocation thread. Elsewhere it is the newest state read,
by a poll or a request, as long as it was confirmed within `RECENT_POLLS` intervals: no
store round trip per OCSP request (three queries each, on a store every replica shares),
at the price that a revocation made through another process shows in a cached answer
within about a poll interval (a second) rather than at once, as with the pre-signed
responses of an RFC 5019 responder. The polls, and every read that confirms a state, run
in the revocation threads, never in the shared threadpool where ACME work queues.

Where a listener asks for it (`on_issued`: the OCSP responder, on PostgreSQL), each poll
also reads the certificates signed since the previous one from the audit log, after the
state it confirms, so answers about them can be signed ahead and filed under that state.

A snapshot also carries the CRLNumber of each CA's CRL published in the store (see
crl.py), so a replica notices a newer CRL signed by another one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from privca.errors import PrivcaError, StoreUnavailable
from privca.registry import CaCertificate, Registry
from privca.store.records import CertificateRecord, Revocation

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

log = logging.getLogger("privca.server")
P = ParamSpec("P")
T = TypeVar("T")
REVOCATION_THREADS = 4
# How many poll intervals a state read may serve OCSP cache hits without a re-read; more
# than one, so one poll delayed by load does not send every request to the store.
RECENT_POLLS = 3
# Audit entries read per poll for `on_issued`: more than a renewal storm writes in a poll
# interval. A longer backlog (a bulk `privca sign`, a poll that failed for a while) is not
# signed ahead: the watcher skips to the log's end and those answers are signed when first
# asked, as on SQLite. Signing 5,000 inside one poll took ~1 s on an idle replica, and a
# poll that long let cached answers go unconfirmed (RECENT_POLLS) on every replica.
ISSUED_PER_POLL = 500


@dataclass(frozen=True)
class Snapshot:
    """The store as last seen. `generation` is None when the store offers no cheap change
    counter; then nothing may be assumed about certificates issued since."""

    generation: int | None
    fingerprints: dict[int, tuple[int, str]] = field(default_factory=dict)
    # CA id -> CRLNumber of the CRL published in the store (crl_state.published_number).
    crl_numbers: dict[int, int] = field(default_factory=dict)
    # SQLite's revocation counter when this was read (None: none to compare).
    revocation_tick: int | None = None
    # CA id -> its revocation, for the revoked CA certificates, read with `fingerprints`
    # (which change with it): OCSP answers for what a revoked CA signed say revoked.
    revoked_cas: dict[int, Revocation] = field(default_factory=dict)


@dataclass(frozen=True)
class Authorities:
    """The CA certificates as last read (old ones stay served), and the ones that
    publish CRLs and answer OCSP."""

    registry: Registry
    publishing_ids: frozenset[int]

    @property
    def all(self) -> tuple[CaCertificate, ...]:
        return self.registry.authorities

    def publishes(self, authority_id: int) -> bool:
        return authority_id in self.publishing_ids


Listener = Callable[[], Awaitable[None]]
# Told of certificates signed since the last poll, with the state read before them.
IssuedListener = Callable[[list[CertificateRecord], Snapshot], Awaitable[None]]


class StoreWatch:
    def __init__(self, ca: CertificateAuthority, interval: float = 1.0) -> None:
        self._ca = ca
        self.interval = interval
        # Revocation answers (OCSP, and the reads that confirm them) run in threads of
        # their own: in the shared threadpool they waited behind every queued ACME job.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=REVOCATION_THREADS, thread_name_prefix="privca-revocation"
        )
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._probe = ca.inventory.change_counter()
        self._clock = ca.revocation_clock() if self._probe is not None else None
        self.reachable = True
        # The state at start: whatever changes after it is noticed by the first poll.
        started = time.monotonic()
        self._polled = self._data_version()
        # The newest state read by anyone, and when (time.monotonic, the start of the
        # read) it was last known to be the store's: what `recent()` answers with.
        self._latest = self._read_snapshot(self._polled)
        self._confirmed_at = started
        self._last_fingerprints: dict[int, tuple[int, str]] | None = self._latest.fingerprints
        self.authorities = self._read_authorities()
        # Where the audit log ended when last read: certificates signed after it are new
        # (read when the first listener of `on_issued` comes).
        self._issued_seq = 0
        self._on_authorities: list[Listener] = []
        self._on_revocations: list[Listener] = []
        self._on_issued: list[IssuedListener] = []

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args)` in the revocation threads (see __init__)."""
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        if self._clock is not None:
            self._clock.close()
            self._clock = None

    def on_authorities_changed(self, listener: Listener) -> None:
        self._on_authorities.append(listener)

    def on_revocations_changed(self, listener: Listener) -> None:
        self._on_revocations.append(listener)

    @property
    def remote(self) -> bool:
        """Whether every read is a round trip to a database server (PostgreSQL): the
        store offers no cheap change counter, as SQLite's file does."""
        return self._probe is None

    def on_issued(self, listener: IssuedListener) -> None:
        """Call `listener` with the certificates signed since the last poll, by any
        process, and the state read before them."""
        if not self._on_issued:
            self._issued_seq = self._ca.inventory.issued_since(None, 0)[0]
        self._on_issued.append(listener)

    # reachability -------------------------------------------------------------------------

    def failed(self, exc: BaseException) -> None:
        """A request found the store unreachable: stop trying until a poll succeeds."""
        if self.reachable:
            log.warning("the store does not answer (%s); serving what is known", type(exc).__name__)
        self.reachable = False

    def _recovered(self) -> None:
        if not self.reachable:
            log.warning("the store answers again")
        self.reachable = True

    # snapshots ----------------------------------------------------------------------------

    def _data_version(self) -> int | None:
        # None is treated as "changed": the slow path asks the store itself.
        return self._probe.value() if self._probe is not None else None

    def _read_state(
        self,
    ) -> tuple[dict[int, tuple[int, str]], dict[int, int], dict[int, Revocation]]:
        """Each CA's revocation fingerprint, published CRLNumber and, if revoked, its own
        revocation (two small reads)."""
        fingerprints, revoked_cas = self._ca.inventory.revocation_state()
        return fingerprints, self._ca.published_crl_numbers(), revoked_cas

    def _read_snapshot(self, version: int | None) -> Snapshot:
        # The revocation counter before the fingerprints (like the data version): a
        # revocation committed in between shows as a newer counter next time.
        tick = self._clock.value() if self._clock is not None else None
        fingerprints, crl_numbers, revoked_cas = self._read_state()
        return Snapshot(version, fingerprints, crl_numbers, tick, revoked_cas)

    def _confirm(self, snapshot: Snapshot, started: float) -> Snapshot:
        """`snapshot` was read from the store (or found unchanged) by a read that began at
        `started` (time.monotonic): the newest state, unless a read that began later has
        been confirmed meanwhile (a slow poll must not put back a state older than what a
        request just read: a revocation would then vanish from OCSP for another poll)."""
        if started >= self._confirmed_at:
            self._latest = snapshot
            self._confirmed_at = started
        return snapshot

    def recent(self, *, exact: bool = False) -> Snapshot | None:
        """What an OCSP cache hit is checked against, without a store query. On SQLite,
        exact: `current()`, or else the newest state read if the revocation counter has
        not moved since (its generation dropped: something was committed, perhaps an
        issuance, so it vouches for no "unknown"). Elsewhere the newest state known if
        it was confirmed within RECENT_POLLS intervals. None when the store must be
        asked (`snapshot`). `exact`: on SQLite, only `current()` (what an answer about
        to be filed must be confirmed against, generation included)."""
        if self._probe is not None:
            current = self.current()
            if current is not None or exact:
                return current
            latest = self._latest
            if self._clock is None or latest.revocation_tick is None:
                return None
            if self._clock.value() != latest.revocation_tick:
                return None
            return replace(latest, generation=None)
        if time.monotonic() - self._confirmed_at > self.interval * RECENT_POLLS:
            return None
        return self._latest

    def current(self) -> Snapshot | None:
        """The snapshot if the store certainly has not changed since, without any I/O
        beyond the SQLite counter; None when it must be re-read (see `snapshot`)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.generation is None:
            return None
        return snapshot if self._data_version() == snapshot.generation else None

    async def snapshot(self) -> Snapshot:
        """The store's state now; raises StoreUnavailable (and remembers it) if it does
        not answer."""
        cached = self.current()
        if cached is not None:
            return cached
        if not self.reachable:
            raise StoreUnavailable("the store does not answer")
        try:
            started = time.monotonic()
            if self._probe is None:
                return self._confirm(await self.run(self._read_snapshot, None), started)
            async with self._lock:  # one re-read for all requests that noticed the change
                cached = self.current()
                if cached is not None:
                    return cached
                # Read the counter before the fingerprints: a commit in between makes the
                # next check see a new counter and read again, never miss a revocation.
                started = time.monotonic()
                version = self._data_version()
                self._snapshot = await self.run(self._read_snapshot, version)
                return self._confirm(self._snapshot, started)
        except StoreUnavailable as exc:
            self.failed(exc)
            raise

    # following ----------------------------------------------------------------------------

    def _read_authorities(self) -> Authorities:
        self._ca.refresh()
        publishing = frozenset(a.id for a in self._ca.publishing_authorities())
        return Authorities(self._ca.registry, publishing)

    async def follow(self) -> None:
        """Poll until cancelled (the server's lifespan runs this as a task)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll()
            except Exception:  # never let the watcher die: log and poll again
                log.exception("following the store failed")

    async def poll(self) -> None:
        started = time.monotonic()
        version = self._data_version()
        if version is not None and version == self._polled and self.reachable:
            self._confirm(self._latest, started)  # SQLite: nobody committed since the last poll
            return
        try:
            # In the revocation threads: in the shared threadpool a poll waited behind
            # every queued ACME job, and OCSP hits would fall back to the store meanwhile.
            snapshot = await self.run(self._read_snapshot, version)
        except PrivcaError as exc:
            self.failed(exc)
            return
        self._recovered()
        fingerprints = snapshot.fingerprints
        try:
            active = await self.run(self._ca.inventory.active_authorities)
        except PrivcaError as exc:
            self.failed(exc)
            return
        known_active = frozenset(a.id for a in self.authorities.all if a.active)
        # A new CA shows as a new id; a root rollover ended (retire-old) only as a flag.
        if set(fingerprints) != {a.id for a in self.authorities.all} or active != known_active:
            try:
                self.authorities = await self.run(self._read_authorities)
            except PrivcaError as exc:
                self.failed(exc)
                return
            for listener in self._on_authorities:
                await listener()
        self._polled = version
        if version is not None:
            self._snapshot = snapshot
        self._confirm(snapshot, started)
        previous, self._last_fingerprints = self._last_fingerprints, fingerprints
        if previous is not None and previous != fingerprints:
            for listener in self._on_revocations:
                await listener()
        await self._follow_issued(snapshot)

    async def _follow_issued(self, snapshot: Snapshot) -> None:
        """Tell the listeners of the certificates signed since the last poll, by any
        process; `snapshot` was read before them (what answers about them are filed
        under). Only where someone listens: the read is one query per poll."""
        if not self._on_issued:
            return
        try:
            after = self._issued_seq
            self._issued_seq, issued = await self.run(
                self._ca.inventory.issued_since, after, ISSUED_PER_POLL
            )
            if self._issued_seq - after >= ISSUED_PER_POLL:
                # A full page: more may wait behind it. None of it is signed ahead.
                self._issued_seq, issued = await self.run(self._ca.inventory.issued_since, None, 0)
        except PrivcaError as exc:
            self.failed(exc)
            return
        if issued:
            for listener in self._on_issued:
                await listener(issued, snapshot)


__all__ = ["Authorities", "Snapshot", "StoreWatch"]
