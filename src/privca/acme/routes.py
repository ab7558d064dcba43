"""Starlette routes for ACME: decode (jws.py) -> service.py -> encode (messages.py).

`build_acme_app(issuer, repository, settings)` returns an ASGI app that `privca serve`
mounts under /acme (server/acme.py builds it over a CertificateAuthority).
Every response carries `Link: <directory>;rel="index"`; every error is an RFC 7807
problem document from problems.py, never a bare 500 for bad input.

Nonces (RFC 8555 §6.5) prove themselves (nonces.py): making one is CPU only, spending one
is one insert. Only newNonce and responses to POSTs that carry a JWS get one (a badNonce
answer needs one to retry with). GETs of the directory, unknown paths and other
unauthenticated requests write nothing.

Challenge validations run in the service's own ValidationPool; the POST waits for the
result until the validation's deadline and then answers with the challenge as it is.
Every other blocking step goes through the app's Admission (admission.py): a bounded
number at once, work on orders under way before new orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from privca._http import BodyTooLarge, ClientGone, media_type, read_body
from privca.acme import jws, messages
from privca.acme.accounts import Authenticated, KeySource
from privca.acme.admission import CONTINUES, STARTS, Admission, set_priority
from privca.acme.challenges import ChallengeNetwork
from privca.acme.issuer import CertificateIssuer
from privca.acme.problems import PROBLEM_CONTENT_TYPE, AcmeProblem
from privca.acme.repository import (
    AccountRow,
    AcmeRepository,
    AuthorizationRow,
    ChallengeRow,
    OrderRow,
)
from privca.acme.resources import Urls
from privca.acme.service import AcmeService
from privca.acme.settings import AcmeSettings
from privca.errors import PrivcaError

log = logging.getLogger("privca.acme")
T = TypeVar("T")
JOSE = "application/jose+json"
PEM_CHAIN = "application/pem-certificate-chain"
# How long a challenge POST waits past the validation deadline for the result to be
# recorded before answering with the challenge as it stands ("processing").
RECORD_GRACE_SECONDS = 2.0
# An order list's ?page= (a million pages of orders is more than any account has).
MAX_PAGE_DIGITS = 6
PROFILE_DESCRIPTIONS = {
    "server": "TLS server certificate (serverAuth)",
    "client": "TLS client certificate (clientAuth)",
    "server-client": "TLS server and client certificate (serverAuth, clientAuth)",
}


class _Reply:
    def __init__(
        self,
        body: Any = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.body, self.status = body, status
        self.headers = headers or {}
        self.content_type = content_type


def _not_allowed(detail: str, allow: str) -> AcmeProblem:
    """405, with the methods the resource takes (RFC 9110 §15.5.6: Allow MUST be sent)."""
    return AcmeProblem("methodNotAllowed", detail, headers={"Allow": allow})


def _page(text: str | None) -> int:
    """The page of an order list a `?page=N` asks for (0: the first)."""
    if text is None:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > MAX_PAGE_DIGITS:
        raise AcmeProblem("malformed", "'page' must be a page number")
    return int(text)


def _json(obj: Any) -> bytes:
    if hasattr(obj, "to_json"):
        obj = obj.to_json()
    return json.dumps(obj, default=_default, indent=2).encode()


def _default(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(type(value).__name__)


class AcmeApp:
    def __init__(self, service: AcmeService) -> None:
        self.service = service
        self.settings = service.settings
        self.admission = Admission()

    # plumbing -----------------------------------------------------------------------------

    def urls(self, request: Request) -> Urls:
        if self.settings.base_url:
            return Urls(self.settings.base_url.rstrip("/"))
        root = request.scope.get("root_path", "")
        return Urls(f"{request.url.scheme}://{request.url.netloc}{root}")

    def request_url(self, request: Request, urls: Urls) -> str:
        """The URL as the client requested it, percent-encoding and query string as sent:
        a JWS's `url` must be exactly that (§6.4). The decoded path would let a JWS for
        /new-order be sent to /new%2Dorder or /new-order?x=1."""
        scope = request.scope
        raw: bytes | None = scope.get("raw_path")
        path = raw.decode("latin-1") if raw is not None else scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        query: bytes = scope.get("query_string", b"")
        return urls.base + path + ("?" + query.decode("latin-1") if query else "")

    async def respond(
        self, request: Request, handler: Callable[[Request, Urls], Awaitable[_Reply]]
    ) -> Response:
        urls = self.urls(request)
        starts = handler in (self.new_account, self.new_order)
        set_priority(STARTS if starts else CONTINUES)
        reply = await self._reply(request, handler, urls)
        headers = {
            "Cache-Control": "no-store",
            "Link": f'<{urls.directory()}>;rel="index"',
            **reply.headers,
        }
        if "Replay-Nonce" not in headers:
            nonce = await self._replay_nonce(request, handler)
            if nonce is not None:
                headers["Replay-Nonce"] = nonce
        if "Link" in reply.headers:
            headers["Link"] = f'<{urls.directory()}>;rel="index", ' + reply.headers["Link"]
        body = reply.body
        if body is None:
            content = b""
        elif isinstance(body, bytes):
            content = body
        else:
            content = _json(body)
        return Response(content, reply.status, headers, media_type=reply.content_type)

    async def _reply(
        self,
        request: Request,
        handler: Callable[[Request, Urls], Awaitable[_Reply]],
        urls: Urls,
    ) -> _Reply:
        try:
            return await handler(request, urls)
        except AcmeProblem as problem:
            return _Reply(problem.to_json(), problem.status, problem.headers, PROBLEM_CONTENT_TYPE)
        except ClientGone:  # logged by read_body; the answer reaches no one
            gone = AcmeProblem("malformed", "the request body was cut short")
            return _Reply(gone.to_json(), gone.status, {}, PROBLEM_CONTENT_TYPE)
        except PrivcaError as exc:
            # The store went away: say so, but never with its URL, host or error text.
            log.warning("ACME request failed: %s", type(exc).__name__)
            unavailable = AcmeProblem("serverInternal", "the CA is unavailable; try again later")
            status = 503 if exc.exit_code == 3 else 500
            headers = {"Retry-After": "10"}
            return _Reply(unavailable.to_json(), status, headers, PROBLEM_CONTENT_TYPE)
        except Exception:
            log.exception("ACME request failed")
            failed = AcmeProblem("serverInternal", "the server failed; please report this")
            return _Reply(failed.to_json(), 500, {}, PROBLEM_CONTENT_TYPE)

    async def _replay_nonce(
        self, request: Request, handler: Callable[[Request, Urls], Awaitable[_Reply]]
    ) -> str | None:
        """The nonce the answer carries: the one the request's nonce was exchanged for, or
        a new one for newNonce and for a JWS POST refused before its nonce was spent."""
        exchanged: str | None = getattr(request.state, "replay_nonce", None)
        if exchanged is not None:
            return exchanged
        if handler != self.new_nonce and not getattr(request.state, "jws", False):
            return None
        try:
            if self.service.nonces.ready:  # no store access: no thread hop
                return self.service.nonces.new()
            return await self.admission.run(self.service.nonces.new)
        except Exception as exc:
            log.warning("issuing a nonce failed: %s", type(exc).__name__)
            return None

    async def signed_call(
        self,
        request: Request,
        urls: Urls,
        call: Callable[..., T],
        *args: Any,
        key_from: KeySource = KeySource.KID,
    ) -> T:
        """`call(authenticated request, *args)`, run in the same threadpool job as the
        authentication: one thread hop per request instead of two."""
        if request.method != "POST":
            raise _not_allowed("use POST (or POST-as-GET) for this resource", "POST")
        if media_type(request.headers) != JOSE:
            raise AcmeProblem("unsupportedMediaType", f"the Content-Type must be {JOSE}")
        # A JWS POST: its answer carries a nonce, even a refusal of the JWS itself (a bad
        # alg, a body that is no JWS): the client retries with it (§6.5, docs/acme.md).
        request.state.jws = True
        try:
            body = await read_body(request, self.settings.max_body_bytes)
        except BodyTooLarge as exc:
            raise AcmeProblem("payloadTooLarge", str(exc)) from exc
        parsed = jws.parse_jws(body)
        url = self.request_url(request, urls)

        def authenticated() -> T:
            auth = self.service.accounts.authenticate(parsed, url, urls, key_from)
            # Before `call`: a problem it raises still carries the next nonce.
            request.state.replay_nonce = auth.replay_nonce
            return call(auth, *args)

        return await self.admission.run(authenticated)

    # encoders -----------------------------------------------------------------------------
    # Plain dicts, as certbot's message classes wrote them (messages.py): members that
    # are empty are left out, times are messages.rfc3339.

    def encode_order(
        self, order: OrderRow, authorizations: list[AuthorizationRow], urls: Urls
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if order.profile:
            body["profile"] = order.profile
        if order.identifiers:
            body["identifiers"] = [{"type": t, "value": v} for t, v in order.identifiers]
        body["status"] = order.status
        if authorizations:
            body["authorizations"] = [urls.authorization(a.id) for a in authorizations]
        if order.status == "valid":
            body["certificate"] = urls.certificate(order.id)
        body["finalize"] = urls.finalize(order.id)
        if order.expires is not None:
            body["expires"] = messages.rfc3339(order.expires)
        if order.error:
            body["error"] = messages.error_json(order.error)
        if order.not_before is not None:
            body["notBefore"] = messages.rfc3339(order.not_before)
        if order.not_after is not None:
            body["notAfter"] = messages.rfc3339(order.not_after)
        if order.replaces:
            body["replaces"] = order.replaces
        return body

    def encode_challenge(self, challenge: ChallengeRow, urls: Urls) -> dict[str, Any]:
        body: dict[str, Any] = {"url": urls.challenge(challenge.id), "status": challenge.status}
        if challenge.validated is not None:
            body["validated"] = messages.rfc3339(challenge.validated)
        if challenge.error:
            body["error"] = messages.error_json(challenge.error)
        body["token"] = challenge.token  # privca's tokens are unpadded base64url already
        body["type"] = challenge.type
        return body

    def encode_authorization(
        self, authz: AuthorizationRow, challenges: list[ChallengeRow], urls: Urls
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "identifier": {"type": authz.identifier_type, "value": authz.identifier_value}
        }
        if challenges:
            body["challenges"] = [self.encode_challenge(c, urls) for c in challenges]
        body["status"] = authz.status
        if authz.expires is not None:
            body["expires"] = messages.rfc3339(authz.expires)
        if authz.wildcard:
            body["wildcard"] = True
        return body

    def encode_account(self, account: AccountRow, urls: Urls) -> dict[str, Any]:
        # certbot's Registration puts an empty contact list last: its bytes, kept.
        body: dict[str, Any] = {"contact": list(account.contact)} if account.contact else {}
        body["status"] = account.status
        body["orders"] = urls.orders(account.id)
        if not account.contact:
            body["contact"] = []
        return body

    def order_reply(
        self,
        order: OrderRow,
        authorizations: list[AuthorizationRow],
        urls: Urls,
        status: int = 200,
    ) -> _Reply:
        body = self.encode_order(order, authorizations, urls)
        return _Reply(body, status, {"Location": urls.order(order.id)})

    def account_reply(self, account: AccountRow, urls: Urls, status: int = 200) -> _Reply:
        body = self.encode_account(account, urls)
        return _Reply(body, status, {"Location": urls.account(account.id)})

    def directory_of(self, request: Request) -> tuple[str | None, str | None]:
        """(profile, issuer) of the directory a path is under: /acme/<profile>/...,
        /acme/<issuer>/... (issuer names never equal profile names) or
        /acme/<issuer>/<profile>/...; None for what the path leaves out."""
        params = request.path_params
        profile, issuer = params.get("profile"), params.get("issuer")
        first = params.get("first")
        if first is not None:
            if first in self.settings.profiles:
                profile = first
            else:
                issuer = first
        if profile is not None and profile not in self.settings.profiles:
            raise AcmeProblem("notFound", "no such ACME profile")
        if issuer is not None and self.service.issuer.issuer_name(issuer) is None:
            raise AcmeProblem("notFound", "no such ACME issuer")
        return profile, issuer

    # endpoints ----------------------------------------------------------------------------

    async def directory(self, request: Request, urls: Urls) -> _Reply:
        if request.method not in ("GET", "HEAD"):
            raise _not_allowed("use GET for the directory", "GET, HEAD")

        def described() -> tuple[str | None, str | None, tuple[str, ...]]:
            profile, issuer = self.directory_of(request)
            return profile, issuer, self.service.issuer.issuer_profiles(issuer)

        profile, issuer, allowed = await self.admission.run(described)
        # Only what this directory's issuer issues: a client picking a profile from the
        # list must not be refused at newOrder.
        profiles = {
            name: PROFILE_DESCRIPTIONS.get(name, name)
            for name in self.settings.profiles
            if not allowed or name in allowed
        }
        meta: dict[str, Any] = {"externalAccountRequired": self.settings.eab == "required"}
        if profiles:
            meta["profiles"] = profiles
        return _Reply(
            {
                "newNonce": urls.new_nonce,
                "newAccount": urls.new_account,
                "newOrder": urls.new_order(profile, issuer),
                "revokeCert": urls.revoke_cert,
                "keyChange": urls.key_change,
                "renewalInfo": urls.renewal_info,
                "meta": meta,
            }
        )

    async def new_nonce(self, request: Request, urls: Urls) -> _Reply:
        if request.method == "HEAD":
            return _Reply(status=200)
        if request.method == "GET":
            return _Reply(status=204)
        raise _not_allowed("use HEAD or GET for newNonce", "GET, HEAD")

    async def new_account(self, request: Request, urls: Urls) -> _Reply:
        client = request.client.host if request.client else None
        account, created = await self.signed_call(
            request, urls, self.service.accounts.new_account, urls, client, key_from=KeySource.JWK
        )
        return self.account_reply(account, urls, 201 if created else 200)

    async def account(self, request: Request, urls: Urls) -> _Reply:
        account_id = request.path_params["id"]
        account = await self.signed_call(
            request, urls, self.service.accounts.update_account, account_id
        )
        return self.account_reply(account, urls)

    async def account_orders(self, request: Request, urls: Urls) -> _Reply:
        account_id = request.path_params["id"]
        page = _page(request.query_params.get("page"))
        orders, more = await self.signed_call(
            request, urls, self.service.orders.orders, account_id, page
        )
        headers = {}
        if more:
            headers["Link"] = f'<{urls.orders(account_id)}?page={page + 1}>;rel="next"'
        return _Reply({"orders": [urls.order(o.id) for o in orders]}, headers=headers)

    async def key_change(self, request: Request, urls: Urls) -> _Reply:
        account = await self.signed_call(request, urls, self.service.accounts.key_change, urls)
        return self.account_reply(account, urls)

    async def new_order(self, request: Request, urls: Urls) -> _Reply:
        def new_order(auth: Authenticated) -> tuple[OrderRow, list[AuthorizationRow]]:
            profile, issuer = self.directory_of(request)
            return self.service.orders.new_order(auth, profile, issuer)

        order, authzs = await self.signed_call(request, urls, new_order)
        return self.order_reply(order, authzs, urls, 201)

    async def order(self, request: Request, urls: Urls) -> _Reply:
        order, authzs = await self.signed_call(
            request, urls, self.service.orders.order, request.path_params["id"]
        )
        return self.order_reply(order, authzs, urls)

    async def finalize(self, request: Request, urls: Urls) -> _Reply:
        order, authzs = await self.signed_call(
            request, urls, self.service.certificates.finalize, request.path_params["id"]
        )
        return self.order_reply(order, authzs, urls)

    async def authorization(self, request: Request, urls: Urls) -> _Reply:
        authz, challenges = await self.signed_call(
            request, urls, self.service.authorizations.authorization, request.path_params["id"]
        )
        return _Reply(self.encode_authorization(authz, challenges, urls))

    async def challenge(self, request: Request, urls: Urls) -> _Reply:
        challenge_id = request.path_params["id"]
        auth, (challenge, authz, pending) = await self.signed_call(
            request,
            urls,
            lambda auth: (auth, self.service.authorizations.challenge(auth, challenge_id)),
        )
        if pending is not None:
            # Awaited on the event loop: no thread of the shared pool waits for a peer.
            done = asyncio.wrap_future(self.service.validations.submit(pending.run))
            with contextlib.suppress(TimeoutError):
                wait = max(0.0, pending.deadline.left()) + RECORD_GRACE_SECONDS
                await asyncio.wait_for(asyncio.shield(done), wait)
            challenge, authz = await self.admission.run(
                self.service.authorizations.challenge_state, auth, challenge_id
            )
        return _Reply(
            self.encode_challenge(challenge, urls),
            headers={"Link": f'<{urls.authorization(authz.id)}>;rel="up"'},
        )

    async def certificate(self, request: Request, urls: Urls) -> _Reply:
        pem = await self.signed_call(
            request, urls, self.service.certificates.certificate, request.path_params["id"]
        )
        return _Reply(pem, content_type=PEM_CHAIN)

    async def revoke_cert(self, request: Request, urls: Urls) -> _Reply:
        await self.signed_call(
            request, urls, self.service.certificates.revoke, key_from=KeySource.EITHER
        )
        return _Reply(status=200)

    async def renewal_info(self, request: Request, urls: Urls) -> _Reply:
        if request.method not in ("GET", "HEAD"):
            raise _not_allowed("use GET for renewalInfo", "GET, HEAD")
        info, retry = await self.admission.run(
            self.service.certificates.renewal_info, request.path_params["cert_id"]
        )
        return _Reply(info, headers={"Retry-After": str(retry)})

    async def not_found(self, request: Request, urls: Urls) -> _Reply:
        raise AcmeProblem("notFound", "no such ACME resource")

    def routes(self) -> list[Route]:
        table: list[tuple[str, Callable[[Request, Urls], Awaitable[_Reply]]]] = [
            ("/directory", self.directory),
            ("/new-nonce", self.new_nonce),
            ("/new-account", self.new_account),
            ("/new-order", self.new_order),
            ("/revoke-cert", self.revoke_cert),
            ("/key-change", self.key_change),
            ("/renewal-info/{cert_id}", self.renewal_info),
            ("/account/{id}", self.account),
            ("/account/{id}/orders", self.account_orders),
            ("/order/{id}", self.order),
            ("/order/{id}/finalize", self.finalize),
            ("/authz/{id}", self.authorization),
            ("/chall/{id}", self.challenge),
            ("/cert/{id}", self.certificate),
            ("/{first}/directory", self.directory),
            ("/{first}/new-order", self.new_order),
            ("/{issuer}/{profile}/directory", self.directory),
            ("/{issuer}/{profile}/new-order", self.new_order),
            ("/{rest:path}", self.not_found),
        ]
        return [
            Route(path, _AnyMethod(request_response(self._endpoint(handler))))
            for path, handler in table
        ]

    def _endpoint(
        self, handler: Callable[[Request, Urls], Awaitable[_Reply]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.respond(request, handler)

        return endpoint


class _AnyMethod:
    """An ASGI endpoint, which Starlette routes whatever the request's method: every
    method reaches the handler, which answers one it does not take with a problem document
    (405 with Allow). Given a list of methods instead, Starlette answered any other
    (TRACE, PROPFIND...) itself, in plain text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_acme_app(
    issuer: CertificateIssuer,
    repository: AcmeRepository,
    settings: AcmeSettings | None = None,
    network: ChallengeNetwork | None = None,
) -> Starlette:
    """The ACME ASGI app, to be mounted under /acme."""
    service = AcmeService(issuer, repository, settings, network)
    app = Starlette(routes=AcmeApp(service).routes())
    app.state.acme_service = service
    return app


__all__ = ["AcmeApp", "build_acme_app"]
