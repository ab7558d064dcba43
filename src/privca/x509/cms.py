"""Detached CMS (PKCS#7) signatures over bytes: made with cryptography's PKCS7 builder so
that `openssl cms -verify -binary` checks them, and checked here without OpenSSL's CLI.

The signature carries no signed attributes (PKCS7Options.NoAttributes): the signer signs
the content itself, so checking it needs only the signature value and the signer's
certificate. cryptography reads no CMS structure, so `signature_value` walks the few DER
levels between the ContentInfo and the SignerInfo's signature (RFC 5652 5.1, 5.3).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7

from privca.errors import CheckFailed, InputError

_SEQUENCE, _SET, _OCTET_STRING = 0x30, 0x31, 0x04
_CONTEXT_0, _CONTEXT_1 = 0xA0, 0xA1


def sign_detached(
    data: bytes,
    certificate: x509.Certificate,
    key: CertificateIssuerPrivateKeyTypes,
    chain: tuple[x509.Certificate, ...] = (),
) -> bytes:
    """A detached CMS SignedData (DER) over `data`, carrying `certificate` and `chain`."""
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InputError(
            "the audit key must be an EC or RSA key to make CMS signatures",
            "privca makes the audit key as ECDSA P-256",
        )
    builder = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(
            certificate,
            key,
            hashes.SHA256(),
            rsa_padding=padding.PKCS1v15() if isinstance(key, rsa.RSAPrivateKey) else None,
        )
    )
    for extra in chain:
        builder = builder.add_certificate(extra)
    options = [
        pkcs7.PKCS7Options.DetachedSignature,
        pkcs7.PKCS7Options.Binary,
        pkcs7.PKCS7Options.NoAttributes,
    ]
    return builder.sign(serialization.Encoding.DER, options)


def _element(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `offset`."""
    if offset + 2 > len(der):
        raise ValueError("truncated")
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(der):
            raise ValueError("bad length")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("truncated")
    return tag, start, end


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    offset = start
    while offset < end:
        element = _element(der, offset)
        found.append(element)
        offset = element[2]
    if offset != end:
        raise ValueError("trailing bytes")
    return found


def signature_value(cms_der: bytes) -> bytes:
    """The signature of the only SignerInfo of a SignedData ContentInfo.

    Raises:
        ValueError: not such a structure.
    """
    tag, start, end = _element(cms_der, 0)
    if tag != _SEQUENCE or end != len(cms_der):
        raise ValueError("not a ContentInfo")
    content_info = _children(cms_der, start, end)
    if len(content_info) != 2 or content_info[1][0] != _CONTEXT_0:
        raise ValueError("no content")
    [signed_data] = _children(cms_der, content_info[1][1], content_info[1][2])
    if signed_data[0] != _SEQUENCE:
        raise ValueError("not a SignedData")
    fields = _children(cms_der, signed_data[1], signed_data[2])
    signer_infos = fields[-1]
    if signer_infos[0] != _SET:
        raise ValueError("no SignerInfos")
    infos = _children(cms_der, signer_infos[1], signer_infos[2])
    if len(infos) != 1 or infos[0][0] != _SEQUENCE:
        raise ValueError("not exactly one SignerInfo")
    parts = _children(cms_der, infos[0][1], infos[0][2])
    if any(part[0] == _CONTEXT_0 for part in parts):
        raise ValueError("signed attributes are not expected")
    signature = [p for p in parts if p[0] == _OCTET_STRING]
    if parts[-1][0] == _CONTEXT_1 or not signature:
        raise ValueError("no plain signature")
    return cms_der[signature[-1][1] : signature[-1][2]]


def certificates_of(cms_der: bytes) -> list[x509.Certificate]:
    """The certificates a SignedData carries, in DER SET order (by their bytes, not the
    order they were added in)."""
    try:
        return pkcs7.load_der_pkcs7_certificates(cms_der)
    except ValueError as exc:
        raise CheckFailed(f"the signature is not a CMS SignedData: {exc}") from exc


def check_detached(data: bytes, cms_der: bytes, signer: x509.Certificate) -> None:
    """Raise CheckFailed unless `cms_der` is `signer`'s signature over `data`."""
    try:
        signature = signature_value(cms_der)
    except ValueError as exc:
        raise CheckFailed(f"the signature is not a CMS signature privca makes: {exc}") from exc
    public_key = signer.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            raise CheckFailed("the signer's key type cannot sign CMS here")
    except InvalidSignature as exc:
        raise CheckFailed(
            "the signature does not match the signed bytes: they were changed",
            "get a fresh copy from the CA",
        ) from exc


__all__ = ["certificates_of", "check_detached", "sign_detached", "signature_value"]
