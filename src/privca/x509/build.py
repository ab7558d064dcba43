"""Build certificates and CSRs. The only module that calls `.sign()`.

Pure: keys, names, times and serials come in; certificates come out. The signing key may
be any cryptography private key, including a subclass whose sign() calls an HSM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from privca.x509.constraints import build_name_constraints
from privca.x509.names import NameSubtree, SubjectName
from privca.x509.profiles import Profile

_MAX_CN = 64


@dataclass(frozen=True)
class Issuer:
    """Who signs: the subject, the key identifier clients chain by, and the signing key."""

    name: x509.Name
    key_identifier: bytes
    private_key: Any
    not_after: dt.datetime | None = None

    not_before: dt.datetime | None = None
    certificate: x509.Certificate | None = None

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate, private_key: Any) -> Issuer:
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
    public_key: Any
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


def signature_hash_for(private_key: Any) -> hashes.HashAlgorithm | None:
    """The hash to sign with, matched to the key's strength; None for Ed25519 (pure EdDSA)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return hashes.SHA384() if private_key.curve.key_size >= 384 else hashes.SHA256()
    return hashes.SHA256()


def subject_key_identifier(certificate: x509.Certificate) -> bytes:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def ca_subject(common_name: str) -> x509.Name:
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


def _key_usage(profile: Profile, public_key: Any) -> x509.KeyUsage:
    ca = profile.is_ca
    encipher = not ca and isinstance(public_key, rsa.RSAPublicKey) and not profile.ocsp_no_check
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_certificate(spec: CertificateSpec, issuer: Issuer | None) -> x509.Certificate:
    """Build and sign. `issuer=None` is not allowed for leaves; roots pass their own Issuer."""
    if issuer is None:
        raise ValueError("an issuer is required")
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
    if profile.extended_key_usages:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(profile.extended_key_usages)), critical=False
        )
    if spec.names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([n.general_name() for n in spec.names]),
            critical=len(spec.subject) == 0,
        )
    constraints = build_name_constraints(spec.permitted, spec.excluded)
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    if profile.ocsp_no_check:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    if spec.crl_url and not profile.ocsp_no_check:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(spec.crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    access = []
    if spec.ocsp_url and not profile.ocsp_no_check:
        access.append(
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(spec.ocsp_url),
            )
        )
    if spec.ca_issuers_url:
        access.append(
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(spec.ca_issuers_url),
            )
        )
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder.sign(issuer.private_key, signature_hash_for(issuer.private_key))


def sign_builder(builder: Any, private_key: Any) -> Any:
    """Sign a CRL or OCSP response builder with the hash matched to the key."""
    return builder.sign(private_key, signature_hash_for(private_key))


def self_issuer(subject: x509.Name, private_key: Any) -> Issuer:
    """The Issuer of a self-signed root: its own name and key identifier."""
    return Issuer(
        name=subject,
        key_identifier=x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()).digest,
        private_key=private_key,
    )


def build_csr(
    private_key: Any, names: Sequence[SubjectName], common_name: str | None = None
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
