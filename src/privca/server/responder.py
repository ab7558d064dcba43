"""The OCSP responder: request bytes in, response bytes out, signing as rarely as possible.

Fast path (no threadpool, no store query): the request's CertID has a cached answer that
is still fresh and its CA's revocation fingerprint is the one the watcher knows
(StoreWatch.recent: on SQLite, nothing committed since it was read; on PostgreSQL, the
state confirmed by the last polls, so a revocation made by another process shows within
about a second, as with the pre-signed responses of an RFC 5019 responder). Else
the serial is looked up and, only if its status changed or the cached response got old, a
response is signed, in the revocation threads (StoreWatch.run: not the shared threadpool,
where ACME work queues).

Signed ahead (PostgreSQL): the watcher tells `prime` of every certificate signed since its
last poll, by any process, and its answer is signed and cached then, so a first request
about a new certificate is a hit too instead of a store read while the replica is busiest
(a renewal storm). On SQLite a miss reads a local file, and nothing is signed ahead.

Nonces (RFC 6960 4.4.1): RFC 5019 4 lets a responder ignore them, and a response that
echoes one cannot be cached. So cached responses carry no nonce and a request's nonce is
echoed only when this request had to be answered freshly anyway (the cache missed); then
a second, nonce-free response is signed for the cache. A nonce can thus never force a
signature per request.

Store outage: while the store does not answer (see watch.py), a request is answered with
the cached response if that is still within its own validity (nextUpdate), else with
`tryLater` (RFC 6960 2.3): always a well-formed OCSP response, never an HTTP error. CAs
rotated in by another process are picked up by the watcher, which calls `prepare` again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from privca._text import printable
from privca.errors import InputError, PrivcaError, StoreUnavailable
from privca.server.credentials import ServeCredentials
from privca.server.settings import ServerSettings
from privca.server.watch import Snapshot, StoreWatch
from privca.x509.ocsp import (
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    TRY_LATER,
    UNAUTHORIZED,
    CertId,
    CertStatus,
    OcspQuery,
    Responder,
    build_response,
    issuer_keys,
    load_request,
)

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.registry import CaCertificate
    from privca.store.records import CertificateRecord

log = logging.getLogger("privca.server.ocsp")
# The CertID hash of answers signed ahead (`prime`): RFC 5019 clients send SHA-1 CertIDs.
PRIMED_HASH = "sha1"


@dataclass(frozen=True)
class Reply:
    """Response bytes and, for cacheable answers, how long HTTP caches may keep them."""

    der: bytes
    max_age: int | None = None


@dataclass(frozen=True)
class _Signer:
    responder: Responder
    renew_after: dt.datetime  # 1/3 of the responder certificate's life left
    not_after: dt.datetime
    # A delegated responder certificate's serial, and the revocation state of its CA it
    # was last found unrevoked in: a revocation under the CA re-reads its status once.
    serial: int | None = None
    confirmed: tuple[int, str] | None = None


@dataclass(frozen=True)
class _Answer:
    """A signed nonce-free response and the store state it was confirmed against."""

    authority_id: int
    status: CertStatus
    der: bytes
    fresh_until: dt.datetime
    next_update: dt.datetime
    fingerprint: tuple[int, str] | None
    generation: int | None
    signed_by: int = 0  # the serial of the certificate whose key signed `der`

    def valid(self, snapshot: Snapshot, now: dt.datetime) -> bool:
        if now >= self.fresh_until:
            return False
        if self.status.status == "unknown":
            # Only a store-wide counter proves nothing was issued since.
            return snapshot.generation is not None and snapshot.generation == self.generation
        return snapshot.fingerprints.get(self.authority_id) == self.fingerprint


def _status_of(
    record: CertificateRecord | None, snapshot: Snapshot, now: dt.datetime
) -> CertStatus:
    """unknown: never signed (or only an intent); revoked (a scheduled revocation that
    is due included, unwritten or not), or signed by a CA revoked since
    (CertificateRecord.revocation_under, the CA's revocation as read with the
    fingerprint the answer is filed under); else good, which includes superseded and
    expired certificates: OCSP reports revocation, not validity."""
    if record is None:
        return CertStatus("unknown")
    revocation = record.revocation_under(snapshot.revoked_cas.get(record.issuer_id), now)
    if revocation is not None:
        return CertStatus("revoked", revocation.revoked_at, revocation.reason)
    return CertStatus("good")


class OcspResponder:
    def __init__(
        self, ca: CertificateAuthority, settings: ServerSettings, watch: StoreWatch
    ) -> None:
        self._ca = ca
        self._settings = settings
        self._watch = watch
        self._issuers: dict[tuple[str, bytes, bytes], CaCertificate] = {}
        self._signers: dict[int, _Signer] = {}
        # Revoked CAs whose key was destroyed and no kept responder certificate is valid:
        # nobody can sign for them, so they are answered `unauthorized` (RFC 6960 2.3).
        self._unsigned: frozenset[int] = frozenset()
        self._told: set[tuple[int, int | None]] = set()  # (CA, responder serial) logged
        self._answers: dict[CertId, _Answer] = {}
        self._signer_lock = threading.Lock()
        # Responder certificates are kept in the home and reused across restarts.
        self._credentials = ServeCredentials(ca)
        self.signatures = 0  # responses signed: the cache's effect is visible in tests

    # setup --------------------------------------------------------------------------------

    def prepare(self, now: dt.datetime) -> None:
        """Index the CAs we answer for and get their signers now, so a wrong passphrase
        or an unusable key stops the server at start, not at the first request."""
        issuers: dict[tuple[str, bytes, bytes], CaCertificate] = {}
        for authority in self._ca.publishing_authorities():
            for key in issuer_keys(authority.certificate):
                issuers[key] = authority
        self._issuers = issuers
        self._unsigned = frozenset()
        for authority in {a.id: a for a in issuers.values()}.values():
            if authority.not_after > now:
                self._signer(authority, now)

    def _without_key(self, authority: CaCertificate, now: dt.datetime) -> _Signer | None:
        """The signer of a revoked CA whose key was destroyed: the responder certificate it
        certified before its revocation, to that certificate's end (a key of its own, so
        the answers it signs, "revoked", are as true as the CA's; no successor can be
        made); else none, and its certificates are answered `unauthorized`: the responder
        is no longer authoritative for it, while the root's CRL lists it."""
        credential = self._credentials.kept_responder(authority, now)
        told = (authority.id, None if credential is None else credential.serial)
        if told not in self._told:  # once, not at each `prepare`
            self._told.add(told)
            log.warning(
                "CA %s (%x) was revoked and its key destroyed: %s",
                printable(authority.label, 64),
                authority.serial,
                "OCSP requests about its certificates are answered unauthorized (the root's "
                "CRL lists it)"
                if credential is None
                else f"its OCSP answers are signed by the responder certificate "
                f"{credential.serial:x} made before, until {credential.not_after:%Y-%m-%d} "
                "(then answered unauthorized)",
            )
        if credential is None:
            self._unsigned |= {authority.id}
            return None
        cert = credential.certificate
        # Never due for renewal: nothing can certify a successor.
        return _Signer(
            Responder(cert, credential.private_key, True),
            renew_after=cert.not_valid_after_utc,
            not_after=cert.not_valid_after_utc,
            serial=cert.serial_number,
        )

    def _signer(
        self, authority: CaCertificate, now: dt.datetime, snapshot: Snapshot | None = None
    ) -> _Signer | None:
        """The signer of `authority`'s answers (None: nobody can sign them, `_without_key`);
        with `snapshot`, a delegated responder certificate revoked since it was last
        confirmed (its key leaked: revoked for keyCompromise) is replaced, as a restart
        would. It carries ocsp-nocheck, so no client can find out by itself."""
        current = self._signers.get(authority.id)
        if current is not None and self._usable(current, authority, now, snapshot):
            return current
        with self._signer_lock:
            current = self._signers.get(authority.id)
            if current is not None and self._usable(current, authority, now, snapshot):
                return current
            if authority.id in self._unsigned:
                return None
            if self._ca.key_destroyed(authority):
                signer = self._without_key(authority, now)
                if signer is not None:
                    self._signers[authority.id] = signer
                return signer
            if self._settings.ocsp_signer == "ca" or _revoked(authority, snapshot):
                # A revoked CA signs no new certificate, not even a responder certificate
                # for its answers (clients accept only the CA or a responder it certified,
                # RFC 6960 4.2.2.2, so its own key goes on signing them: "revoked"). A
                # responder certificate made before the revocation serves until renewal.
                issuer = self._ca.signer(authority)
                cert, key, delegated = authority.certificate, issuer.private_key, False
            else:
                credential = self._credentials.responder(
                    authority, days=self._settings.responder_days, now=now
                )
                cert, key, delegated = credential.certificate, credential.private_key, True
            life = cert.not_valid_after_utc - cert.not_valid_before_utc
            signer = _Signer(
                Responder(cert, key, delegated),
                renew_after=cert.not_valid_after_utc - life / 3,
                not_after=cert.not_valid_after_utc,
                serial=cert.serial_number if delegated else None,
                confirmed=None if snapshot is None else snapshot.fingerprints.get(authority.id),
            )
            self._signers[authority.id] = signer
            return signer

    def _usable(
        self,
        signer: _Signer,
        authority: CaCertificate,
        now: dt.datetime,
        snapshot: Snapshot | None,
    ) -> bool:
        """Whether `signer` may keep signing: not due for renewal, and its responder
        certificate not revoked (one store read per change of the CA's revocation state,
        none otherwise)."""
        if now >= signer.renew_after:
            return False
        if signer.serial is None or snapshot is None:
            return True
        state = snapshot.fingerprints.get(authority.id)
        if state == signer.confirmed:
            return True
        record = self._ca.certificate_by_serial(signer.serial)
        if record is not None and record.revocation_at(now) is not None:
            log.warning("OCSP responder certificate %x was revoked: replacing it", signer.serial)
            self._signers.pop(authority.id, None)
            return False
        self._signers[authority.id] = replace(signer, confirmed=state)
        return True

    # answering ----------------------------------------------------------------------------

    async def answer(self, der: bytes, now: dt.datetime) -> Reply:
        try:
            query = load_request(der)
        except InputError:
            return Reply(MALFORMED_REQUEST)
        authority = self._issuers.get(query.cert_id.issuer_key)
        if authority is None or authority.id in self._unsigned:
            # RFC 6960 2.3: a responder that is not authoritative for the issuer.
            return Reply(UNAUTHORIZED)
        entry = self._answers.get(query.cert_id)
        if not self._watch.reachable:
            return self._without_store(entry, now)
        try:
            if entry is not None:
                # The hit: no store query, no thread hop (see StoreWatch.recent).
                snapshot = self._watch.recent() or await self._watch.snapshot()
                if entry.valid(snapshot, now):
                    return Reply(entry.der, _seconds(entry.fresh_until - now))
            # A miss reads the serial's status. On PostgreSQL the state it is filed under
            # may be the watcher's (read before that status, so a revocation committed in
            # between only makes the answer look older than it is: re-checked after the
            # next poll, never taken for newer); that saves three queries per miss.
            snapshot = self._watch.recent(exact=True) or await self._watch.snapshot()
            return await self._watch.run(self._refresh, authority, query, snapshot, now)
        except PrivcaError as exc:
            if exc.exit_code != 3:  # only "the environment refuses" is worth retrying
                raise
            if isinstance(exc, StoreUnavailable):
                self._watch.failed(exc)
            else:
                log.warning("OCSP answer unavailable: %s", type(exc).__name__)
            return self._without_store(entry, now)
        except Exception:
            log.exception("OCSP answer for serial %x failed", query.cert_id.serial)
            return Reply(INTERNAL_ERROR)

    @staticmethod
    def _without_store(entry: _Answer | None, now: dt.datetime) -> Reply:
        """The cached answer while it is still valid (it was true when signed and cannot
        be checked now), else tryLater; never cached by HTTP caches."""
        if entry is not None and now < entry.next_update:
            return Reply(entry.der)
        return Reply(TRY_LATER)

    def prime(
        self, records: Sequence[CertificateRecord], snapshot: Snapshot, now: dt.datetime
    ) -> int:
        """Sign the answers (SHA-1 CertID, RFC 5019) for certificates just signed, by any
        process, before anyone asks: on PostgreSQL a first request would otherwise read the
        store and sign while the replica is busiest, in a renewal storm. `snapshot` must
        have been read before `records` (as for a miss). Answers already cached stay.
        How many were signed."""
        keys = {
            authority.id: CertId(*key, 0)
            for key, authority in self._issuers.items()
            if key[0] == PRIMED_HASH
        }
        authorities = {authority.id: authority for authority in self._issuers.values()}
        primed = 0
        for record in records:
            authority = authorities.get(record.issuer_id)
            template = keys.get(record.issuer_id)
            if authority is None or template is None or authority.not_after <= now:
                continue
            cert_id = replace(template, serial=record.serial)
            cached = self._answers.get(cert_id)
            if cached is not None and cached.valid(snapshot, now):
                continue
            status = _status_of(record, snapshot, now)
            if self._file(authority, cert_id, status, snapshot, now) is not None:
                primed += 1
        return primed

    def _refresh(
        self, authority: CaCertificate, query: OcspQuery, snapshot: Snapshot, now: dt.datetime
    ) -> Reply:
        if authority.not_after <= now:
            return Reply(UNAUTHORIZED)  # an expired CA's word is worth nothing
        cert_id = query.cert_id
        record = self._ca.certificate_status(authority, cert_id.serial)
        status = _status_of(record, snapshot, now)
        filed = self._file(authority, cert_id, status, snapshot, now)
        if filed is None:
            return Reply(UNAUTHORIZED)  # a revoked CA whose key was destroyed
        der, fresh_until, signer, next_update = filed
        if query.nonce is not None:
            return Reply(self._sign(cert_id, status, signer, now, next_update, query.nonce))
        return Reply(der, _seconds(fresh_until - now))

    def _file(
        self,
        authority: CaCertificate,
        cert_id: CertId,
        status: CertStatus,
        snapshot: Snapshot,
        now: dt.datetime,
    ) -> tuple[bytes, dt.datetime, _Signer, dt.datetime] | None:
        """Cache the answer `status` for `cert_id`, confirmed against `snapshot`, signing
        only if the cached one says otherwise or got old: (der, fresh until, the signer,
        the nextUpdate a response signed now gets); None when nobody can sign for
        `authority` (`_without_key`)."""
        signer = self._signer(authority, now, snapshot)
        if signer is None:
            return None
        next_update = min(now + self._settings.ocsp_validity, signer.not_after)
        fresh_until = min(now + (next_update - now) / 2, signer.renew_after)
        previous = self._answers.get(cert_id)
        signed_until = next_update
        signed_by = signer.responder.certificate.serial_number
        if (
            previous is not None
            and previous.status == status
            and now < previous.fresh_until
            and previous.signed_by == signed_by  # not a responder replaced since
        ):
            # Same (issuer, serial, status): the signed bytes stay; only re-confirmed.
            der, fresh_until = previous.der, previous.fresh_until
            signed_until = previous.next_update
        else:
            der = self._sign(cert_id, status, signer, now, next_update, None)
        self._remember(
            cert_id,
            _Answer(
                authority_id=authority.id,
                status=status,
                der=der,
                fresh_until=fresh_until,
                next_update=signed_until,
                fingerprint=snapshot.fingerprints.get(authority.id),
                generation=snapshot.generation,
                signed_by=signed_by,
            ),
        )
        return der, fresh_until, signer, next_update

    def _sign(
        self,
        cert_id: CertId,
        status: CertStatus,
        signer: _Signer,
        this_update: dt.datetime,
        next_update: dt.datetime,
        nonce: bytes | None,
    ) -> bytes:
        self.signatures += 1
        return build_response(cert_id, status, signer.responder, this_update, next_update, nonce)

    def _remember(self, cert_id: CertId, answer: _Answer) -> None:
        answers = self._answers
        if cert_id not in answers and len(answers) >= self._settings.ocsp_cache_entries:
            # Forget the oldest quarter: a flood of made-up serials cannot grow memory.
            for key in list(answers)[: max(1, len(answers) // 4)]:
                answers.pop(key, None)
        answers[cert_id] = answer


def _revoked(authority: CaCertificate, snapshot: Snapshot | None) -> bool:
    """Whether `authority` was revoked: as last read (a revocation by another process shows
    in `snapshot` before the watcher re-reads the CAs)."""
    if authority.revoked_at is not None:
        return True
    return snapshot is not None and authority.id in snapshot.revoked_cas


def _seconds(delta: dt.timedelta) -> int:
    return max(0, int(delta.total_seconds()))
