"""OCSP does not wait behind ACME: with every thread of the shared threadpool busy (where
ACME work runs), a revocation answer that needs the store (a cache miss) still comes at
once, from the responder's own threads."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio.to_thread
from cryptography.x509 import ocsp
from starlette.concurrency import run_in_threadpool

from privca._time import utcnow
from privca.server.responder import OcspResponder
from privca.server.settings import ServerSettings
from privca.server.watch import StoreWatch
from tests.server.conftest import ServedCA
from tests.server.test_app import load, ocsp_request


def test_ocsp_answers_while_the_shared_threadpool_is_full(served_ca: ServedCA) -> None:
    ca = served_ca.ca
    watch = StoreWatch(ca)
    responder = OcspResponder(ca, ServerSettings(), watch)
    responder.prepare(utcnow())
    release = threading.Event()

    async def main() -> tuple[ocsp.OCSPResponse, ocsp.OCSPResponse, float]:
        tokens = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
        blockers = [asyncio.create_task(run_in_threadpool(release.wait, 30)) for _ in range(tokens)]
        await asyncio.sleep(0.2)  # every thread of the shared pool is now taken
        started = time.monotonic()
        try:
            good = await asyncio.wait_for(
                responder.answer(ocsp_request(served_ca.good.certificate, ca.issuing), utcnow()), 10
            )
            revoked = await asyncio.wait_for(
                responder.answer(ocsp_request(served_ca.revoked.certificate, ca.issuing), utcnow()),
                10,
            )
            took = time.monotonic() - started
        finally:
            release.set()
            await asyncio.gather(*blockers)
        return load(good.der), load(revoked.der), took

    try:
        good, revoked, took = asyncio.run(main())
    finally:
        watch.close()
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert took < 5, took
