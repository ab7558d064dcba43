"""The Starlette application: routes decode HTTP, call the responder/publisher, encode.

    GET  /crl/<ca>.crl | /crl/<ca>.pem   CRL, DER (application/pkix-crl) or PEM;
                                         <ca> = a CA's hex serial, or root / issuing
    POST /ocsp                           OCSP, body application/ocsp-request
    GET  /ocsp/<base64 of DER, URL-encoded>
    GET  /ca/root.crt | issuing.crt      PEM; root.der | issuing.der: DER (for AIA fetchers)
    GET  /ca/chain.pem                   issuing + root
    GET  /health                         200 JSON when the store answers, else 503
    GET  /metrics                        Prometheus text (privca.monitoring)
    *    /acme/...                           RFC 8555 ACME (privca.acme), unless disabled

Blocking work (SQLAlchemy, signing, key loading) runs in the threadpool; only the OCSP
cache hit stays on the event loop. OCSP failures are OCSP responses (HTTP 200), never 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from privca._time import utcnow
from privca.errors import NotFound, PrivcaError
from privca.server.crl import CrlPublisher
from privca.server.responder import OcspResponder, Reply
from privca.server.settings import ServerSettings
from privca.server.watch import StoreWatch
from privca.x509.encoding import der_certificate, pem_certificate, pem_certificates
from privca.x509.ocsp import MALFORMED_REQUEST, MAX_REQUEST_BYTES, decode_get_path

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

log = logging.getLogger("privca.server")

OCSP_REQUEST = "application/ocsp-request"
SCHEDULE_INTERVAL_SECONDS = 60
OCSP_RESPONSE = "application/ocsp-response"
PEM = "application/x-pem-file"


def _ocsp_response(reply: Reply, cacheable: bool) -> Response:
    headers = {}
    if cacheable and reply.max_age is not None:
        # RFC 5019 6.2: GET responses may be cached by HTTP caches, but never past the
        # moment we would re-sign (half the validity), so revocations still spread.
        headers = {
            "Cache-Control": f"max-age={reply.max_age}, public, no-transform, must-revalidate",
            "ETag": '"' + hashlib.sha1(reply.der, usedforsecurity=False).hexdigest() + '"',
        }
    return Response(reply.der, media_type=OCSP_RESPONSE, headers=headers)


async def _limited_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(authority: CertificateAuthority, settings: ServerSettings | None = None) -> Starlette:
    ca = authority
    settings = settings or ServerSettings()
    watch = StoreWatch(ca)
    responder = OcspResponder(ca, settings, watch)
    crls = CrlPublisher(ca, watch)

    async def apply_scheduled_revocations() -> None:
        # A renewal's grace period ends on its own: some process has to write the
        # revocation, and every replica doing it is harmless (same record each time).
        while True:
            await asyncio.sleep(SCHEDULE_INTERVAL_SECONDS)
            try:
                await run_in_threadpool(ca.store.apply_due_revocations, utcnow())
            except PrivcaError as exc:
                log.warning("scheduled revocations not applied: %s", exc)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(responder.prepare, utcnow())
        await run_in_threadpool(ca.store.apply_due_revocations, utcnow())
        scheduler = asyncio.create_task(apply_scheduled_revocations())
        try:
            yield
        finally:
            scheduler.cancel()
            watch.close()

    async def ocsp_post(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != OCSP_REQUEST:
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        body = await _limited_body(request, MAX_REQUEST_BYTES)
        if body is None:
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        return _ocsp_response(await responder.answer(body, utcnow()), cacheable=False)

    async def ocsp_get(request: Request) -> Response:
        # The raw path: base64 '+' and '/' must reach decode_get_path as sent.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        encoded = raw.decode("latin-1").split("?", 1)[0].partition("/ocsp/")[2]
        try:
            der = decode_get_path(encoded)
        except PrivcaError:
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        return _ocsp_response(await responder.answer(der, utcnow()), cacheable=True)

    async def ocsp_get_empty(_request: Request) -> Response:
        return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)

    async def crl(request: Request) -> Response:
        name: str = request.path_params["name"]
        stem, _, suffix = name.rpartition(".")
        if suffix not in ("crl", "pem") or not stem:
            return PlainTextResponse("not found\n", status_code=404)
        try:
            record = ca.authority_by_serial(stem)
        except NotFound:
            return PlainTextResponse(f"no CA '{stem}'\n", status_code=404)
        now = utcnow()
        published = await crls.get(record, now)
        max_age = max(0, int((published.fresh_until - now).total_seconds()))
        headers = {
            "Cache-Control": f"max-age={max_age}",
            "Last-Modified": email.utils.format_datetime(published.this_update, usegmt=True),
        }
        if suffix == "pem":
            return Response(published.pem, media_type=PEM, headers=headers)
        return Response(published.der, media_type="application/pkix-crl", headers=headers)

    def _ca_file(name: str) -> Response | None:
        if name == "chain.pem":
            return Response(pem_certificates(ca.chain), media_type=PEM)
        stem, _, suffix = name.partition(".")
        if stem not in ("root", "issuing") or suffix not in ("crt", "der", "pem"):
            return None
        certificate = ca.root if stem == "root" else ca.issuing
        if suffix == "der":
            return Response(der_certificate(certificate), media_type="application/pkix-cert")
        return Response(pem_certificate(certificate), media_type=PEM)

    async def ca_file(request: Request) -> Response:
        response = _ca_file(request.path_params["name"])
        return response or PlainTextResponse("not found\n", status_code=404)

    async def health(_request: Request) -> Response:
        try:
            count = len(await run_in_threadpool(ca.store.authorities))
        except PrivcaError as exc:
            return JSONResponse({"status": "error", "store": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "store": "reachable", "authorities": count})

    async def metrics(_request: Request) -> Response:
        from privca.monitoring import render_prometheus  # lazily: only scrapers pay for it

        text = await run_in_threadpool(render_prometheus, ca, utcnow())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def store_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PrivcaError)
        status = 404 if isinstance(exc, NotFound) else 503 if exc.exit_code == 3 else 500
        log.warning("request failed: %s", exc)
        return PlainTextResponse(f"{exc.message}\n", status_code=status)

    routes = [
        Route("/ocsp", ocsp_post, methods=["POST"]),
        Route("/ocsp/", ocsp_post, methods=["POST"]),
        Route("/ocsp", ocsp_get_empty, methods=["GET"]),
        Route("/ocsp/{encoded:path}", ocsp_get, methods=["GET"]),
        Route("/crl/{name}", crl, methods=["GET"]),
        Route("/ca/{name}", ca_file, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if settings.acme is not None:
        from privca.acme.routes import acme_app_for

        routes.append(Mount("/acme", app=acme_app_for(ca, settings.acme)))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={PrivcaError: store_error})
    app.state.ocsp = responder
    app.state.crls = crls
    return app
