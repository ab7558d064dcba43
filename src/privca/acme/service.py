"""The ACME state machine (RFC 8555 §7): accounts, orders, authorizations, challenges,
finalization, download, revocation and renewal information (RFC 9773).

The service knows nothing of HTTP: routes.py hands it verified-structure requests plus the
URLs of this deployment, and encodes what it returns. Errors are AcmeProblem.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import josepy as jose
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from privca._time import utcnow
from privca.acme import jws, messages
from privca.acme.challenges import (
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    ChallengeNetwork,
    Deadline,
    NetworkIO,
    ValidationPool,
    Validator,
)
from privca.acme.issuer import CertificateIssuer, IssuanceRefused, name_of
from privca.acme.nonces import NonceSource
from privca.acme.problems import AcmeProblem
from privca.errors import InputError
from privca.store.acme import (
    AccountRow,
    AcmeStore,
    AuthorizationRow,
    ChallengeRow,
    EabBindingRefused,
    OrderRow,
)
from privca.x509.encoding import serial_hex

log = logging.getLogger("privca.acme")
ACME_DEFAULT_DAYS = 90
ORDER_LIFETIME = dt.timedelta(days=7)
MAX_IDENTIFIERS = 100
# RFC 5280 reason codes a subscriber may give (RFC 8555 §7.6), with privca's names.
REVOCATION_REASONS = {
    0: "unspecified",
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
}
ARI_RETRY_AFTER = 6 * 3600


@dataclass(frozen=True)
class AcmeSettings:
    """The ACME server's knobs (the [acme] section of the server settings)."""

    http_01_port: int = 80
    tls_alpn_01_port: int = 443
    dns_resolver: str = ""  # HOST:PORT; empty = the system resolver
    eab: str = "optional"  # optional | required
    default_profile: str = "server"
    # profile -> validity in days; only these profiles are offered over ACME.
    profiles: Mapping[str, int] = field(
        default_factory=lambda: {"server": ACME_DEFAULT_DAYS, "server-client": ACME_DEFAULT_DAYS}
    )
    orders_per_window: int = 300
    rate_window: dt.timedelta = dt.timedelta(hours=1)
    max_body_bytes: int = 64 * 1024
    # One total deadline per validation (DNS, connect, TLS, every read and redirect).
    validation_timeout: float = DEFAULT_TIMEOUT
    # Threads of the validators' own pool; more validations wait their turn.
    validation_workers: int = DEFAULT_WORKERS
    # Let the validator connect to loopback addresses: for a single-host lab only.
    allow_loopback: bool = False
    base_url: str = ""  # the public URL of the ACME root, e.g. https://ca.corp/acme

    def __post_init__(self) -> None:
        if self.eab not in ("optional", "required"):
            raise ValueError("eab must be 'optional' or 'required'")
        if self.default_profile not in self.profiles:
            raise ValueError("default_profile must be one of the ACME profiles")
        if not 0 < self.validation_timeout <= 300:
            raise ValueError("validation_timeout must be more than 0 and at most 300 seconds")
        if not 0 < self.validation_workers <= 1000:
            raise ValueError("validation_workers must be 1 to 1000")


@dataclass(frozen=True)
class Urls:
    """The URLs of one deployment (derived from the request, or settings.base_url)."""

    base: str  # ends without a slash, e.g. https://ca.corp/acme

    def directory(self, profile: str | None = None) -> str:
        return f"{self.base}/{profile}/directory" if profile else f"{self.base}/directory"

    def new_order(self, profile: str | None = None) -> str:
        return f"{self.base}/{profile}/new-order" if profile else f"{self.base}/new-order"

    @property
    def new_nonce(self) -> str:
        return f"{self.base}/new-nonce"

    @property
    def new_account(self) -> str:
        return f"{self.base}/new-account"

    @property
    def revoke_cert(self) -> str:
        return f"{self.base}/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.base}/key-change"

    @property
    def renewal_info(self) -> str:
        return f"{self.base}/renewal-info"

    def account(self, account_id: str) -> str:
        return f"{self.base}/account/{account_id}"

    def orders(self, account_id: str) -> str:
        return f"{self.base}/account/{account_id}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.base}/order/{order_id}"

    def finalize(self, order_id: str) -> str:
        return f"{self.base}/order/{order_id}/finalize"

    def certificate(self, order_id: str) -> str:
        return f"{self.base}/cert/{order_id}"

    def authorization(self, authz_id: str) -> str:
        return f"{self.base}/authz/{authz_id}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.base}/chall/{challenge_id}"


def new_id() -> str:
    """Unguessable resource ids: 128 bits from the CSPRNG."""
    return secrets.token_urlsafe(16)


def ari_cert_id(certificate: x509.Certificate) -> str:
    """RFC 9773: base64url(AKI keyIdentifier) "." base64url(serial DER content octets)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = certificate.serial_number
    serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64(aki.key_identifier or b'')}.{_b64(serial_bytes)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Authenticated:
    """A request whose url, nonce and signature were checked."""

    request: jws.SignedRequest
    key: jose.JWK
    account: AccountRow | None


def _load(cls: Any, payload: dict[str, Any], what: str) -> Any:
    return messages.decode(cls, payload, what)


class AcmeService:
    def __init__(
        self,
        issuer: CertificateIssuer,
        store: AcmeStore,
        settings: AcmeSettings | None = None,
        network: ChallengeNetwork | None = None,
    ) -> None:
        self.issuer = issuer
        self.store = store
        self.settings = settings or AcmeSettings()
        self.nonces = NonceSource(store)
        network = network or NetworkIO(self.settings.dns_resolver)
        self.validator = Validator(
            network,
            http_port=self.settings.http_01_port,
            tls_alpn_port=self.settings.tls_alpn_01_port,
            name_allowed=self._name_allowed,
            address_allowed=issuer.address_allowed,
            allow_loopback=self.settings.allow_loopback,
            timeout=self.settings.validation_timeout,
        )
        self.validations = ValidationPool(self.settings.validation_workers)

    # authentication (RFC 8555 §6.2, §6.3, §6.5) -----------------------------------------

    def authenticate(
        self, request: jws.SignedRequest, request_url: str, urls: Urls, key_from: str
    ) -> Authenticated:
        """key_from: 'jwk' (newAccount), 'kid' (most), 'either' (revokeCert)."""
        if request.url != request_url:
            raise AcmeProblem("unauthorized", "the JWS 'url' is not the URL of this request")
        if not self.nonces.use(request.nonce):
            raise AcmeProblem("badNonce", "the nonce is missing, unknown, expired or used")
        if key_from == "jwk" and request.jwk is None:
            raise AcmeProblem("malformed", "this request must carry a 'jwk', not a 'kid'")
        if key_from == "kid" and request.kid is None:
            raise AcmeProblem("malformed", "this request must carry a 'kid', not a 'jwk'")
        if request.jwk is None and request.kid is None:
            raise AcmeProblem("malformed", "the protected header has neither 'jwk' nor 'kid'")
        account = None
        if request.kid is not None:
            account = self._account_of_kid(request.kid, urls)
            key = jws.load_jwk(account.jwk)
        else:
            assert request.jwk is not None
            key = request.jwk
        jws.verify(request, key)
        return Authenticated(request, key, account)

    def _account_of_kid(self, kid: str, urls: Urls) -> AccountRow:
        prefix = urls.account("")
        account = self.store.account(kid[len(prefix) :]) if kid.startswith(prefix) else None
        if account is None:
            raise AcmeProblem("accountDoesNotExist", "no account has this 'kid'")
        if account.status != "valid":
            raise AcmeProblem("unauthorized", f"the account is {account.status}")
        return account

    # accounts (§7.3) --------------------------------------------------------------------

    def new_account(self, auth: Authenticated, urls: Urls) -> tuple[AccountRow, bool]:
        """The account for the key; True if it was created now (201), False if it existed."""
        payload = auth.request.json_payload()
        body = _load(messages.NewAccount, payload, "newAccount")
        thumbprint = jws.thumbprint(auth.key)
        existing = self.store.account_by_thumbprint(thumbprint)
        if existing is not None:
            if existing.status != "valid":
                raise AcmeProblem("unauthorized", f"the account is {existing.status}")
            return existing, False
        if body.only_return_existing:
            raise AcmeProblem("accountDoesNotExist", "no account exists for this key")
        contact = self._check_contact(body.contact)
        eab_kid = None
        binding = payload.get("externalAccountBinding")
        if binding is not None:
            eab_kid = jws.verify_binding(binding, auth.key, urls.new_account, self._hmac_key)
        elif self.settings.eab == "required":
            raise AcmeProblem(
                "externalAccountRequired", "this CA requires an external account binding"
            )
        account = AccountRow(
            id=new_id(),
            thumbprint=thumbprint,
            jwk=jws.jwk_json(auth.key),
            status="valid",
            contact=contact,
            eab_kid=eab_kid,
            created_at=utcnow(),
        )
        try:
            stored = self.store.add_account(account)
        except EabBindingRefused as exc:
            key = self.store.eab_key(exc.args[0])
            limit = key.max_accounts if key is not None else 0
            raise AcmeProblem(
                "unauthorized",
                f"the external account key has already created its {limit} account(s)",
            ) from exc
        return stored, stored.id == account.id

    def _hmac_key(self, kid: str) -> bytes:
        """The HMAC key of a live EAB key (how many accounts it may still create is checked
        when the account is stored, atomically)."""
        key = self.store.eab_key(kid)
        if key is None or key.revoked_at is not None:
            raise AcmeProblem("unauthorized", "the external account key id is unknown or revoked")
        secret = self.store.eab_secret(kid)
        if secret is None:
            raise AcmeProblem("unauthorized", "the external account key id is unknown or revoked")
        return secret

    def _eab_profile(self, account: AccountRow) -> str | None:
        """The one profile the account's EAB key admits, if it was created with one."""
        if account.eab_kid is None:
            return None
        key = self.store.eab_key(account.eab_kid)
        return key.profile if key is not None else None

    @staticmethod
    def _check_contact(contact: Any) -> tuple[str, ...]:
        if contact is None:
            return ()
        if not isinstance(contact, list | tuple) or len(contact) > 10:
            raise AcmeProblem("malformed", "contact must be a list of at most 10 URLs")
        for item in contact:
            if not isinstance(item, str) or not item.startswith("mailto:"):
                raise AcmeProblem("unsupportedContact", "only mailto: contacts are supported")
            address = item.removeprefix("mailto:")
            local, at, domain = address.partition("@")
            if (
                not at
                or not local
                or not domain
                or len(item) > 255
                or any(c in address for c in ",?<> \t\r\n")
            ):
                raise AcmeProblem("invalidContact", f"'{item[:80]}' is not a mailto: address")
        return tuple(contact)

    def update_account(self, auth: Authenticated, account_id: str) -> AccountRow:
        account = auth.account
        assert account is not None
        if account.id != account_id:
            raise AcmeProblem("unauthorized", "the 'kid' is not this account")
        if auth.request.is_post_as_get:
            return account
        payload = auth.request.json_payload()
        status = payload.get("status") or None  # "" is a client's zero value: not set
        if status not in (None, account.status, "deactivated"):
            raise AcmeProblem("malformed", "an account can only be set to 'deactivated'")
        contact = self._check_contact(payload["contact"]) if "contact" in payload else None
        updated = self.store.update_account(
            account.id,
            contact=contact,
            status="deactivated" if status == "deactivated" else None,
        )
        assert updated is not None
        return updated

    def key_change(self, auth: Authenticated, urls: Urls) -> AccountRow:
        """RFC 8555 §7.3.5: an inner JWS by the new key, inside one by the old key."""
        account = auth.account
        assert account is not None
        payload = auth.request.json_payload()
        inner = jws.parse_jws(json.dumps(payload).encode(), what="inner JWS")
        if inner.jwk is None or inner.kid is not None:
            raise AcmeProblem("malformed", "the inner JWS must carry 'jwk' and no 'kid'")
        if inner.url != auth.request.url:
            raise AcmeProblem("malformed", "the inner JWS 'url' differs from the outer one")
        jws.verify(inner, inner.jwk)
        body = _load(messages.KeyChange, inner.json_payload(), "keyChange")
        if body.account != urls.account(account.id):
            raise AcmeProblem("malformed", "keyChange 'account' is not the signing account")
        if jws.thumbprint(body.old_key) != account.thumbprint:
            raise AcmeProblem("malformed", "keyChange 'oldKey' is not the account's key")
        new_thumbprint = jws.thumbprint(inner.jwk)
        if new_thumbprint == account.thumbprint:
            raise AcmeProblem("malformed", "the new key is the old key")
        other = self.store.account_by_thumbprint(new_thumbprint)
        if other is not None:
            raise AcmeProblem(
                "conflict",
                "another account already uses the new key",
                headers={"Location": urls.account(other.id)},
            )
        updated = self.store.change_key(account.id, new_thumbprint, jws.jwk_json(inner.jwk))
        if updated is None:
            raise AcmeProblem("conflict", "another account already uses the new key")
        return updated

    # orders (§7.4) ----------------------------------------------------------------------

    def new_order(
        self, auth: Authenticated, profile: str | None
    ) -> tuple[OrderRow, list[AuthorizationRow]]:
        account = auth.account
        assert account is not None
        payload = auth.request.json_payload()
        identifiers = payload.get("identifiers")
        if isinstance(identifiers, list):
            for item in identifiers:
                if isinstance(item, dict) and item.get("type") not in ("dns", "ip"):
                    raise AcmeProblem(
                        "unsupportedIdentifier",
                        "only dns and ip identifiers are supported",
                        identifier={"type": str(item.get("type"))[:20], "value": ""},
                    )
        body = _load(messages.NewOrder, payload, "newOrder")
        requested_profile = payload.get("profile")
        if requested_profile is not None and not isinstance(requested_profile, str):
            raise AcmeProblem("malformed", "'profile' must be a string")
        if profile and requested_profile and requested_profile != profile:
            raise AcmeProblem("invalidProfile", "'profile' differs from the directory's profile")
        bound_profile = self._eab_profile(account)
        profile = requested_profile or profile or bound_profile or self.settings.default_profile
        if bound_profile is not None and profile != bound_profile:
            raise AcmeProblem(
                "unauthorized",
                f"this account's external account key admits only profile '{bound_profile}'",
            )
        if profile not in self.settings.profiles:
            raise AcmeProblem(
                "invalidProfile",
                f"profile '{profile[:40]}' is not offered; offered: "
                + ", ".join(self.settings.profiles),
            )
        identifiers = self._check_identifiers(body.identifiers)
        now = utcnow()
        not_before, not_after = body.not_before, body.not_after
        if not_before is not None and not_before > now + dt.timedelta(minutes=5):
            raise AcmeProblem("malformed", "notBefore in the future is not supported")
        if not_after is not None and not_after <= now + dt.timedelta(hours=1):
            raise AcmeProblem("malformed", "notAfter must be more than an hour from now")
        if body.replaces is not None:
            self._check_replaces(body.replaces, account)
        self._check_rate(account, now)
        order = OrderRow(
            id=new_id(),
            account_id=account.id,
            status="pending",
            profile=profile,
            identifiers=tuple(identifiers),
            not_before=not_before,
            not_after=not_after,
            expires=now + ORDER_LIFETIME,
            error=None,
            certificate_serial=None,
            replaces=body.replaces,
            created_at=now,
        )
        authorizations: list[AuthorizationRow] = []
        challenges: list[ChallengeRow] = []
        for kind, value in identifiers:
            wildcard = value.startswith("*.")
            authz = AuthorizationRow(
                id=new_id(),
                order_id=order.id,
                account_id=account.id,
                identifier_type=kind,
                identifier_value=value.removeprefix("*."),
                wildcard=wildcard,
                status="pending",
                expires=order.expires,
            )
            authorizations.append(authz)
            if wildcard:
                types = ["dns-01"]
            elif kind == "ip":
                types = ["http-01", "tls-alpn-01"]
            else:
                types = ["http-01", "dns-01", "tls-alpn-01"]
            challenges.extend(
                ChallengeRow(
                    id=new_id(),
                    authorization_id=authz.id,
                    type=t,
                    token=secrets.token_urlsafe(32),
                    status="pending",
                    validated=None,
                    error=None,
                )
                for t in types
            )
        self.store.add_order(order, authorizations, challenges)
        return order, authorizations

    def _check_identifiers(self, identifiers: Any) -> list[tuple[str, str]]:
        if not identifiers:
            raise AcmeProblem("malformed", "an order needs at least one identifier")
        if len(identifiers) > MAX_IDENTIFIERS:
            raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
        result: list[tuple[str, str]] = []
        problems: list[AcmeProblem] = []
        for identifier in identifiers:
            kind, value = identifier.typ.name, identifier.value
            shown = {"type": str(kind)[:10], "value": str(value)[:255]}
            if kind not in ("dns", "ip") or not isinstance(value, str):
                problems.append(
                    AcmeProblem(
                        "unsupportedIdentifier", "only dns and ip identifiers", identifier=shown
                    )
                )
                continue
            try:
                name = name_of(kind, value)
            except InputError as exc:
                problems.append(AcmeProblem("rejectedIdentifier", exc.message, identifier=shown))
                continue
            if name.kind != kind:
                problems.append(
                    AcmeProblem("rejectedIdentifier", "identifier type mismatch", identifier=shown)
                )
                continue
            result.append((kind, name.value))
        result = list(dict.fromkeys(result))
        if not problems:
            try:
                self.issuer.check_names([v for _k, v in result])
            except IssuanceRefused as exc:
                problems.append(AcmeProblem("rejectedIdentifier", exc.message))
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise AcmeProblem("compound", "several identifiers are refused", subproblems=problems)
        return result

    def _check_rate(self, account: AccountRow, now: dt.datetime) -> None:
        limit = self.settings.orders_per_window
        count, oldest = self.store.count_orders_since(account.id, now - self.settings.rate_window)
        if count >= limit:
            retry = max(1, math.ceil((oldest + self.settings.rate_window - now).total_seconds()))
            raise AcmeProblem(
                "rateLimited",
                f"at most {limit} new orders per account per "
                f"{int(self.settings.rate_window.total_seconds())} s",
                headers={"Retry-After": str(retry)},
            )

    def _check_replaces(self, replaces: str, account: AccountRow) -> None:
        info = self._certificate_by_ari_id(replaces)
        order = self.store.order_by_serial(serial_hex(info.serial))
        if order is None or order.account_id != account.id:
            raise AcmeProblem("malformed", "'replaces' names a certificate of another account")

    def order(self, auth: Authenticated, order_id: str) -> tuple[OrderRow, list[AuthorizationRow]]:
        order = self._own_order(auth, order_id)
        return order, self.store.authorizations(order.id)

    def _own_order(self, auth: Authenticated, order_id: str) -> OrderRow:
        order = self.store.order(order_id)
        if order is None or auth.account is None or order.account_id != auth.account.id:
            raise AcmeProblem("notFound", "no such order")
        return _expired_order(order)

    def orders(self, auth: Authenticated, account_id: str) -> list[OrderRow]:
        if auth.account is None or auth.account.id != account_id:
            raise AcmeProblem("notFound", "no such account")
        return [o for o in self.store.orders(account_id) if o.status in ("pending", "ready")]

    # authorizations and challenges (§7.5) ------------------------------------------------

    def authorization(
        self, auth: Authenticated, authz_id: str
    ) -> tuple[AuthorizationRow, list[ChallengeRow]]:
        authz = self._own_authorization(auth, authz_id)
        if not auth.request.is_post_as_get:
            payload = auth.request.json_payload()
            if payload.get("status") != "deactivated":
                raise AcmeProblem("malformed", "an authorization can only be deactivated")
            if authz.status in ("pending", "valid"):
                self.store.deactivate_authorization(authz.id)
            authz = self._own_authorization(auth, authz_id)
        return authz, self.store.challenges(authz.id)

    def _own_authorization(self, auth: Authenticated, authz_id: str) -> AuthorizationRow:
        authz = self.store.authorization(authz_id)
        if authz is None or auth.account is None or authz.account_id != auth.account.id:
            raise AcmeProblem("notFound", "no such authorization")
        if authz.status == "pending" and authz.expires <= utcnow():
            return AuthorizationRow(**{**authz.__dict__, "status": "expired"})
        return authz

    def challenge(
        self, auth: Authenticated, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow, PendingValidation | None]:
        """The challenge; a POST with a payload asks for validation, which the caller runs
        in `self.validations` (the returned PendingValidation) and then reads the result."""
        challenge = self.store.challenge(challenge_id)
        if challenge is None:
            raise AcmeProblem("notFound", "no such challenge")
        authz = self._own_authorization(auth, challenge.authorization_id)
        if auth.request.is_post_as_get:
            return challenge, authz, None
        auth.request.json_payload()  # {} asks for validation; anything else is ignored
        if authz.status != "pending" or challenge.status != "pending":
            return challenge, authz, None
        # The deadline starts now: time spent waiting for a free validator counts.
        deadline = Deadline(self.settings.validation_timeout)
        if not self.store.start_challenge(challenge.id):
            return self.store.challenge(challenge.id) or challenge, authz, None
        key_authorization = f"{challenge.token}.{jws.thumbprint(auth.key)}"
        pending = PendingValidation(self, challenge, authz, key_authorization, deadline)
        return challenge, authz, pending

    def challenge_state(
        self, auth: Authenticated, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow]:
        challenge = self.store.challenge(challenge_id)
        if challenge is None:
            raise AcmeProblem("notFound", "no such challenge")
        return challenge, self._own_authorization(auth, challenge.authorization_id)

    def _validate(
        self,
        challenge: ChallengeRow,
        authz: AuthorizationRow,
        key_authorization: str,
        deadline: Deadline,
    ) -> None:
        """Validate and record the result: runs in the validation pool."""
        value = ("*." if authz.wildcard else "") + authz.identifier_value
        error = None
        try:
            self.validator.validate(
                challenge.type, authz.identifier_type, value, key_authorization, deadline
            )
        except AcmeProblem as problem:
            error = problem.to_json()
        except Exception as exc:  # a validator bug must still settle the challenge
            log.exception("validating challenge %s failed", challenge.id)
            error = AcmeProblem("serverInternal", f"validation failed: {type(exc).__name__}")
            error = error.to_json()
        self.store.finish_challenge(challenge, valid=error is None, now=utcnow(), error=error)

    def _name_allowed(self, host: str) -> bool:
        try:
            self.issuer.check_names([host])
        except (IssuanceRefused, InputError):
            return False
        return True

    # finalize and download (§7.4) -------------------------------------------------------

    def finalize(
        self, auth: Authenticated, order_id: str
    ) -> tuple[OrderRow, list[AuthorizationRow]]:
        order = self._own_order(auth, order_id)
        payload = auth.request.json_payload()
        if order.status != "ready":
            raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready")
        body = _load(messages.CertificateRequest, payload, "finalize")
        from cryptography.hazmat.primitives.serialization import Encoding

        csr_der = body.csr.public_bytes(Encoding.DER)
        if not self.store.set_order_status(order.id, "processing", expected="ready"):
            raise AcmeProblem("orderNotReady", "the order is already being finalized")
        days = self._days(order)
        try:
            issued = self.issuer.issue(
                csr_der,
                names=[v for _k, v in order.identifiers],
                profile=order.profile,
                days=days,
            )
        except IssuanceRefused as exc:
            problem = AcmeProblem(exc.kind, exc.message)
            if exc.kind == "rejectedIdentifier":
                self.store.set_order_status(order.id, "invalid", error=problem.to_json())
            else:
                self.store.set_order_status(order.id, "ready", expected="processing")
            raise problem from exc
        except BaseException:
            self.store.set_order_status(order.id, "ready", expected="processing")
            raise
        self.store.set_order_status(order.id, "valid", certificate_serial=serial_hex(issued.serial))
        if order.replaces:
            # ARI renewal: the replaced certificate is superseded, as with privca renew.
            replaced = self._certificate_by_ari_id(order.replaces)
            self.issuer.supersede(replaced.serial, issued.serial)
        return self.order(auth, order.id)

    def _days(self, order: OrderRow) -> int:
        if order.not_after is not None:
            return max(1, math.ceil((order.not_after - utcnow()).total_seconds() / 86400))
        return self.settings.profiles.get(order.profile, ACME_DEFAULT_DAYS)

    def certificate(self, auth: Authenticated, order_id: str) -> bytes:
        order = self._own_order(auth, order_id)
        if order.status != "valid" or order.certificate_serial is None:
            raise AcmeProblem("notFound", "the order has no certificate")
        return self.issuer.chain_pem(int(order.certificate_serial, 16))

    # revocation (§7.6) ------------------------------------------------------------------

    def revoke(self, auth: Authenticated) -> None:
        body = _load(messages.Revocation, auth.request.json_payload(), "revokeCert")
        reason_code = body.reason if body.reason is not None else 0
        if reason_code not in REVOCATION_REASONS:
            raise AcmeProblem("badRevocationReason", f"reason code {reason_code} is not allowed")
        certificate = body.certificate
        info = self.issuer.lookup(certificate.serial_number)
        der = certificate.public_bytes(serialization.Encoding.DER)
        if info is None or info.der != der:
            raise AcmeProblem("notFound", "this CA did not issue that certificate")
        if auth.account is not None:
            order = self.store.order_by_serial(serial_hex(info.serial))
            if order is None or order.account_id != auth.account.id:
                raise AcmeProblem("unauthorized", "the certificate was not issued to this account")
        else:
            public = certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            signer = auth.key.key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if public != signer:
                raise AcmeProblem(
                    "unauthorized", "the request is not signed by the certificate key"
                )
        # An already revoked certificate may still be made keyCompromise (reason 1), e.g.
        # by whoever holds its key: a reason only gets worse, never better (issuer.revoke).
        try:
            changed = self.issuer.revoke(info.serial, REVOCATION_REASONS[reason_code])
        except IssuanceRefused as exc:
            raise AcmeProblem("alreadyRevoked", exc.message) from exc
        if not changed:
            raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")

    # renewal information (RFC 9773) -----------------------------------------------------

    def _certificate_by_ari_id(self, cert_id: str) -> Any:
        try:
            aki_text, serial_text = cert_id.split(".")
            _b64decode(aki_text)  # format only: the whole id is compared below
            serial_bytes = _b64decode(serial_text)
        except ValueError as exc:
            raise AcmeProblem("malformed", "the certificate id is not AKI.serial") from exc
        if len(serial_bytes) > 20 or serial_bytes[0] & 0x80:
            raise AcmeProblem("malformed", "the serial in the certificate id is not valid")
        info = self.issuer.lookup(int.from_bytes(serial_bytes, "big"))
        if info is None:
            raise AcmeProblem("notFound", "no certificate with this id")
        cert = x509.load_der_x509_certificate(info.der)
        try:
            if ari_cert_id(cert) != cert_id:
                raise AcmeProblem("notFound", "no certificate with this id")
        except x509.ExtensionNotFound as exc:
            raise AcmeProblem("notFound", "no certificate with this id") from exc
        return info

    def renewal_info(self, cert_id: str) -> tuple[messages.RenewalInfo, int]:
        info = self._certificate_by_ari_id(cert_id)
        now = utcnow()
        if info.status == "revoked":
            start, end = now - dt.timedelta(days=1), now
        else:
            lifetime = info.not_after - info.not_before
            start = info.not_before + lifetime * 2 / 3
            end = info.not_before + lifetime * 5 / 6
        window = messages.RenewalInfo.SuggestedWindow(start=start, end=end)
        return messages.RenewalInfo(suggested_window=window), ARI_RETRY_AFTER


@dataclass(frozen=True)
class PendingValidation:
    """A started validation: `run` (in the validation pool) validates and records."""

    service: AcmeService
    challenge: ChallengeRow
    authorization: AuthorizationRow
    key_authorization: str
    deadline: Deadline

    def run(self) -> None:
        self.service._validate(
            self.challenge, self.authorization, self.key_authorization, self.deadline
        )


def _expired_order(order: OrderRow) -> OrderRow:
    if order.status in ("pending", "ready") and order.expires <= utcnow():
        return OrderRow(**{**order.__dict__, "status": "invalid"})
    return order


__all__ = [
    "AcmeService",
    "AcmeSettings",
    "Authenticated",
    "PendingValidation",
    "Urls",
    "ari_cert_id",
    "new_id",
]
