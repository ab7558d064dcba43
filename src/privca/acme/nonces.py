"""Replay nonces (RFC 8555 §6.5) that prove themselves: accepted once, on any replica.

A nonce is `expiry || random || HMAC(key, expiry || random)`, base64url. Handing one out
writes nothing; spending one checks the HMAC and the expiry in memory (a forged, mangled
or expired nonce never reaches the store) and then records it spent in the repository,
where a second spend of the same value, from any replica, fails. The key is the
repository's, shared by every replica through the store.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
import struct
import threading

from privca._time import utcnow
from privca.acme.repository import AccountRow, NonceRepository

NONCE_LIFETIME = dt.timedelta(minutes=30)
PURGE_EVERY = 500
MAX_NONCE_LENGTH = 64  # longer ones were never handed out
_RANDOM_BYTES = 16
_TAG_BYTES = 16
_EXPIRY = struct.Struct(">Q")  # seconds since the epoch
_NONCE_BYTES = _EXPIRY.size + _RANDOM_BYTES + _TAG_BYTES  # 40 bytes, 54 characters
_DOMAIN = b"privca acme nonce\x00"  # the key signs nothing else, but say what this is


class NonceSource:
    def __init__(
        self,
        repository: NonceRepository,
        lifetime: dt.timedelta = NONCE_LIFETIME,
        *,
        renew_key: bool = True,
    ) -> None:
        self.repository = repository
        self.renew_key = renew_key
        self.lifetime = lifetime
        self._key: bytes | None = None
        self._lock = threading.Lock()
        self._spent = 0

    @property
    def ready(self) -> bool:
        """Whether `new` runs without touching the store (the key is loaded)."""
        return self._key is not None

    def start(self) -> None:
        """When a server starts: see NonceRepository.nonce_key."""
        with self._lock:
            self._key = self.repository.nonce_key(utcnow(), starting=self.renew_key)

    def new(self) -> str:
        """A nonce for an answer: CPU only once the key is loaded."""
        expires = int((utcnow() + self.lifetime).timestamp())
        body = _EXPIRY.pack(expires) + secrets.token_bytes(_RANDOM_BYTES)
        raw = body + self._tag(self._loaded_key(), body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def exchange(self, spent: str | None) -> tuple[bool, str]:
        """Spend the request's nonce and hand out the next: (accepted, next nonce).
        Accepted is True once for a nonce this CA handed out and that has not expired."""
        accepted, replay_nonce, _account = self.exchange_reading(spent, None)
        return accepted, replay_nonce

    def exchange_reading(
        self, spent: str | None, account_id: str | None
    ) -> tuple[bool, str, AccountRow | None]:
        """exchange, and when the nonce is accepted the account `account_id` read in
        the same store transaction (None if there is no such account or no id)."""
        now = utcnow()
        key = self._loaded_key()
        expires = self._check(spent, key, now) if spent else None
        if spent is None or expires is None:
            return False, self.new(), None
        self._spent += 1
        if self._spent % PURGE_EVERY == 0:
            self.repository.purge_nonces(now)
        account = None
        if account_id is None:
            accepted = self.repository.spend_nonce(spent, expires, key)
        else:
            accepted, account = self.repository.spend_nonce_reading_account(
                spent, expires, key, account_id
            )
        if not accepted:
            # Spent before, or another server renewed the key (SQLite, at its start): read
            # it again, so that the next nonce is one the store accepts.
            with self._lock:
                self._key = self.repository.nonce_key(now)
        return accepted, self.new(), account

    def _check(self, nonce: str, key: bytes, now: dt.datetime) -> dt.datetime | None:
        """The expiry of a nonce this CA made and that is still live, else None."""
        if len(nonce) > MAX_NONCE_LENGTH or not nonce.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_BYTES:
            return None
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(key, body)):
            return None
        # The tag covers the canonical encoding only: another spelling of the same bytes
        # (base64 padding bits) would be a second, unspent value for the spent table.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != nonce:
            return None
        (seconds,) = _EXPIRY.unpack(body[: _EXPIRY.size])
        expires = dt.datetime.fromtimestamp(seconds, dt.UTC)
        return expires if expires > now else None

    def _loaded_key(self) -> bytes:
        key = self._key
        if key is None:
            with self._lock:
                if self._key is None:
                    self._key = self.repository.nonce_key(utcnow())
                key = self._key
        return key

    @staticmethod
    def _tag(key: bytes, body: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()[:_TAG_BYTES]


__all__ = ["NONCE_LIFETIME", "NonceSource"]
