"""ACME messages: certbot's `acme.messages` classes, plus server variants for the fields the
client library does not model (order notBefore/notAfter/replaces, account orders URL) and
the tls-alpn-01 challenge (RFC 8737), which acme 5 no longer ships.
"""

from __future__ import annotations

import hashlib
from typing import Any

import josepy as jose
from acme import challenges, fields, messages
from acme.challenges import DNS01, HTTP01, KeyAuthorizationChallenge

Directory = messages.Directory
Identifier = messages.Identifier
Status = messages.Status
Authorization = messages.Authorization
ChallengeBody = messages.ChallengeBody
CertificateRequest = messages.CertificateRequest
Revocation = messages.Revocation
RenewalInfo = messages.RenewalInfo
Error = messages.Error


class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(KeyAuthorizationChallenge):
    """RFC 8737: the validation is SHA-256 of the key authorization, in the acmeIdentifier
    extension of a self-signed certificate served with ALPN "acme-tls/1"."""

    typ = "tls-alpn-01"
    response_cls = TLSALPN01Response

    def validation(self, account_key: jose.JWK, **kwargs: Any) -> bytes:
        return hashlib.sha256(self.key_authorization(account_key).encode()).digest()


CHALLENGE_CLASSES: dict[str, type[KeyAuthorizationChallenge]] = {
    "http-01": HTTP01,
    "dns-01": DNS01,
    "tls-alpn-01": TLSALPN01,
}


class NewAccount(messages.NewRegistration):
    """newAccount payload (the client class, with unknown fields ignored)."""


class Account(messages.Registration):
    """An account resource as the server sends it: with the orders URL (RFC 8555 §7.1.2)."""

    orders: str | None = jose.field("orders", omitempty=True)


class NewOrder(messages.NewOrder):
    """newOrder payload with notBefore/notAfter (§7.4) and ARI's `replaces`."""

    not_before: Any = fields.rfc3339("notBefore", omitempty=True)
    not_after: Any = fields.rfc3339("notAfter", omitempty=True)
    replaces: str | None = jose.field("replaces", omitempty=True)


class Order(messages.Order):
    """An order resource as the server sends it."""

    not_before: Any = fields.rfc3339("notBefore", omitempty=True)
    not_after: Any = fields.rfc3339("notAfter", omitempty=True)
    replaces: str | None = jose.field("replaces", omitempty=True)


class KeyChange(jose.JSONObjectWithFields):
    """The payload of keyChange's inner JWS (RFC 8555 §7.3.5)."""

    account: str = jose.field("account")
    old_key: jose.JWK = jose.field("oldKey", decoder=jose.JWK.from_json)


def status(value: str) -> messages.Status:
    return messages.Status.from_json(value)


def error(problem_json: dict[str, Any] | None) -> messages.Error | None:
    if not problem_json:
        return None
    return messages.Error.from_json(problem_json)


__all__ = [
    "CHALLENGE_CLASSES",
    "DNS01",
    "HTTP01",
    "TLSALPN01",
    "Account",
    "Authorization",
    "CertificateRequest",
    "ChallengeBody",
    "Directory",
    "Error",
    "Identifier",
    "KeyChange",
    "NewAccount",
    "NewOrder",
    "Order",
    "RenewalInfo",
    "Revocation",
    "Status",
    "error",
    "status",
]
