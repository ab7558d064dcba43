"""The server's own TLS certificate: for the names given with --server-name, issued by the
CA it serves, reused across restarts and renewed in place.

The certificate is for the names clients connect to, never silently for the listen
address: a CA constrained to `corp.internal` cannot certify 127.0.0.1, and a wildcard
address names no host at all. Key and chain live in one 0600 file under
`<home>/private/serve/` (see credentials.py), which ssl loads from disk. The handshake
itself is done by the listener's protocol (limits.TlsGate), within the read timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from privca._time import utcnow
from privca.errors import InputError
from privca.server.credentials import ServeCredentials

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

log = logging.getLogger("privca.server.tls")

SERVER_CERT_DAYS = 30
CHECK_EVERY = dt.timedelta(hours=1)


def certificate_names(ca: CertificateAuthority, server_names: Sequence[str]) -> tuple[str, ...]:
    """The --server-name values, parsed, de-duplicated and checked against the policy
    before anything listens or is issued."""
    from privca.x509.names import parse_names

    if not server_names:
        raise InputError(
            "the server's TLS certificate needs the name clients connect to",
            "add --server-name NAME (repeatable), e.g. --server-name ca.corp.internal; "
            "or serve plain HTTP with --no-tls",
        )
    parsed = parse_names(server_names)
    ca.policy.check_names(parsed)
    return tuple(str(name) for name in parsed)


class ServerCertificate:
    """The TLS certificate of one `privca serve`: `obtain()` at start, `keep_fresh()` after."""

    def __init__(
        self,
        ca: CertificateAuthority,
        names: Sequence[str],
        days: int = SERVER_CERT_DAYS,
        credentials: ServeCredentials | None = None,
    ) -> None:
        self._credentials = credentials or ServeCredentials(ca)
        self._names = tuple(names)
        self._days = days
        self.renew_after = utcnow()
        self.serial: int | None = None

    @property
    def certfile(self) -> Path:
        """Key and chain in one file: ssl.load_cert_chain(certfile) reads both."""
        return self._credentials.server_path()

    def context(self) -> ssl.SSLContext:
        """A server context holding the current certificate (what uvicorn would build for
        ssl_certfile); keep_fresh reloads it in place."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile)
        return context

    def obtain(self, now: dt.datetime | None = None) -> None:
        """Reuse the kept certificate while it fits and has life left, else issue one."""
        credential = self._credentials.server(self._names, days=self._days, now=now or utcnow())
        self.renew_after = credential.renew_after
        if credential.serial != self.serial:
            log.info("TLS certificate %x for %s", credential.serial, ", ".join(self._names))
        self.serial = credential.serial

    async def keep_fresh(self, context: ssl.SSLContext) -> None:
        """Renew when a third of the life is left and load it into the live context: new
        handshakes get the new certificate, open connections keep theirs."""
        from starlette.concurrency import run_in_threadpool

        while True:
            await asyncio.sleep(CHECK_EVERY.total_seconds())
            if utcnow() < self.renew_after:
                continue
            try:
                await run_in_threadpool(self.obtain)
                context.load_cert_chain(self.certfile)
            except Exception:  # keep serving the current certificate; retry next hour
                log.exception("renewing the TLS certificate failed")
