"""New CA certificates for an established CA: a new issuing CA under the same root, and a
root re-issued from its own key. Also the CA validity rule and the certificate files
(certs/root.crt, issuing.crt, chain.pem), shared with establishing a home.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from privca.errors import InputError, PolicyError
from privca.home import CAHome
from privca.issuance import BACKDATE
from privca.keys.custody import GeneratedKey, HomeCustody
from privca.keys.types import DEFAULT_ISSUING_KEY, KeyType, key_type_of
from privca.policy import IssuancePolicy
from privca.registry import CaCertificate, CaRole, Registry
from privca.store.inventory import Store
from privca.store.serials import random_serial
from privca.urls import issuing_ca_urls
from privca.x509 import profiles
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    ca_subject,
    subject_key_identifier,
)
from privca.x509.encoding import der_certificate, pem_certificate, pem_certificates, serial_hex

MAX_CA_DAYS = 36500
PUBLIC = 0o644


def check_ca_days(days: int, what: str) -> None:
    """The validity of a CA certificate, in days (InputError when out of range)."""
    if days <= 0 or days > MAX_CA_DAYS:
        raise InputError(
            f"{what} validity of {days} days is out of range", f"use 1 to {MAX_CA_DAYS} days"
        )


def build_issuing_ca(
    *,
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    root: Issuer,
    policy: IssuancePolicy,
    base_url: str,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """An issuing CA certificate under `root`, carrying the policy's name constraints."""
    if root.certificate is None:
        raise PolicyError("the root certificate is not known")
    urls = issuing_ca_urls(base_url, root.certificate.serial_number)
    spec = CertificateSpec(
        subject=subject,
        public_key=public_key,
        profile=profiles.ISSUING,
        serial=serial,
        not_before=not_before,
        not_after=min(not_after, root.certificate.not_valid_after_utc),
        permitted=policy.permitted,
        excluded=policy.excluded,
        ca_issuers_url=urls.ca_issuers,
        crl_url=urls.crl,
    )
    return build_certificate(spec, root)


def record_authority(
    store: Store, role: str, certificate: x509.Certificate, key_ref: str, now: dt.datetime
) -> int:
    """Record a new active CA certificate of `role`; returns its id."""
    return store.add_authority(
        role,
        certificate.subject.rfc4514_string(),
        certificate.serial_number,
        der_certificate(certificate),
        key_ref,
        certificate.not_valid_after_utc,
        now,
        active=True,
    )


def ca_certificate_files(
    home: CAHome,
    chain: Sequence[x509.Certificate],
    *,
    root: x509.Certificate | None = None,
    issuing: x509.Certificate | None = None,
    root_pem: bytes | None = None,
) -> list[tuple[Path, bytes, int]]:
    """certs/chain.pem (the CA certificates above a new leaf, root last), and root.crt
    and issuing.crt when given (`root_pem`: an adopted root's file exactly as it was)."""
    files: list[tuple[Path, bytes, int]] = []
    if root is not None:
        files.append((home.root_cert, root_pem or pem_certificate(root), PUBLIC))
    if issuing is not None:
        files.append((home.issuing_cert, pem_certificate(issuing), PUBLIC))
    files.append((home.chain, pem_certificates(list(chain)), PUBLIC))
    return files


def rotate_issuing(
    *,
    store: Store,
    registry: Registry,
    custody: HomeCustody,
    root: Callable[[], Issuer],
    policy: IssuancePolicy,
    name: str,
    base_url: str,
    key_type: KeyType | None,
    days: int,
    now: dt.datetime,
) -> x509.Certificate:
    """A new issuing CA key (where the root key is: file or token) and certificate; the
    root key (`root`) is unlocked once everything else has been checked."""
    check_ca_days(days, "issuing CA")
    root_ca = registry.root
    if min(now + dt.timedelta(days=days), root_ca.not_after) <= now:
        raise PolicyError("the root has expired; a new issuing CA cannot be made under it")
    current = registry.active(CaRole.ISSUING)
    if key_type is None:
        key_type = key_type_of(current.certificate.public_key()) if current else DEFAULT_ISSUING_KEY
    root_signer = root()
    serial = random_serial()
    key: GeneratedKey = custody.generate(
        key_type, "issuing", f"issuing-{serial_hex(serial)[:12]}", beside=root_ca.key_ref
    )
    cert = build_issuing_ca(
        subject=ca_subject(f"{name} Issuing CA {serial_hex(serial)[:8]}"),
        public_key=key.private_key.public_key(),
        root=root_signer,
        policy=policy,
        base_url=base_url,
        serial=serial,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=days),
    )
    custody.keep(key)
    record_authority(store, CaRole.ISSUING, cert, key.key_ref, now)
    return cert


def reissue_root(
    *,
    store: Store,
    root_ca: CaCertificate,
    signer: Callable[[], Issuer],
    policy: IssuancePolicy,
    days: int | None,
    now: dt.datetime,
) -> x509.Certificate:
    """The root again, from its own key and subject, with privca's root profile; its key
    identifier is kept, so everything the old one signed chains to the new one."""
    old = root_ca.certificate
    not_after = now + dt.timedelta(days=days) if days is not None else old.not_valid_after_utc
    if days is not None:
        check_ca_days(days, "root")
    if not_after <= now:
        raise PolicyError(
            "the root has expired; give --days for the re-issued root",
            "e.g. --days 3650",
        )
    # Keep the old key identifier: leaves and issuing CAs name it in their AKI.
    key_identifier = subject_key_identifier(old)
    issuer = dataclasses.replace(signer(), key_identifier=key_identifier)
    cert = build_certificate(
        CertificateSpec(
            subject=old.subject,
            public_key=old.public_key(),
            profile=profiles.ROOT,
            serial=random_serial(),
            not_before=now - BACKDATE,
            not_after=not_after,
            permitted=policy.permitted,
            excluded=policy.excluded,
            subject_key_identifier=key_identifier,
        ),
        issuer,
    )
    record_authority(store, CaRole.ROOT, cert, root_ca.key_ref, now)
    return cert


__all__ = [
    "MAX_CA_DAYS",
    "build_issuing_ca",
    "ca_certificate_files",
    "check_ca_days",
    "record_authority",
    "reissue_root",
    "rotate_issuing",
]
