"""Build certificates and CSRs. The only module that calls `.sign()`.

Pure: keys, names, times and serials come in; certificates come out. The signing key may
be any cryptography private key, including a subclass whose sign() calls an HSM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from privca.x509.constraints import build_name_constraints
from privca.x509.names import NameSubtree, SubjectName
from privca.x509.profiles import Profile

_MAX_CN = 64


@dataclass(frozen=True)
class Issuer:
    """Who signs: the subject, the key identifier clients chain by, and the signing key."""

    name: x509.Name
    key_identifier: bytes
    private_key: CertificateIssuerPrivateKeyTypes
    not_after: dt.datetime | None = None

    not_before: dt.datetime | None = None
    certificate: x509.Certificate | None = None

    @classmethod
    def from_certificate(
        cls, certificate: x509.Certificate, private_key: CertificateIssuerPrivateKeyTypes
    ) -> Issuer:
        return cls(
            name=certificate.subject,
            key_identifier=subject_key_identifier(certificate),
            private_key=private_key,
            not_after=certificate.not_valid_after_utc,
            not_before=certificate.not_valid_before_utc,
            certificate=certificate,
        )

    def not_before_or(self, default: dt.datetime) -> dt.datetime:
        return self.not_before or default


@dataclass(frozen=True)
class CertificateSpec:
    """Everything about one certificate except who signs it."""

    subject: x509.Name
    public_key: CertificatePublicKeyTypes
    profile: Profile
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[SubjectName, ...] = ()
    permitted: tuple[NameSubtree, ...] = ()
    excluded: tuple[NameSubtree, ...] = ()
    crl_url: str | None = None
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None
    # Only to keep an existing key identifier when a CA certificate is re-issued.
    subject_key_identifier: bytes | None = None


SignatureHash = hashes.SHA256 | hashes.SHA384


def signature_hash_for(private_key: CertificateIssuerPrivateKeyTypes) -> SignatureHash | None:
    """The hash to sign with, matched to the key's strength; None for EdDSA (pure EdDSA
    hashes internally)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return hashes.SHA384() if private_key.curve.key_size >= 384 else hashes.SHA256()
    return hashes.SHA256()


def subject_key_identifier(certificate: x509.Certificate) -> bytes:
    """The certificate's own key identifier, or the RFC 5280 method 1 hash of its key when
    it carries none (older CAs made by hand)."""
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def authority_key_identifier(certificate: x509.Certificate) -> bytes | None:
    """The key identifier of the CA that signed `certificate`, as clients chain by it."""
    try:
        return certificate.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier
        ).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        return None


def ca_subject(common_name: str) -> x509.Name:
    """A CA's subject: CN only, cut to the 64 characters X.509 allows."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:_MAX_CN])])


def leaf_subject(names: Sequence[SubjectName], common_name: str | None = None) -> x509.Name:
    """CN = `common_name` when given (checked by x509/subject.py), else the first DNS name
    when it fits; otherwise an empty subject (the SAN is then critical)."""
    if common_name is not None:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    for name in names:
        if name.kind == "dns" and len(name.value) <= _MAX_CN:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name.value)])
    return x509.Name([])


def _key_usage(profile: Profile, public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    ca = profile.is_ca
    encipher = not ca and isinstance(public_key, rsa.RSAPublicKey) and not profile.ocsp_no_check
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=profile.content_commitment,
        key_encipherment=encipher and not profile.content_commitment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _distribution_points(spec: CertificateSpec) -> x509.CRLDistributionPoints | None:
    # An OCSP responder's certificate is never checked for revocation (OCSPNoCheck).
    if not spec.crl_url or spec.profile.ocsp_no_check:
        return None
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(spec.crl_url)], None, None, None)
    return x509.CRLDistributionPoints([point])


def _authority_access(spec: CertificateSpec) -> x509.AuthorityInformationAccess | None:
    access = []
    if spec.ocsp_url and not spec.profile.ocsp_no_check:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(spec.ocsp_url)
            )
        )
    if spec.ca_issuers_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(spec.ca_issuers_url),
            )
        )
    return x509.AuthorityInformationAccess(access) if access else None


def _optional_extensions(spec: CertificateSpec) -> list[x509.Extension[x509.ExtensionType]]:
    """The extensions a certificate carries only when its profile or spec asks for them,
    each with its criticality (RFC 5280 4.2)."""
    profile = spec.profile
    found: list[tuple[x509.ExtensionType | None, bool]] = [
        (
            x509.ExtendedKeyUsage(list(profile.extended_key_usages))
            if profile.extended_key_usages
            else None,
            False,
        ),
        (
            x509.SubjectAlternativeName([n.general_name() for n in spec.names])
            if spec.names
            else None,
            # An empty subject leaves the SAN as the only identity: then it is critical.
            len(spec.subject) == 0,
        ),
        (build_name_constraints(spec.permitted, spec.excluded), True),
        (x509.OCSPNoCheck() if profile.ocsp_no_check else None, False),
        (_distribution_points(spec), False),
        (_authority_access(spec), False),
    ]
    return [
        x509.Extension(value.oid, critical, value) for value, critical in found if value is not None
    ]


def build_certificate(spec: CertificateSpec, issuer: Issuer) -> x509.Certificate:
    """Build and sign one certificate; a root passes its own Issuer (`self_issuer`).

    Raises:
        ValueError: cryptography's, when the spec is inconsistent (a serial or validity
            it refuses): privca's callers build specs that never are.
    """
    profile = spec.profile
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer.name)
        .public_key(spec.public_key)
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length),
            critical=True,
        )
        .add_extension(_key_usage(profile, spec.public_key), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier(spec.subject_key_identifier)
            if spec.subject_key_identifier is not None
            else x509.SubjectKeyIdentifier.from_public_key(spec.public_key),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier(issuer.key_identifier, None, None), critical=False
        )
    )
    for extension in _optional_extensions(spec):
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(issuer.private_key, signature_hash_for(issuer.private_key))


@overload
def sign_builder(
    builder: x509.CertificateRevocationListBuilder,
    private_key: CertificateIssuerPrivateKeyTypes,
) -> x509.CertificateRevocationList: ...


@overload
def sign_builder(
    builder: ocsp.OCSPResponseBuilder, private_key: CertificateIssuerPrivateKeyTypes
) -> ocsp.OCSPResponse: ...


def sign_builder(
    builder: x509.CertificateRevocationListBuilder | ocsp.OCSPResponseBuilder,
    private_key: CertificateIssuerPrivateKeyTypes,
) -> x509.CertificateRevocationList | ocsp.OCSPResponse:
    """Sign a CRL or OCSP response builder with the hash matched to the key."""
    return builder.sign(private_key, signature_hash_for(private_key))


def self_issuer(subject: x509.Name, private_key: CertificateIssuerPrivateKeyTypes) -> Issuer:
    """The Issuer of a self-signed root: its own name and key identifier."""
    return Issuer(
        name=subject,
        key_identifier=x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()).digest,
        private_key=private_key,
    )


def build_csr(
    private_key: CertificateIssuerPrivateKeyTypes,
    names: Sequence[SubjectName],
    common_name: str | None = None,
) -> x509.CertificateSigningRequest:
    """A CSR carrying the names as a SAN (and `common_name`, else the first DNS name, as
    CN), nothing else."""
    subject = leaf_subject(names, common_name)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(
            x509.SubjectAlternativeName([n.general_name() for n in names]),
            critical=len(subject) == 0,
        )
    )
    return builder.sign(private_key, signature_hash_for(private_key))
