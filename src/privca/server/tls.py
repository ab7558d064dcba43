"""The server's own TLS certificate, issued by the CA it serves and renewed in place.

uvicorn (like ssl) loads a certificate only from files, so the key is written 0600 into a
0700 directory of our own under the temp dir, and the directory is removed on exit. The
key is never written anywhere else and a new one is made at every start and renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from privca._time import utcnow
from privca.home import atomic_write

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

log = logging.getLogger("privca.server.tls")

SERVER_CERT_DAYS = 30
CHECK_EVERY = dt.timedelta(hours=1)


def certificate_names(host: str, server_names: Sequence[str]) -> list[str]:
    """The listen host (unless it is a wildcard address) plus the given names, unique."""
    names: list[str] = []
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            host = ""
    for name in (host, *server_names):
        if name and name not in names:
            names.append(name)
    return names


class ServerCertificate:
    def __init__(
        self, ca: CertificateAuthority, names: Sequence[str], days: int = SERVER_CERT_DAYS
    ) -> None:
        self._ca = ca
        self._names = list(names)
        self._days = days
        self.directory = Path(tempfile.mkdtemp(prefix="privca-serve-"))  # mode 0700
        self.certfile = self.directory / "server.crt"
        self.keyfile = self.directory / "server.key"
        self.renew_after = utcnow()

    def issue(self, now: dt.datetime | None = None) -> None:
        """A new key and certificate, written over the previous ones atomically."""
        issued = self._ca.issue(self._names, profile="privca-server", days=self._days, now=now)
        key_pem = issued.private_key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        self._write(self.keyfile, key_pem)
        self._write(self.certfile, issued.chain_pem())
        cert = issued.certificate
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        self.renew_after = cert.not_valid_after_utc - life / 3
        log.info("TLS certificate %x for %s", cert.serial_number, ", ".join(self._names))

    def _write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, 0o600)

    async def keep_fresh(self, context: ssl.SSLContext) -> None:
        """Renew before 1/3 of the life is left and load it into the live context: new
        handshakes get the new certificate, open connections keep theirs."""
        from starlette.concurrency import run_in_threadpool

        while True:
            await asyncio.sleep(CHECK_EVERY.total_seconds())
            if utcnow() < self.renew_after:
                continue
            try:
                await run_in_threadpool(self.issue)
                context.load_cert_chain(self.certfile, self.keyfile)
            except Exception:  # keep serving the current certificate; retry next hour
                log.exception("renewing the TLS certificate failed")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
