"""Secrets the inventory must keep but must not reveal: sealed under a key in private/.

EAB HMAC keys have to be kept (every newAccount binding is verified with one), and the
inventory is the file most likely to be copied: backups, a PostgreSQL dump, a replica's
disk. So they are stored sealed with AES-256-GCM under a 32-byte key in
private/eab.key (0400, in the 0700 private/ beside the CA keys, refused like them when
others could read it). The sealing binds each secret to its context (the key id), so a
sealed value copied onto another row does not open.

Sealed form: "aesgcm1." + base64url(12-byte nonce || ciphertext || 16-byte tag).
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privca.errors import AlreadyExists, KeyUnavailable
from privca.home import atomic_write, check_key_file, check_private_directory

KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX = "aesgcm1."


class SealingKey:
    """The key of one CA home, read when first needed; `seal` creates it if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._aead: AESGCM | None = None

    def create(self) -> None:
        """Write a new key 0400 unless one exists. Never replaces a key: two processes
        creating it at once both end up using the one that was linked first."""
        if not self.path.exists():
            with contextlib.suppress(AlreadyExists):
                atomic_write(self.path, os.urandom(KEY_BYTES), 0o400, overwrite=False)

    def _load(self, *, create: bool) -> AESGCM:
        if self._aead is not None:
            return self._aead
        if create:
            self.create()
        check_private_directory(self.path.parent)
        try:
            check_key_file(self.path)
        except KeyUnavailable as exc:
            raise KeyUnavailable(
                f"the EAB sealing key '{self.path}' does not exist",
                "restore private/eab.key from the backup of this CA home, or create new "
                "EAB keys (privca acme eab create)",
            ) from exc
        key = self.path.read_bytes()
        if len(key) != KEY_BYTES:
            raise KeyUnavailable(f"the EAB sealing key '{self.path}' is not {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        return self._aead

    def seal(self, secret: bytes, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._load(create=True).encrypt(nonce, secret, context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, sealed: str, context: str) -> bytes:
        if not sealed.startswith(PREFIX):
            raise KeyUnavailable("a sealed secret in the inventory has an unknown format")
        body = sealed.removeprefix(PREFIX)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._load(create=False).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise KeyUnavailable(
                f"a sealed secret for '{context}' does not open with '{self.path}'",
                "is private/eab.key the one of this CA home (replicas need the same file)?",
            ) from exc


__all__ = ["SealingKey"]
