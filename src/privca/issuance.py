"""Issuance: validate requests, record the intent, sign, record the certificate.

The rule "record, then sign, then record, then return" lives in `record_and_sign`, the one
path to a signature on anything the inventory lists (leaves and OCSP responders alike).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from privca._time import utcnow
from privca.errors import InputError, PolicyError
from privca.keys.types import DEFAULT_LEAF_KEY, GeneratedPrivateKey, KeyType
from privca.policy import IssuancePolicy
from privca.registry import CaCertificate, Registry
from privca.store.inventory import Intent, Store
from privca.urls import leaf_urls
from privca.x509 import profiles
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    ca_subject,
    leaf_subject,
)
from privca.x509.constraints import constraint_violation
from privca.x509.csr import CertificateRequest
from privca.x509.encoding import der_certificate, pem_certificate, pem_certificates, public_key_der
from privca.x509.names import SubjectName, files_stem
from privca.x509.profiles import Profile

# Leaves start a little in the past so a client whose clock lags does not reject them.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed, recorded certificate; `private_key` only when privca generated it."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the CA certificates above it, root last
    names: tuple[SubjectName, ...]
    profile: str
    private_key: GeneratedPrivateKey | None = None
    ignored_extensions: tuple[str, ...] = field(default=())
    # During a root rollover: the cross-certificate that leads clients trusting only the
    # old root to the new one (see Registry.cross_for).
    cross: tuple[x509.Certificate, ...] = field(default=())

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def file_stem(self) -> str:
        return files_stem(self.names)

    def generated_key(self) -> GeneratedPrivateKey:
        """The key privca generated for this certificate.

        Raises:
            InputError: the certificate was signed from a CSR, whose key stays with the
                applicant.
        """
        if self.private_key is None:
            raise InputError(
                "this certificate was signed from a CSR: its key is not privca's to write",
                hint="write only the certificate and chain for a CSR's certificate",
            )
        return self.private_key

    def certificate_pem(self) -> bytes:
        return pem_certificate(self.certificate)

    def chain_pem(self) -> bytes:
        """Leaf + intermediates (+ the cross-certificate during a root rollover): what a
        server sends (the root is the client's anchor)."""
        return self.chain_new_pem() + pem_certificates(list(self.cross))

    def chain_new_pem(self) -> bytes:
        """Leaf + intermediates up to the newest root, for clients that already trust it."""
        return self.certificate_pem() + _intermediates_pem(self.chain)


@functools.lru_cache(maxsize=8)
def _intermediates_pem(chain: tuple[x509.Certificate, ...]) -> bytes:
    # Shared by every certificate of a batch: encode the CA certificates once.
    return pem_certificates([c for c in chain if c.subject != c.issuer])


def public_key_sha256(public_key: PublicKeyTypes) -> str:
    """The key hash the inventory keeps (blocked keys, key reuse)."""
    return hashlib.sha256(public_key_der(public_key)).hexdigest()


def record_and_sign(
    store: Store,
    intents: Sequence[Intent],
    build: Callable[[int, int], x509.Certificate],
    now: dt.datetime,
) -> list[x509.Certificate]:
    """Record `intents`, sign each (`build(index, serial)`), record the certificates; only
    then are they returned. Intents whose signing failed are marked failed (their serials
    are never reused)."""
    serials = store.reserve(intents, now)
    signed: list[x509.Certificate] = []
    try:
        for index, serial in enumerate(serials):
            signed.append(build(index, serial))
    except BaseException:
        with contextlib.suppress(Exception):
            store.abandon(serials[len(signed) :], utcnow(), "signing failed")
        raise
    # The intents go along so the audit entries need not read back what was just reserved.
    store.complete(
        [(cert.serial_number, der_certificate(cert)) for cert in signed], utcnow(), intents
    )
    return signed


def validity(
    policy: IssuancePolicy,
    profile: Profile,
    issuer: x509.Certificate,
    days: int | None,
    now: dt.datetime,
) -> tuple[dt.datetime, dt.datetime]:
    """notBefore and notAfter of a leaf: `days` (checked by the policy), or the profile's
    default capped silently by the policy and the issuing CA's own life."""
    issuer_not_after = issuer.not_valid_after_utc
    if days is None:
        days = min(profile.default_days, policy.max_days)
        not_after = min(now + dt.timedelta(days=days), issuer_not_after)
    else:
        policy.check_days(days)
        not_after = now + dt.timedelta(days=days)
        policy.check_not_after(not_after, issuer_not_after, days)
    if not_after <= now:
        raise PolicyError(
            "the issuing CA has expired", "rotate the issuing CA (privca rotate issuing)"
        )
    return max(now - BACKDATE, issuer.not_valid_before_utc), not_after


def check_common_name(
    policy: IssuancePolicy, text: str, names: Sequence[SubjectName], profile: Profile
) -> str:
    """The CN as it goes into the certificate, once the profile and policy allow it."""
    from privca._text import printable
    from privca.x509.subject import names_to_check, parse_common_name

    common_name = parse_common_name(text)
    for name in names_to_check(common_name, names, profile):
        try:
            policy.check_name(name)
        except PolicyError as exc:
            value = common_name.value_for(names)
            hint = "leave --cn out, or choose a CN inside the policy"
            if name.kind == "dns" and name.value == value.lower():
                hint = (
                    "OpenSSL checks a dotted CN against the CA's DNS name constraints "
                    "when the certificate has no DNS name; add a DNS name or pick "
                    "another CN"
                )
            raise PolicyError(
                f"subject CN '{printable(value, 80)}' is refused: {exc.message}", hint
            ) from exc
    return common_name.value_for(names)


@dataclass(frozen=True)
class LeafIssuance:
    """Leaves signed by one issuing CA under one policy: all requests are validated before
    any is signed (all or nothing)."""

    store: Store
    registry: Registry
    policy: IssuancePolicy
    base_url: str
    issuer: CaCertificate
    signer: Callable[[], Issuer]  # the unlocked issuing CA, loaded once validation passed

    def _check(
        self, requests: Sequence[CertificateRequest], leaf: Profile, strict: bool
    ) -> list[str | None]:
        """Every request against the policy; returns each one's CN (None: the default)."""
        common_names: list[str | None] = []
        for request in requests:
            if strict:
                request.check_strict()
            self.policy.check_names(request.names)
            common_names.append(
                None
                if request.common_name is None
                else check_common_name(self.policy, request.common_name, request.names, leaf)
            )
            self.policy.check_public_key(request.public_key)
            ca = self.registry.by_public_key(public_key_der(request.public_key))
            if ca is not None:
                raise PolicyError(
                    f"{request.source} carries the public key of the {ca.role} CA",
                    "a service must have its own key; generate a new one",
                )
        return common_names

    def _check_constraints(
        self, requests: Sequence[CertificateRequest], subjects: Sequence[x509.Name]
    ) -> None:
        """Every leaf inside the name constraints its CA certificates carry (and, during a
        rollover, the cross-certificate's): the policy says the same for a CA privca made,
        but an adopted CA's certificates may constrain what its privca.toml does not, and
        a hand-edited [policy] may permit more than the certificates do. A leaf outside
        them is refused by every client that checks (openssl verify: error 47)."""
        chain = (*self.registry.chain_of(self.issuer), *self.registry.cross_for(self.issuer))
        for request, subject in zip(requests, subjects, strict=True):
            problem = constraint_violation(request.names, subject, chain)
            if problem is not None:
                raise PolicyError(
                    problem,
                    "only names inside the issuing CA's name constraints can be certified "
                    "(`openssl x509 -noout -ext nameConstraints -in` its certificate)",
                )

    def _check_not_blocked(
        self, requests: Sequence[CertificateRequest], key_hashes: Sequence[str]
    ) -> None:
        blocked = self.store.blocked(key_hashes)
        for request, key_hash in zip(requests, key_hashes, strict=True):
            if key_hash in blocked:
                raise PolicyError(
                    f"{request.source} carries a public key revoked for keyCompromise",
                    "generate a new key; a compromised key is never certified again",
                )

    def sign(
        self,
        requests: Sequence[CertificateRequest],
        *,
        profile: str,
        days: int | None,
        strict: bool,
        now: dt.datetime,
        progress: Callable[[int], None] | None = None,
    ) -> list[IssuedCertificate]:
        leaf = profiles.leaf_profile(profile)
        not_before, not_after = validity(self.policy, leaf, self.issuer.certificate, days, now)
        common_names = self._check(requests, leaf, strict)
        key_hashes = [public_key_sha256(request.public_key) for request in requests]
        self._check_not_blocked(requests, key_hashes)
        subjects = [
            leaf_subject(request.names, common_name)
            for request, common_name in zip(requests, common_names, strict=True)
        ]
        self._check_constraints(requests, subjects)
        signer = self.signer()
        urls = leaf_urls(self.base_url, self.issuer.serial)
        intents = [
            Intent(
                issuer_id=self.issuer.id,
                profile=leaf.name,
                names=tuple(str(n) for n in request.names),
                subject=subject.rfc4514_string(),
                not_before=not_before,
                not_after=not_after,
                public_key_sha256=key_hash,
            )
            for request, subject, key_hash in zip(requests, subjects, key_hashes, strict=True)
        ]

        def build(index: int, serial: int) -> x509.Certificate:
            request = requests[index]
            spec = CertificateSpec(
                subject=subjects[index],
                public_key=request.public_key,
                profile=leaf,
                serial=serial,
                not_before=not_before,
                not_after=not_after,
                names=request.names,
                crl_url=urls.crl,
                ocsp_url=urls.ocsp,
                ca_issuers_url=urls.ca_issuers,
            )
            certificate = build_certificate(spec, signer)
            if progress is not None:
                progress(index + 1)
            return certificate

        signed = record_and_sign(self.store, intents, build, now)
        chain = self.registry.chain_of(self.issuer)
        cross = self.registry.cross_for(self.issuer)
        return [
            IssuedCertificate(
                certificate=cert,
                chain=chain,
                cross=cross,
                names=request.names,
                profile=leaf.name,
                ignored_extensions=request.ignored,
            )
            for cert, request in zip(signed, requests, strict=True)
        ]


def issue_ocsp_responder(
    store: Store, authority: CaCertificate, signer: Issuer, days: int, now: dt.datetime
) -> tuple[x509.Certificate, GeneratedPrivateKey]:
    """A delegated OCSP responder certificate (OCSPSigning, ocsp-nocheck) for one CA and
    its new key, recorded like any other certificate before it is returned."""
    key = DEFAULT_LEAF_KEY.generate()
    subject = ca_subject(f"{authority.label[:44]} OCSP Responder")
    not_before = max(now - BACKDATE, signer.not_before_or(now))
    not_after = min(now + dt.timedelta(days=days), signer.not_after or now)
    intent = Intent(
        issuer_id=authority.id,
        profile=profiles.OCSP_RESPONDER.name,
        names=(),
        subject=subject.rfc4514_string(),
        not_before=not_before,
        not_after=not_after,
        public_key_sha256=public_key_sha256(key.public_key()),
    )

    def build(_index: int, serial: int) -> x509.Certificate:
        spec = CertificateSpec(
            subject=subject,
            public_key=key.public_key(),
            profile=profiles.OCSP_RESPONDER,
            serial=serial,
            not_before=not_before,
            not_after=not_after,
        )
        return build_certificate(spec, signer)

    [certificate] = record_and_sign(store, [intent], build, now)
    return certificate, key


def kept_common_name(
    policy: IssuancePolicy,
    certificate: x509.Certificate,
    names: Sequence[SubjectName],
    profile: str,
) -> str | None:
    """The CN a renewal keeps: the old one, when it differs from the default and the
    rules still allow it (a hand-made certificate's odd CN is dropped, as before)."""
    from cryptography.x509.oid import NameOID

    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes or certificate.subject == leaf_subject(names):
        return None
    try:
        return check_common_name(
            policy, str(attributes[0].value), names, profiles.leaf_profile(profile)
        )
    except InputError:
        return None


def check_key_type_allowed(policy: IssuancePolicy, key_type: KeyType) -> None:
    """Refuse a key type the policy does not allow, before generating one."""
    if key_type not in policy.key_types:
        raise PolicyError(
            f"key type {key_type.value} is not allowed by the policy",
            "allowed: " + ", ".join(k.value for k in policy.key_types),
        )


__all__ = [
    "BACKDATE",
    "IssuedCertificate",
    "LeafIssuance",
    "check_common_name",
    "check_key_type_allowed",
    "issue_ocsp_responder",
    "kept_common_name",
    "public_key_sha256",
    "record_and_sign",
    "validity",
]
