"""ACME Renewal Information (RFC 9773): certificate ids and suggested renewal windows."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509

from privca.acme import messages
from privca.acme.issuer import CertificateInfo, CertificateIssuer
from privca.acme.problems import AcmeProblem

RETRY_AFTER_SECONDS = 6 * 3600
MAX_SERIAL_BYTES = 20  # RFC 5280 §4.1.2.2
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def ari_cert_id(certificate: x509.Certificate) -> str:
    """RFC 9773: base64url(AKI keyIdentifier) "." base64url(serial DER content octets)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = certificate.serial_number
    serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{_b64(aki.key_identifier or b'')}.{_b64(serial_bytes)}"


def certificate_by_ari_id(issuer: CertificateIssuer, cert_id: str) -> CertificateInfo:
    """The certificate this CA issued with this id (notFound, or malformed for a bad id)."""
    try:
        aki_text, serial_text = cert_id.split(".")
        _b64decode(aki_text)  # format only: the whole id is compared below
        serial_bytes = _b64decode(serial_text)
    except ValueError as exc:
        raise AcmeProblem("malformed", "the certificate id is not AKI.serial") from exc
    if len(serial_bytes) > MAX_SERIAL_BYTES or serial_bytes[0] & 0x80:
        raise AcmeProblem("malformed", "the serial in the certificate id is not valid")
    info = issuer.lookup(int.from_bytes(serial_bytes, "big"))
    if info is None or _ari_id_of(info) != cert_id:
        raise AcmeProblem("notFound", "no certificate with this id")
    return info


def _ari_id_of(info: CertificateInfo) -> str | None:
    try:
        return ari_cert_id(x509.load_der_x509_certificate(info.der))
    except x509.ExtensionNotFound:
        return None


def renewal_info(
    issuer: CertificateIssuer, cert_id: str, now: dt.datetime
) -> tuple[messages.RenewalInfo, int]:
    """The suggested window (now, for a revoked certificate or one whose issuing CA was
    revoked; else the middle of the last third of its life) and the Retry-After seconds."""
    info = certificate_by_ari_id(issuer, cert_id)
    if info.status == "revoked" or info.issuer_revoked:
        start, end = now - dt.timedelta(days=1), now
    else:
        lifetime = info.not_after - info.not_before
        start = info.not_before + lifetime * 2 / 3
        end = info.not_before + lifetime * 5 / 6
    window = messages.RenewalInfo.SuggestedWindow(start=start, end=end)
    return messages.RenewalInfo(suggested_window=window), RETRY_AFTER_SECONDS


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = ["RETRY_AFTER_SECONDS", "ari_cert_id", "certificate_by_ari_id", "renewal_info"]
