"""Certificate revocation lists. Built in one constructor call: the fluent
add_revoked_certificate() copies the list on every call, which is O(n^2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from privca.x509.build import Issuer, sign_builder
from privca.x509.encoding import is_pem

REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "caCompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}

# What a CA certificate's revocation may say: a meaningful reason, never "unspecified"
# (the CA/Browser Forum's rule for CA certificates, which relying parties expect).
CA_REASONS = (
    "caCompromise",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: dt.datetime
    reason: str | None


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL file's CRL, PEM or DER.

    Raises:
        ValueError: it holds none.
    """
    return x509.load_pem_x509_crl(data) if is_pem(data) else x509.load_der_x509_crl(data)


def is_crl_of(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    """Whether `ca` issued `crl`: its name, and its key made the signature."""
    try:
        return crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except TypeError:  # a key type that signs no CRL
        return False


def reason_of(entry: x509.RevokedCertificate) -> str:
    """A CRL entry's reason by its RFC 5280 name ("unspecified" when it names none)."""
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "unspecified"
    return next((name for name, known in REASONS.items() if known == flag), flag.value)


def reason_flag(reason: str | None) -> x509.ReasonFlags | None:
    """RFC 5280 5.3.1: 'unspecified' SHOULD be expressed by leaving the reason out."""
    if reason is None or reason == "unspecified":
        return None
    return REASONS[reason]


def _revoked(entry: Revocation) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(entry.revoked_at)
    )
    flag = reason_flag(entry.reason)
    if flag is not None:
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def build_crl(
    issuer: Issuer,
    entries: Sequence[Revocation],
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> x509.CertificateRevocationList:
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.name,
        last_update=this_update,
        next_update=next_update,
        extensions=[
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier(issuer.key_identifier, None, None),
            ),
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
        ],
        revoked_certificates=[_revoked(entry) for entry in entries],
    )
    return sign_builder(builder, issuer.private_key)
