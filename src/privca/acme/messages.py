"""ACME messages: certbot's `acme.messages` classes to decode requests, with server variants
for the fields the client library does not model (newOrder notBefore/notAfter/replaces)
or requires (revokeCert's reason) and the tls-alpn-01 challenge (RFC 8737), which acme 5
no longer ships.

Answers are plain dicts (routes.py builds them with `rfc3339` and `error_json`): with the
members, their order and their encodings that certbot's Order, Authorization,
ChallengeBody, Registration and Directory `to_json` wrote, at a tenth of the CPU
(tests/acme/test_encoding.py compares them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from acme import challenges, fields, messages
from acme.challenges import DNS01, HTTP01, KeyAuthorizationChallenge
from cryptography import x509
from josepy import json_util
from josepy.json_util import JSONObjectWithFields, field
from josepy.jwk import JWK

from privca.acme.problems import AcmeProblem

Directory = messages.Directory
Identifier = messages.Identifier
IdentifierType = messages.IdentifierType
Status = messages.Status
Authorization = messages.Authorization
ChallengeBody = messages.ChallengeBody
CertificateRequest = messages.CertificateRequest
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

    def validation(self, account_key: JWK, **kwargs: Any) -> bytes:
        return hashlib.sha256(self.key_authorization(account_key).encode()).digest()


CHALLENGE_CLASSES: dict[str, type[KeyAuthorizationChallenge]] = {
    "http-01": HTTP01,
    "dns-01": DNS01,
    "tls-alpn-01": TLSALPN01,
}


class NewAccount(messages.NewRegistration):
    """newAccount payload (the client class, with unknown fields ignored)."""


class NewOrder(messages.NewOrder):
    """newOrder payload with notBefore/notAfter (§7.4) and ARI's `replaces`."""

    not_before: Any = fields.rfc3339("notBefore", omitempty=True)
    not_after: Any = fields.rfc3339("notAfter", omitempty=True)
    replaces: str | None = field("replaces", omitempty=True)


class Revocation(JSONObjectWithFields):
    """revokeCert payload: certbot's class with `reason` optional (RFC 8555 §7.6: absent
    means unspecified, 0); certbot's requires it, and lego's library leaves it out."""

    certificate: x509.Certificate = field(
        "certificate", decoder=json_util.decode_cert, encoder=json_util.encode_cert
    )
    reason: int | None = field("reason", omitempty=True)


class KeyChange(JSONObjectWithFields):
    """The payload of keyChange's inner JWS (RFC 8555 §7.3.5)."""

    account: str = field("account")
    old_key: JWK = field("oldKey", decoder=JWK.from_json)


# Be liberal in what is accepted: some clients serialize the whole resource, server-owned
# fields included (Caddy 2.6's newOrder carries "status":"", "expires":"0001-01-01T00:00:00Z",
# "authorizations":null, "finalize":"", "certificate":""). The server decides these, so a
# request's copy is dropped whatever its value.
SERVER_OWNED: dict[str, frozenset[str]] = {
    "newAccount": frozenset({"status", "orders"}),
    "newOrder": frozenset(
        {"status", "expires", "authorizations", "finalize", "certificate", "error"}
    ),
    "finalize": frozenset(
        {"status", "expires", "identifiers", "authorizations", "finalize", "certificate", "error"}
    ),
    "revokeCert": frozenset(),
    "keyChange": frozenset(),
}
# Members a request cannot do without; every other member given as a zero value (null, "",
# Go's zero time) counts as absent, as the client meant.
REQUIRED: dict[str, tuple[str, ...]] = {
    "newAccount": (),
    "newOrder": ("identifiers",),
    "finalize": ("csr",),
    "revokeCert": ("certificate",),
    "keyChange": ("account", "oldKey"),
}
# What a malformed member should have been, for the problem detail.
_EXPECTED: dict[str, str] = {
    "identifiers": 'a list of {"type": "dns"|"ip", "value": NAME} objects',
    "notBefore": "an RFC 3339 date-time",
    "notAfter": "an RFC 3339 date-time",
    "replaces": "a certificate id (AKI.serial) string",
    "profile": "a string",
    "contact": "a list of mailto: URLs",
    "termsOfServiceAgreed": "true or false",
    "onlyReturnExisting": "true or false",
    "csr": "the base64url DER of a PKCS#10 CSR",
    "certificate": "the base64url DER of a certificate",
    "reason": "a CRL reason code (integer)",
    "account": "the account URL",
    "oldKey": "a JWK object",
}


# JSON types of members that josepy passes through undecoded.
_TYPES: dict[str, type | tuple[type, ...]] = {
    "replaces": str,
    "profile": str,
    "contact": list,
    "termsOfServiceAgreed": bool,
    "onlyReturnExisting": bool,
    "account": str,
    "reason": int,
}


def _is_zero(value: Any) -> bool:
    """JSON null, "" and Go's zero time: what a client sends for "not set"."""
    if value is None or value == "":
        return True
    return isinstance(value, str) and value.startswith("0001-01-01T00:00:00")


def decode(cls: Any, payload: dict[str, Any], request: str) -> Any:
    """The request's payload as `cls`, ignoring server-owned members and zero values of
    optional ones; a malformed member is named in the problem detail (never its value)."""
    cleaned = _cleaned(payload, request)
    for member in cls._fields.values():
        if member.json_name in cleaned:
            _check_member(member, cleaned[member.json_name], request)
    try:
        return cls.from_json(cleaned)
    except Exception as exc:
        raise AcmeProblem("malformed", f"the {request} payload is malformed") from exc


def _cleaned(payload: dict[str, Any], request: str) -> dict[str, Any]:
    """The payload without server-owned members and optional ones given as zero values."""
    owned = SERVER_OWNED.get(request, frozenset())
    required = REQUIRED.get(request, ())
    cleaned = {
        key: value
        for key, value in payload.items()
        if key not in owned and (key in required or not _is_zero(value))
    }
    for name in required:
        if name not in cleaned:
            raise AcmeProblem("malformed", f"the {request} payload has no '{name}'")
    return cleaned


def _check_member(member: Any, value: Any, request: str) -> None:
    """One member's JSON type and josepy decoding (a josepy field of `cls`)."""
    name = member.json_name
    expected_type = _TYPES.get(name)
    try:
        if expected_type is not None and not isinstance(value, expected_type):
            raise TypeError(name)
        if isinstance(value, bool) and expected_type is int:
            raise TypeError(name)
        member.decode(value)
    except Exception as exc:  # josepy raises DeserializationError, TypeError, ...
        expected = _EXPECTED.get(name)
        detail = f"the {request} member '{name}' is malformed"
        raise AcmeProblem(
            "malformed", detail + (f": expected {expected}" if expected else "")
        ) from exc


def rfc3339(value: dt.datetime) -> str:
    """A time in an answer: UTC, whole seconds (truncated), "Z" (as pyrfc3339.generate)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_json(problem_json: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored problem document as an order or challenge carries it: through certbot's
    Error class, which keeps type, title, detail, identifier and subproblems (rare: only
    failed orders and challenges have one)."""
    if not problem_json:
        return None
    encoded: dict[str, Any] = messages.Error.from_json(problem_json).to_json()
    return encoded


__all__ = [
    "CHALLENGE_CLASSES",
    "DNS01",
    "HTTP01",
    "REQUIRED",
    "SERVER_OWNED",
    "TLSALPN01",
    "Authorization",
    "CertificateRequest",
    "ChallengeBody",
    "Directory",
    "Error",
    "Identifier",
    "IdentifierType",
    "KeyChange",
    "NewAccount",
    "NewOrder",
    "RenewalInfo",
    "Revocation",
    "Status",
    "decode",
    "error_json",
    "rfc3339",
]
