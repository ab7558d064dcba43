"""Decoding and verifying ACME requests (RFC 8555 §6.2, §6.3) with josepy.

Only the flattened JSON serialization with exactly one signature and only a protected
header; `alg` must be one of ALGORITHMS and fit the key; `jwk` xor `kid`; `url` must be
the URL the request was sent to. Nonces are checked by the caller (nonces.py), which
needs the store. Everything malformed raises AcmeProblem, never anything else.
"""

from __future__ import annotations

import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

import josepy as jose
from acme import jws as acme_jws
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from privca.acme.problems import AcmeProblem

# alg -> (josepy algorithm, JWK class, EC curve name or None). josepy 2 has no EdDSA.
ALGORITHMS: dict[str, tuple[jose.JWASignature, type[jose.JWK], str | None]] = {
    "RS256": (jose.RS256, jose.JWKRSA, None),
    "ES256": (jose.ES256, jose.JWKEC, "secp256r1"),
    "ES384": (jose.ES384, jose.JWKEC, "secp384r1"),
}
EAB_ALGORITHMS = {"HS256": jose.HS256, "HS384": jose.HS384, "HS512": jose.HS512}
MIN_RSA_BITS = 2048
FLATTENED_MEMBERS = {"protected", "payload", "signature"}


@dataclass(frozen=True)
class SignedRequest:
    """A structurally valid JWS whose signature is not yet checked (the key may be a kid)."""

    alg: str
    url: str
    nonce: str | None
    jwk: jose.JWK | None
    kid: str | None
    payload: bytes
    jws: acme_jws.JWS

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object (malformed unless it is one)."""
        try:
            value = json.loads(self.payload)
        except (ValueError, RecursionError) as exc:
            raise AcmeProblem("malformed", "the JWS payload is not JSON") from exc
        if not isinstance(value, dict):
            raise AcmeProblem("malformed", "the JWS payload is not a JSON object")
        return value

    @property
    def is_post_as_get(self) -> bool:
        return self.payload == b""


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise AcmeProblem("malformed", f"JWS member '{what}' is not a string")
    if "=" in value or any(c in value for c in "+/ \n\t"):
        raise AcmeProblem("malformed", f"JWS member '{what}' is not unpadded base64url")
    try:
        return jose.b64decode(value)
    except (ValueError, binascii.Error) as exc:
        raise AcmeProblem("malformed", f"JWS member '{what}' is not base64url") from exc


def parse_jws(body: bytes, *, what: str = "request") -> SignedRequest:
    """Structure and header checks; the signature is checked by `verify`."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise AcmeProblem("malformed", f"the {what} body is not JSON") from exc
    if not isinstance(document, dict):
        raise AcmeProblem("malformed", f"the {what} body is not a JWS object")
    if "signatures" in document:
        raise AcmeProblem(
            "malformed", "only the flattened JWS serialization with one signature is accepted"
        )
    if "header" in document:
        raise AcmeProblem("malformed", "unprotected JWS headers are not accepted")
    if set(document) != FLATTENED_MEMBERS:
        raise AcmeProblem("malformed", "a flattened JWS has exactly: protected, payload, signature")
    protected_bytes = _b64(document["protected"], "protected")
    payload = _b64(document["payload"], "payload")
    _b64(document["signature"], "signature")
    try:
        header = json.loads(protected_bytes)
    except (ValueError, RecursionError) as exc:
        raise AcmeProblem("malformed", "the protected header is not JSON") from exc
    if not isinstance(header, dict):
        raise AcmeProblem("malformed", "the protected header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise AcmeProblem("malformed", "the protected header has no 'alg'")
    if alg not in ALGORITHMS and not (what == "binding" and alg in EAB_ALGORITHMS):
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"algorithm '{alg[:20]}' is not accepted; use one of: " + ", ".join(ALGORITHMS),
        )
    url = header.get("url")
    if not isinstance(url, str):
        raise AcmeProblem("malformed", "the protected header has no 'url'")
    nonce = header.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise AcmeProblem("malformed", "the protected header's 'nonce' is not a string")
    if "crit" in header:
        raise AcmeProblem("malformed", "the protected header has 'crit' members privca lacks")
    has_jwk, has_kid = "jwk" in header, "kid" in header
    if has_jwk and has_kid:
        raise AcmeProblem("malformed", "the protected header has both 'jwk' and 'kid'")
    kid = header.get("kid")
    if has_kid and not isinstance(kid, str):
        raise AcmeProblem("malformed", "the protected header's 'kid' is not a string")
    try:
        signed = acme_jws.JWS.from_json(document)
    except Exception as exc:  # josepy raises several types for odd input
        raise AcmeProblem("malformed", "the JWS could not be decoded") from exc
    jwk = None
    if has_jwk:
        if not isinstance(header["jwk"], dict):
            raise AcmeProblem("malformed", "the protected header's 'jwk' is not an object")
        jwk = signed.signature.combined.jwk
        if jwk is None:
            raise AcmeProblem("malformed", "the protected header's 'jwk' could not be read")
        check_key(jwk, alg)
    return SignedRequest(
        alg=alg, url=url, nonce=nonce, jwk=jwk, kid=kid, payload=payload, jws=signed
    )


def check_key(jwk: jose.JWK, alg: str) -> None:
    """The key must be an account key type (no HMAC) and fit `alg`."""
    if isinstance(jwk, jose.JWKOct):
        raise AcmeProblem("badPublicKey", "a symmetric (HMAC) key cannot be an account key")
    _algorithm, key_class, curve = ALGORITHMS[alg]
    if not isinstance(jwk, key_class):
        raise AcmeProblem("badSignatureAlgorithm", f"algorithm {alg} does not fit the key type")
    key = getattr(jwk.key, "_wrapped", jwk.key)  # josepy wraps cryptography keys
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AcmeProblem("badPublicKey", f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if curve is not None and (
        not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve
    ):
        raise AcmeProblem("badSignatureAlgorithm", f"algorithm {alg} does not fit the key curve")


def verify(request: SignedRequest, key: jose.JWK) -> None:
    """Check the signature with the account key (the jwk header, or the kid's stored key)."""
    check_key(key, request.alg)
    try:
        ok = request.jws.signature.verify(request.payload, key)
    except Exception:  # malformed signature bytes
        ok = False
    if not ok:
        raise AcmeProblem("malformed", "the JWS signature does not verify")


def thumbprint(jwk: jose.JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    return jose.b64encode(jwk.thumbprint()).decode()


def jwk_json(jwk: jose.JWK) -> str:
    return json.dumps(jwk.public_key().to_partial_json(), sort_keys=True)


def load_jwk(text: str) -> jose.JWK:
    return jose.JWK.from_json(json.loads(text))


def verify_binding(binding: Any, account_jwk: jose.JWK, url: str, hmac_key_for: Any) -> str:
    """Verify an externalAccountBinding (RFC 8555 §7.3.4); returns its key id.

    `hmac_key_for(kid)` returns the decoded HMAC key, or raises AcmeProblem.
    """
    if not isinstance(binding, dict):
        raise AcmeProblem("malformed", "externalAccountBinding is not a JWS object")
    try:
        body = json.dumps(binding).encode()
    except (TypeError, ValueError) as exc:
        raise AcmeProblem("malformed", "externalAccountBinding is not a JWS object") from exc
    inner = parse_jws(body, what="binding")
    if inner.alg not in EAB_ALGORITHMS:
        raise AcmeProblem("badSignatureAlgorithm", "externalAccountBinding must use HS256/384/512")
    if inner.nonce is not None or inner.jwk is not None or not inner.kid:
        raise AcmeProblem("malformed", "externalAccountBinding needs 'kid' and no nonce or jwk")
    if inner.url != url:
        raise AcmeProblem("malformed", "externalAccountBinding 'url' is not the newAccount URL")
    key = hmac_key_for(inner.kid)
    try:
        ok = inner.jws.signature.verify(inner.payload, jose.JWKOct(key=key))
    except Exception:
        ok = False
    if not ok:
        raise AcmeProblem("unauthorized", "externalAccountBinding signature does not verify")
    try:
        bound = jose.JWK.from_json(json.loads(inner.payload))
    except Exception as exc:
        raise AcmeProblem("malformed", "externalAccountBinding payload is not a JWK") from exc
    if not hmac.compare_digest(thumbprint(bound), thumbprint(account_jwk)):
        raise AcmeProblem("unauthorized", "externalAccountBinding binds a different key")
    return inner.kid


__all__ = [
    "ALGORITHMS",
    "SignedRequest",
    "check_key",
    "jwk_json",
    "load_jwk",
    "parse_jws",
    "thumbprint",
    "verify",
    "verify_binding",
]
