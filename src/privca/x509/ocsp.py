"""OCSP (RFC 6960, in the lightweight profile of RFC 5019): parse a request, build a response.

Pure: DER bytes in, DER bytes out, the time passed in. Signing goes through
`build.sign_builder`, the one place that signs. Every way a request can be malformed
raises `InputError`, which the server turns into a `malformedRequest` response.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from privca.errors import InputError
from privca.x509.build import sign_builder
from privca.x509.crl import reason_flag

# A one-certificate request with a nonce is about 120 bytes; this leaves room for a
# signed request while refusing to buffer anything large.
MAX_REQUEST_BYTES = 16 * 1024
# RFC 8954 limits the nonce to 32 octets; OpenSSL wraps its 16 random bytes in an inner
# OCTET STRING (18 bytes). Anything longer is refused as malformed, as RFC 8954 asks.
MAX_NONCE_BYTES = 34

# The CertID hash algorithms we answer for (RFC 6960 clients use SHA-1, some SHA-256).
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

CERT_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}


@dataclass(frozen=True)
class CertId:
    """RFC 6960 CertID: which issuer (by name and key hash) and which serial."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    @property
    def issuer_key(self) -> tuple[str, bytes, bytes]:
        return self.hash_name, self.issuer_name_hash, self.issuer_key_hash


@dataclass(frozen=True)
class OcspQuery:
    cert_id: CertId
    nonce: bytes | None


@dataclass(frozen=True)
class CertStatus:
    """What the inventory says about one serial: good, revoked (when, why) or unknown."""

    status: str
    revoked_at: dt.datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Responder:
    """Who signs responses: a delegated responder certificate (embedded in the response so
    clients can check its OCSPSigning EKU) or the CA certificate itself (not embedded)."""

    certificate: x509.Certificate
    private_key: CertificateIssuerPrivateKeyTypes
    delegated: bool


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


# Unsigned by definition (RFC 6960 4.2.1), so they are constants.
MALFORMED_REQUEST = _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
INTERNAL_ERROR = _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
TRY_LATER = _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)


def decode_get_path(encoded: str) -> bytes:
    """The DER request of a GET: URL-decode, then base64 (RFC 6960 A.1.1).

    Also accepts the base64url alphabet and missing padding, which some clients send.
    """
    text = unquote(encoded).strip().replace("-", "+").replace("_", "/")
    if not text:
        raise InputError("the OCSP GET request has no request in its path")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"the OCSP GET request is not valid base64: {exc}") from None


def load_request(der: bytes) -> OcspQuery:
    """Parse one OCSP request (RFC 5019: exactly one CertID); raise InputError otherwise."""
    if not der:
        raise InputError("the OCSP request is empty")
    if len(der) > MAX_REQUEST_BYTES:
        raise InputError(f"the OCSP request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = ocsp.load_der_ocsp_request(der)
        algorithm = request.hash_algorithm
        cert_id = CertId(
            hash_name=algorithm.name,
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial=request.serial_number,
        )
        nonce: bytes | None = None
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                nonce = extension.value.nonce
            elif extension.critical:
                raise InputError(f"the OCSP request has an unknown critical {extension.oid}")
    except InputError:
        raise
    except Exception as exc:
        # The bytes come from anyone on the network: whatever the parser objects to
        # (ValueError, UnsupportedAlgorithm, a multi-certificate request) is "malformed".
        raise InputError(f"the OCSP request is malformed: {exc}") from None
    if cert_id.hash_name not in HASHES:
        raise InputError(f"the OCSP request uses the unsupported hash {cert_id.hash_name}")
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise InputError(
            f"the OCSP nonce is {len(nonce)} bytes; 1 to {MAX_NONCE_BYTES} are allowed"
        )
    return OcspQuery(cert_id, nonce)


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `offset`."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    return tag, offset, offset + length


def subject_public_key_bits(public_key: CertificatePublicKeyTypes) -> bytes:
    """The subjectPublicKey BIT STRING's bits: what RFC 6960 issuerKeyHash hashes."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _tag, start, _end = _der_header(spki, 0)  # SubjectPublicKeyInfo SEQUENCE
    _tag, _start, after_algorithm = _der_header(spki, start)  # AlgorithmIdentifier
    tag, bits_start, bits_end = _der_header(spki, after_algorithm)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo without a BIT STRING")
    return spki[bits_start + 1 : bits_end]  # skip the unused-bits octet


def issuer_keys(issuer: x509.Certificate) -> list[tuple[str, bytes, bytes]]:
    """(hash, issuerNameHash, issuerKeyHash) for every hash we accept: the CertID
    issuer part a client computes for a certificate signed by `issuer`."""
    name_der = issuer.subject.public_bytes()
    key_bits = subject_public_key_bits(issuer.public_key())
    return [
        (name, hashlib.new(name, name_der).digest(), hashlib.new(name, key_bits).digest())
        for name in HASHES
    ]


def build_response(
    cert_id: CertId,
    status: CertStatus,
    responder: Responder,
    this_update: dt.datetime,
    next_update: dt.datetime,
    nonce: bytes | None = None,
) -> bytes:
    """A signed `successful` response for one CertID, responder identified by key hash."""
    revoked = status.status == "revoked"
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=cert_id.issuer_name_hash,
        issuer_key_hash=cert_id.issuer_key_hash,
        serial_number=cert_id.serial,
        algorithm=HASHES[cert_id.hash_name](),
        cert_status=CERT_STATUS[status.status],
        this_update=this_update,
        next_update=next_update,
        revocation_time=status.revoked_at if revoked else None,
        revocation_reason=reason_flag(status.reason) if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
    if responder.delegated:
        builder = builder.certificates([responder.certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return sign_builder(builder, responder.private_key).public_bytes(Encoding.DER)


__all__ = [
    "INTERNAL_ERROR",
    "MALFORMED_REQUEST",
    "TRY_LATER",
    "UNAUTHORIZED",
    "CertId",
    "CertStatus",
    "OcspQuery",
    "Responder",
    "build_response",
    "decode_get_path",
    "issuer_keys",
    "load_request",
]
