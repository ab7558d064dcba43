"""The Starlette application: routes decode HTTP, call the responder/publisher, encode.

    GET  /                               an index of these URLs: HTML, or JSON when the
                                         client asks for application/json
    GET  /crl/<ca>.crl | /crl/<ca>.pem   CRL, DER (application/pkix-crl) or PEM;
                                         <ca> = a CA's hex serial, or root / issuing /
                                         current (the active ones)
    POST /ocsp                           OCSP, body application/ocsp-request
    GET  /ocsp/<base64 of DER, URL-encoded>
    GET  /ca/<ca>.der | .crt | .pem      a CA certificate, DER (for AIA fetchers) or PEM;
                                         <ca> as for /crl; /ca/chain.pem: issuing + root;
                                         /ca/roots.pem: the roots to trust (two during a
                                         root rollover); /ca/cross.pem: its cross-cert
    GET  /audit/checkpoint               the latest signed checkpoint of the audit log
                                         (JSON); its certificate is /ca/audit.crt
    GET  /health                         200 JSON: status ok or degraded, and why in words
    GET  /metrics                        Prometheus text (privca.monitoring), unless it
                                         has a listener of its own (--metrics-listen)
    *    /acme/...                       RFC 8555 ACME (privca.acme), unless disabled

The publication listener (`serve --publish-listen`, ServerSettings.publication) has the
OCSP, CRL, CA certificate, audit checkpoint and health routes only.

Blocking work (SQLAlchemy, signing, key loading) runs in the threadpool; the OCSP cache
hit, CA certificates and the CA list stay on the event loop. OCSP failures are OCSP
responses (HTTP 200), never 500. Error bodies say what failed in plain words and never
carry store URLs, hosts, ports or exception text (those go to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import hashlib
import html
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from privca._actor import set_actor
from privca._http import BodyTooLarge, ClientGone, media_type, read_body
from privca._time import utcnow
from privca.errors import KeyUnavailable, NotFound, PrivcaError
from privca.keys.pkcs11 import TokenUnavailable
from privca.registry import CROSS_ROLES
from privca.server.credentials import unusable_token_keys
from privca.server.crl import CrlPublisher
from privca.server.responder import OcspResponder, Reply
from privca.server.settings import ServerSettings
from privca.server.watch import Snapshot, StoreWatch
from privca.urls import (
    ACME_DIRECTORY_PATH,
    ACME_PREFIX,
    AUDIT_CERTIFICATE_FILE,
    AUDIT_CHECKPOINT_PATH,
    CA_ROUTE,
    CHAIN_FILE,
    CHAIN_PATH,
    CRL_ROUTE,
    CROSS_FILE,
    HEALTH_PATH,
    ISSUING_CERTIFICATE_PATH,
    ISSUING_CRL_PATH,
    METRICS_PATH,
    OCSP_GET_ROUTE,
    OCSP_PATH,
    ROOT_CERTIFICATE_PATH,
    ROOT_CRL_PATH,
    ROOTS_FILE,
    ca_certificate_path,
    crl_path,
)
from privca.x509.encoding import pem_certificate, pem_certificates, serial_hex
from privca.x509.ocsp import MALFORMED_REQUEST, MAX_REQUEST_BYTES, decode_get_path

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.monitoring import MetricsCache
    from privca.registry import CaCertificate
    from privca.store.records import CertificateRecord

log = logging.getLogger("privca.server")

OCSP_REQUEST = "application/ocsp-request"
SCHEDULE_INTERVAL_SECONDS = 60
TIDY_INTERVAL_SECONDS = 3600
OCSP_RESPONSE = "application/ocsp-response"
PEM = "application/x-pem-file"
DER_CERTIFICATE = "application/pkix-cert"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


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


def _not_found() -> Response:
    return PlainTextResponse("not found\n", status_code=404)


async def _privca_error(_request: Request, exc: Exception) -> Response:
    """The last word on a PrivcaError: a status and a plain sentence, the detail in the log."""
    if isinstance(exc, NotFound):
        return _not_found()
    code = exc.exit_code if isinstance(exc, PrivcaError) else 70
    log.warning("request failed: %s: %s", type(exc).__name__, exc)
    if code == 3:
        return PlainTextResponse(
            "the CA cannot answer this now; try again later\n",
            status_code=503,
            headers={"Retry-After": "10"},
        )
    return PlainTextResponse("the request failed\n", status_code=500)


def _metrics_endpoint(
    ca: CertificateAuthority, settings: ServerSettings, watch: StoreWatch | None
) -> Callable[[Request], Awaitable[Response]]:
    # Made at the first scrape (a server nobody scrapes keeps no connection for it).
    cache: list[MetricsCache] = []
    making = threading.Lock()

    def page() -> str:
        with making:
            if not cache:
                from privca.monitoring import MetricsCache

                window, limit = settings.metrics_window, settings.metrics_certificates
                cache.append(MetricsCache(ca, window, limit))
        authorities = watch.authorities.all if watch is not None else None
        return cache[0].page(utcnow(), authorities)

    async def metrics(_request: Request) -> Response:
        text = await run_in_threadpool(page)
        return PlainTextResponse(text, media_type=PROMETHEUS)

    return metrics


def build_metrics_app(authority: CertificateAuthority, settings: ServerSettings) -> Starlette:
    """/metrics alone, for a listener of its own (`privca serve --metrics-listen`)."""
    routes = [Route(METRICS_PATH, _metrics_endpoint(authority, settings, None), methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={PrivcaError: _privca_error})


def build_app(authority: CertificateAuthority, settings: ServerSettings | None = None) -> Starlette:
    ca = authority
    settings = settings or ServerSettings()
    watch = StoreWatch(ca, settings.watch_interval)
    responder = OcspResponder(ca, settings, watch)
    crls = CrlPublisher(ca, watch)
    acme_app: Any = None
    if settings.acme is not None:
        from privca.server.acme import acme_app_for

        acme_app = acme_app_for(ca, settings.acme)

    async def authorities_changed() -> None:
        # Another process rotated or re-issued a CA: index it and get its OCSP signer.
        try:
            await run_in_threadpool(responder.prepare, utcnow())
        except PrivcaError as exc:
            log.warning("a new CA is not answered for yet: %s", exc)

    async def revocations_changed() -> None:
        await crls.refresh(utcnow())

    async def certificates_issued(issued: list[CertificateRecord], snapshot: Snapshot) -> None:
        # Their OCSP answers signed now, in the revocation threads: the first request
        # about each is then a cache hit, not a store read in the middle of a storm.
        try:
            await watch.run(responder.prime, issued, snapshot, utcnow())
        except PrivcaError as exc:
            log.warning("OCSP answers not signed ahead: %s", type(exc).__name__)

    watch.on_authorities_changed(authorities_changed)
    watch.on_revocations_changed(revocations_changed)
    if watch.remote and settings.ocsp_sign_ahead:
        # Only where a miss is a round trip to a database server: on SQLite it is a read
        # of a local file, and signing every issued certificate's answer ahead would cost
        # each ACME issuance a signature whether or not anyone ever asks.
        watch.on_issued(certificates_issued)

    async def apply_scheduled_revocations() -> None:
        # A renewal's grace period ends on its own: some process has to write the
        # revocation, and every replica doing it is harmless (same record each time).
        while True:
            await asyncio.sleep(SCHEDULE_INTERVAL_SECONDS)
            if not watch.reachable:
                continue
            try:
                await run_in_threadpool(ca.apply_scheduled_revocations, utcnow())
            except PrivcaError as exc:
                log.warning("scheduled revocations not applied: %s", type(exc).__name__)
            await tidy_when_due()

    keep_expired = ca.settings.keep_expired_for
    next_tidy = 0.0

    async def tidy_when_due() -> None:
        # At most once per TIDY_INTERVAL_SECONDS; every replica doing it is harmless
        # (tombstoning and deleting are idempotent, in short batches).
        nonlocal next_tidy
        if time.monotonic() < next_tidy:
            return
        next_tidy = time.monotonic() + TIDY_INTERVAL_SECONDS
        await tidy_acme_orders()
        await tidy_certificates()

    async def tidy_acme_orders() -> None:
        if acme_app is None:
            return
        try:
            removed = await run_in_threadpool(acme_app.state.acme_service.tidy, utcnow())
        except PrivcaError as exc:
            log.warning("expired ACME orders not tidied: %s", type(exc).__name__)
            return
        if removed:
            log.info("deleted %d ACME order(s) that expired without a certificate", removed)

    async def tidy_certificates() -> None:
        # [store] keep_expired
        if keep_expired is None:
            return
        try:
            tidied = await run_in_threadpool(ca.tidy, keep_expired, utcnow())
        except PrivcaError as exc:
            log.warning("expired certificates not tidied: %s", type(exc).__name__)
            return
        if tidied:
            log.info("tidied %d certificate(s) expired more than %s ago", tidied, keep_expired)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        set_actor("serve")  # the scheduler's changes, in the tasks started below
        await run_in_threadpool(responder.prepare, utcnow())
        tasks = [asyncio.create_task(watch.follow())]
        if not settings.publication:  # the main process(es) write; publication only reads
            await run_in_threadpool(ca.apply_scheduled_revocations, utcnow())
            tasks.append(asyncio.create_task(apply_scheduled_revocations()))
        if acme_app is not None:
            await run_in_threadpool(acme_app.state.acme_service.nonces.start)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if acme_app is not None:
                acme_app.state.acme_service.validations.close()
            watch.close()

    site = _Site(ca, settings, watch, responder, crls, acme=acme_app is not None)
    routes = site.routes()
    if settings.publication:
        # What relying parties fetch at the http:// URLs in certificates; not the index
        # (settings give it no ACME and no /metrics: the inventory is the operator's).
        routes = [r for r in routes if r.path != "/"]
    if settings.metrics_on_main:
        metrics = _metrics_endpoint(ca, settings, watch)
        routes.append(Route(METRICS_PATH, metrics, methods=["GET"]))
    if acme_app is not None:
        routes.append(Mount(ACME_PREFIX, app=acme_app))
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={PrivcaError: _privca_error}
    )
    app.state.ocsp = responder
    app.state.crls = crls
    app.state.watch = watch
    return app


class _Site:
    """The main listener's own endpoints (OCSP, CRLs, CA certificates, health, the index)
    over the parts build_app wires; each decodes HTTP, asks one part, encodes."""

    def __init__(
        self,
        ca: CertificateAuthority,
        settings: ServerSettings,
        watch: StoreWatch,
        responder: OcspResponder,
        crls: CrlPublisher,
        *,
        acme: bool,
    ) -> None:
        self._ca = ca
        self._settings = settings
        self._watch = watch
        self._responder = responder
        self._crls = crls
        self._acme = acme

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route(OCSP_PATH, self.ocsp_post, methods=["POST"]),
            Route(OCSP_PATH + "/", self.ocsp_post, methods=["POST"]),
            Route(OCSP_PATH, self.ocsp_get_empty, methods=["GET"]),
            Route(OCSP_GET_ROUTE, self.ocsp_get, methods=["GET"]),
            Route(CRL_ROUTE, self.crl, methods=["GET"]),
            Route(CA_ROUTE, self.ca_file, methods=["GET"]),
            Route(HEALTH_PATH, self.health, methods=["GET"]),
            Route(AUDIT_CHECKPOINT_PATH, self.audit_checkpoint, methods=["GET"]),
        ]

    # OCSP ---------------------------------------------------------------------------------

    async def ocsp_post(self, request: Request) -> Response:
        if media_type(request.headers) != OCSP_REQUEST:
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        try:
            body = await read_body(request, MAX_REQUEST_BYTES)
        except (BodyTooLarge, ClientGone):  # ClientGone: logged, the answer reaches no one
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        return _ocsp_response(await self._responder.answer(body, utcnow()), cacheable=False)

    async def ocsp_get(self, request: Request) -> Response:
        # The raw path: base64 '+' and '/' must reach decode_get_path as sent.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        encoded = raw.decode("latin-1").split("?", 1)[0].partition(OCSP_PATH + "/")[2]
        try:
            der = decode_get_path(encoded)
        except PrivcaError:
            return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)
        return _ocsp_response(await self._responder.answer(der, utcnow()), cacheable=True)

    @staticmethod
    async def ocsp_get_empty(_request: Request) -> Response:
        return _ocsp_response(Reply(MALFORMED_REQUEST), cacheable=False)

    # CRLs and CA certificates -------------------------------------------------------------

    def _find(self, stem: str) -> CaCertificate | None:
        return self._watch.authorities.registry.select(stem) if stem else None

    async def crl(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        stem, _, suffix = name.rpartition(".")
        if stem.lower() == "root":  # the old root's while a rollover lasts (the CDP it was)
            record: CaCertificate | None = self._watch.authorities.registry.root_crl_alias
        else:
            record = self._find(stem)
        # A cross-certificate signs nothing of its own: its key's CRL is its root's.
        if suffix not in ("crl", "pem") or record is None or record.role in CROSS_ROLES:
            return _not_found()
        now = utcnow()
        try:
            published = await self._crls.get(record, now)
        except TokenUnavailable as exc:  # signed by the token, which is away for now
            log.warning("CRL of %x not served: %s", record.serial, exc)
            return PlainTextResponse(
                "the CA's key cannot sign this CRL now; try again later\n",
                status_code=503,
                headers={"Retry-After": "10"},
            )
        except KeyUnavailable as exc:  # the root CRL was never published, or has expired
            log.warning("CRL of %x not served: %s", record.serial, exc)
            if record.revoked_at is not None:  # revoked, its key destroyed: none will come
                return PlainTextResponse(
                    "this CA was revoked and publishes no CRL; the root's CRL lists it\n",
                    status_code=404,
                )
            return PlainTextResponse(
                "no current CRL is published for this CA; the operator must run "
                "`privca crl --root`\n",
                status_code=503,
            )
        max_age = max(0, int((published.fresh_until - now).total_seconds()))
        headers = {
            "Cache-Control": f"max-age={max_age}",
            "Last-Modified": email.utils.format_datetime(published.this_update, usegmt=True),
        }
        if suffix == "pem":
            return Response(published.pem, media_type=PEM, headers=headers)
        return Response(published.der, media_type="application/pkix-crl", headers=headers)

    async def ca_file(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        if name == CHAIN_FILE:
            chain = [self._find("issuing"), self._find("root")]
            found = dict.fromkeys(r for r in chain if r is not None)
            return Response(pem_certificates([r.certificate for r in found]), media_type=PEM)
        registry = self._watch.authorities.registry
        if name == ROOTS_FILE:  # every root to trust now: two during a root rollover
            roots = [r.certificate for r in registry.trusted_roots]
            return Response(pem_certificates(roots), media_type=PEM)
        if name == AUDIT_CERTIFICATE_FILE:  # checkpoints and exports verify against it
            try:
                return Response(self._ca.home.audit_certificate.read_bytes(), media_type=PEM)
            except FileNotFoundError:
                return _not_found()
        if name == CROSS_FILE:  # a rollover's cross-certificates; empty when there is none
            crosses = [c.certificate for c in registry.crosses]
            return Response(pem_certificates(crosses), media_type=PEM)
        stem, _, suffix = name.rpartition(".")
        record = self._find(stem)
        if record is None or suffix not in ("crt", "der", "pem"):
            return _not_found()
        if suffix == "der":
            return Response(record.der, media_type=DER_CERTIFICATE)
        return Response(pem_certificate(record.certificate), media_type=PEM)

    async def audit_checkpoint(self, _request: Request) -> Response:
        """The latest signed checkpoint of the audit log, from the store (every replica
        serves the same one), as `privca audit checkpoint` wrote it."""
        found = await run_in_threadpool(self._ca.inventory.latest_checkpoint)
        if found is None:
            return _not_found()
        return Response(found, media_type="application/json")

    # health and the index ---------------------------------------------------------------

    def problems(self, now: dt.datetime) -> list[str]:
        found: list[str] = []
        if not self._watch.reachable:
            found.append(
                "the certificate store does not answer: OCSP is answered from the cache "
                "(tryLater when there is none), CRLs from the last published files, and "
                "nothing can be issued or revoked"
            )
        authorities = self._watch.authorities
        signing = [a for a in authorities.all if authorities.publishes(a.id)]
        for authority in unusable_token_keys(self._ca, signing, now):
            found.append(
                f"the HSM token holding the key of CA {serial_hex(authority.serial)} cannot "
                "be used: OCSP answers tryLater (or a cached answer), CRLs it must sign are "
                "refused (503), and nothing can be issued or revoked until it is back"
            )
        issuing = self._find("issuing")
        if issuing is not None and issuing.not_after <= now:
            found.append("the issuing CA has expired: run `privca rotate issuing`")
        for root in authorities.registry.trusted_roots:
            if authorities.publishes(root.id):
                continue
            try:
                self._ca.published_root_crl(root, now)
            except KeyUnavailable:
                found.append(
                    f"no current CRL of the root {serial_hex(root.serial)} is published: "
                    "run `privca crl --root` where the root key is"
                )
        return found

    async def health(self, _request: Request) -> Response:
        # Always 200: a replica that cannot reach the store still serves cached OCSP
        # answers and CRLs, so a load balancer should keep it; monitors read `status`.
        found = await run_in_threadpool(self.problems, utcnow())
        return JSONResponse({"status": "degraded" if found else "ok", "problems": found})

    def index_document(self, request: Request) -> dict[str, Any]:
        base = f"{request.url.scheme}://{request.url.netloc}"
        authorities = self._watch.authorities
        return {
            "ca": self._ca.settings.name,
            "ocsp": base + OCSP_PATH,
            "crl": {
                "root": base + ROOT_CRL_PATH,
                "issuing": base + ISSUING_CRL_PATH,
                "by_ca": [
                    base + crl_path(a.serial)
                    for a in authorities.all
                    if authorities.publishes(a.id) or a.role == "root"
                ],
            },
            "certificates": {
                "root": base + ROOT_CERTIFICATE_PATH,
                "issuing": base + ISSUING_CERTIFICATE_PATH,
                "chain": base + CHAIN_PATH,
                "by_ca": [
                    {
                        "role": a.role,
                        "serial": serial_hex(a.serial),
                        "name": a.common_name,
                        "active": a.active,
                        "url": base + ca_certificate_path(a.serial),
                    }
                    for a in authorities.all
                ],
            },
            "acme": base + ACME_DIRECTORY_PATH if self._acme else None,
            "health": base + HEALTH_PATH,
            "metrics": base + METRICS_PATH if self._settings.metrics_on_main else None,
        }

    async def index(self, request: Request) -> Response:
        document = self.index_document(request)
        accept = request.headers.get("accept", "").lower()
        if "application/json" in accept and "text/html" not in accept:
            return JSONResponse(document)
        return HTMLResponse(_index_html(document))


def _index_html(document: dict[str, Any]) -> str:
    def link(url: str) -> str:
        shown = html.escape(url)
        return f'<a href="{shown}">{shown}</a>'

    items = [f"<li>OCSP: {html.escape(document['ocsp'])} (POST or GET)</li>"]
    items.append(f"<li>CRL of the issuing CA: {link(document['crl']['issuing'])}</li>")
    items.append(f"<li>CRL of the root: {link(document['crl']['root'])}</li>")
    items.extend(f"<li>CRL: {link(url)}</li>" for url in document["crl"]["by_ca"])
    certificates = document["certificates"]
    items.append(f"<li>Root certificate: {link(certificates['root'])}</li>")
    items.append(f"<li>Issuing CA certificate: {link(certificates['issuing'])}</li>")
    items.append(f"<li>Chain: {link(certificates['chain'])}</li>")
    for entry in certificates["by_ca"]:
        state = "active" if entry["active"] else "retired"
        items.append(
            f"<li>{html.escape(entry['role'])} CA {html.escape(entry['name'])} ({state}): "
            f"{link(entry['url'])}</li>"
        )
    if document["acme"]:
        items.append(f"<li>ACME directory: {link(document['acme'])}</li>")
    items.append(f"<li>Health: {link(document['health'])}</li>")
    if document["metrics"]:
        items.append(f"<li>Metrics: {link(document['metrics'])}</li>")
    title = html.escape(document["ca"])
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body><h1>{title}</h1>\n<ul>\n"
        + "\n".join(items)
        + "\n</ul>\n</body></html>\n"
    )
