"""Decoding and verifying ACME requests (RFC 8555 §6.2, §6.3) with josepy.

Only the flattened JSON serialization with exactly one signature and only a protected
header; `alg` must be one of ALGORITHMS and fit the key; `jwk` xor `kid`; `url` must be
the URL the request was sent to. Nonces are checked by the caller (nonces.py), which
needs the store. Everything malformed raises AcmeProblem, never anything else.

What every ACME client sends (a protected header of alg, nonce, url and jwk or kid) is
decoded here directly: josepy's JWS.from_json builds half a dozen objects per request
and re-checks what parse_jws has checked already, about a third of a millisecond of CPU
per request. Any other header member goes through JWS.from_json as before, so that what
josepy refuses (x5c, typ, a BOM...) is still refused the same way.
"""

from __future__ import annotations

import binascii
import functools
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acme import jws as acme_jws
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64decode, b64encode
from josepy.json_util import decode_b64jose
from josepy.jwa import ES256, ES384, HS256, HS384, HS512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA, JWKOct

from privca._text import printable
from privca.acme.problems import AcmeProblem

# alg -> (josepy algorithm, JWK class, EC curve name or None). josepy 2 has no EdDSA.
ALGORITHMS: dict[str, tuple[JWASignature, type[JWK], str | None]] = {
    "RS256": (RS256, JWKRSA, None),
    "ES256": (ES256, JWKEC, "secp256r1"),
    "ES384": (ES384, JWKEC, "secp384r1"),
}
EAB_ALGORITHMS = {"HS256": HS256, "HS384": HS384, "HS512": HS512}
MIN_RSA_BITS = 2048
FLATTENED_MEMBERS = {"protected", "payload", "signature"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# Protected header members decoded here; a header with any other goes through josepy.
_PLAIN_HEADER = frozenset({"alg", "nonce", "url", "jwk", "kid"})
# Accounts' stored keys decoded at once (a key is a pure function of its JSON text).
JWK_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SignedRequest:
    """A structurally valid JWS whose signature is not yet checked (the key may be a kid)."""

    alg: str
    url: str
    nonce: str | None
    jwk: JWK | None
    kid: str | None
    payload: bytes
    signing_input: bytes  # what the signature covers (RFC 7515 §5.2)
    signature: bytes

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
    # The alphabet and nothing else (RFC 7515 §2): b64decode would skip other characters,
    # and the same JWS would then travel under many spellings. A length of 4n+1 is no
    # base64 at all.
    if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise AcmeProblem("malformed", f"JWS member '{what}' is not unpadded base64url")
    try:
        return b64decode(value)
    except (ValueError, binascii.Error) as exc:
        raise AcmeProblem("malformed", f"JWS member '{what}' is not base64url") from exc


def parse_jws(body: bytes, *, what: str = "request") -> SignedRequest:
    """Structure and header checks; the signature is checked by `verify`."""
    document = _flattened(body, what)
    protected_bytes = _b64(document["protected"], "protected")
    payload = _b64(document["payload"], "payload")
    signature = _b64(document["signature"], "signature")
    header = _protected_header(protected_bytes)
    alg = _algorithm(header, what)
    url = header.get("url")
    if not isinstance(url, str):
        raise AcmeProblem("malformed", "the protected header has no 'url'")
    nonce = header.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise AcmeProblem("malformed", "the protected header's 'nonce' is not a string")
    if "crit" in header:
        raise AcmeProblem("malformed", "the protected header has 'crit' members privca lacks")
    kid = _kid(header)
    try:
        header_jwk = _decoded_jwk(document, header, protected_bytes)
    except Exception as exc:  # josepy raises several types for odd input
        raise AcmeProblem("malformed", "the JWS could not be decoded") from exc
    jwk = _header_jwk(header, header_jwk, alg)
    # As josepy computes it: from the decoded values, so that only the canonical base64url
    # of the protected header and payload verifies.
    signing_input = b64encode(protected_bytes) + b"." + b64encode(payload)
    return SignedRequest(
        alg=alg,
        url=url,
        nonce=nonce,
        jwk=jwk,
        kid=kid,
        payload=payload,
        signing_input=signing_input,
        signature=signature,
    )


def _decoded_jwk(document: dict[str, Any], header: dict[str, Any], protected: bytes) -> object:
    """The header's decoded `jwk` (None without one), raising whatever josepy's
    JWS.from_json would raise for this JWS."""
    # json.loads reads UTF-16 and UTF-32 too (and a UTF-8 BOM): only what it reads as
    # UTF-8 stays on this path, the rest goes to josepy, which refuses it (RFC 7515: UTF-8).
    if not header.keys() <= _PLAIN_HEADER or json.detect_encoding(protected) != "utf-8":
        return acme_jws.JWS.from_json(document).signature.combined.jwk
    protected.decode("utf-8")  # josepy reads the header as UTF-8 (json.loads takes more)
    if "nonce" in header:
        decode_b64jose(header["nonce"])  # ACME's josepy header decodes it
    return JWK.from_json(header["jwk"]) if "jwk" in header else None


def _flattened(body: bytes, what: str) -> dict[str, Any]:
    """The flattened JSON serialization with one signature and only a protected header."""
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
    return document


def _protected_header(protected: bytes) -> dict[str, Any]:
    try:
        header = json.loads(protected)
    except (ValueError, RecursionError) as exc:
        raise AcmeProblem("malformed", "the protected header is not JSON") from exc
    if not isinstance(header, dict):
        raise AcmeProblem("malformed", "the protected header is not a JSON object")
    return header


def _algorithm(header: dict[str, Any], what: str) -> str:
    """An account key algorithm (ALGORITHMS), or an HMAC one for an EAB binding."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise AcmeProblem("malformed", "the protected header has no 'alg'")
    if alg not in ALGORITHMS and not (what == "binding" and alg in EAB_ALGORITHMS):
        accepted = list(EAB_ALGORITHMS if what == "binding" else ALGORITHMS)
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"algorithm '{printable(alg, 20)}' is not accepted; use one of: " + ", ".join(accepted),
            algorithms=accepted,
        )
    return alg


def _kid(header: dict[str, Any]) -> str | None:
    if "jwk" in header and "kid" in header:
        raise AcmeProblem("malformed", "the protected header has both 'jwk' and 'kid'")
    kid = header.get("kid")
    if "kid" in header and not isinstance(kid, str):
        raise AcmeProblem("malformed", "the protected header's 'kid' is not a string")
    return kid


def _header_jwk(header: dict[str, Any], jwk: object, alg: str) -> JWK | None:
    """The key the header carries (newAccount, revokeCert by certificate key), checked."""
    if "jwk" not in header:
        return None
    if not isinstance(header["jwk"], dict):
        raise AcmeProblem("malformed", "the protected header's 'jwk' is not an object")
    if not isinstance(jwk, JWK):
        raise AcmeProblem("malformed", "the protected header's 'jwk' could not be read")
    check_key(jwk, alg)
    return jwk


def check_key(jwk: JWK, alg: str) -> None:
    """The key must be an account key type (no HMAC) and fit `alg`."""
    if isinstance(jwk, JWKOct):
        raise AcmeProblem("badPublicKey", "a symmetric (HMAC) key cannot be an account key")
    _algorithm, key_class, curve = ALGORITHMS[alg]
    if not isinstance(jwk, key_class):
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"algorithm {alg} does not fit the key type",
            algorithms=list(ALGORITHMS),
        )
    key = getattr(jwk.key, "_wrapped", jwk.key)  # josepy wraps cryptography keys
    # A jwk with its private members ("d", ...) reads as a private key: it passed the size
    # check below unseen, then failed as a bad signature (or an EC key as a wrong curve).
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise AcmeProblem("malformed", "the JWS key carries private members; send the public key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AcmeProblem("badPublicKey", f"RSA keys must have at least {MIN_RSA_BITS} bits")
    if curve is not None and (
        not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve
    ):
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"algorithm {alg} does not fit the key curve",
            algorithms=list(ALGORITHMS),
        )


def verify(request: SignedRequest, key: JWK) -> None:
    """Check the signature with the account key (the jwk header, or the kid's stored key)."""
    check_key(key, request.alg)
    algorithm = ALGORITHMS[request.alg][0]
    public = getattr(key.key, "_wrapped", key.key)  # past josepy's wrapper: 15 us less
    try:
        ok = algorithm.verify(public, request.signing_input, request.signature)
    except Exception:  # malformed signature bytes
        ok = False
    if not ok:
        raise AcmeProblem("malformed", "the JWS signature does not verify")


def thumbprint(jwk: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    return b64encode(jwk.thumbprint()).decode()


def jwk_json(jwk: JWK) -> str:
    return json.dumps(jwk.public_key().to_partial_json(), sort_keys=True)


@functools.lru_cache(maxsize=JWK_CACHE_SIZE)
def load_jwk(text: str) -> JWK:
    """A key as jwk_json wrote it (an account's, from the repository). Cached: every
    request signed by an account decodes its stored key, a tenth of a millisecond of
    CPU; a JWK and the key it wraps are immutable, so one may serve every thread."""
    return _as_jwk(JWK.from_json(json.loads(text)))


def _as_jwk(value: object) -> JWK:
    if not isinstance(value, JWK):
        raise AcmeProblem("malformed", "not a JSON Web Key")
    return value


def verify_binding(
    binding: Any, account_jwk: JWK, url: str, hmac_key_for: Callable[[str], bytes]
) -> str:
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
        raise AcmeProblem(
            "badSignatureAlgorithm",
            "externalAccountBinding must use HS256/384/512",
            algorithms=list(EAB_ALGORITHMS),
        )
    if inner.nonce is not None or inner.jwk is not None or not inner.kid:
        raise AcmeProblem("malformed", "externalAccountBinding needs 'kid' and no nonce or jwk")
    if inner.url != url:
        raise AcmeProblem("malformed", "externalAccountBinding 'url' is not the newAccount URL")
    key = hmac_key_for(inner.kid)
    try:
        algorithm = EAB_ALGORITHMS[inner.alg]
        ok = algorithm.verify(JWKOct(key=key).key, inner.signing_input, inner.signature)
    except Exception:
        ok = False
    if not ok:
        raise AcmeProblem("unauthorized", "externalAccountBinding signature does not verify")
    try:
        bound = _as_jwk(JWK.from_json(json.loads(inner.payload)))
    except Exception as exc:  # AcmeProblem too: one detail for every way it is not a key
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
