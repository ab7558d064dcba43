"""New CA certificates for an established CA: a new issuing CA under the same root, and a
root re-issued from its own key. Also the CA validity rule and the certificate files
(certs/root.crt, issuing.crt, chain.pem), shared with establishing a home.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from privca.errors import InputError, PolicyError
from privca.home import CAHome
from privca.issuance import BACKDATE
from privca.keys.custody import GeneratedKey, HomeCustody
from privca.keys.types import DEFAULT_ISSUING_KEY, KeyType, key_type_of
from privca.policy import IssuancePolicy
from privca.registry import CROSS_ROLES, CaCertificate, CaRole, Registry
from privca.store.authorities import NewAuthorityRow
from privca.store.inventory import Store
from privca.store.records import ValidLeaves
from privca.store.serials import random_serial
from privca.store.view import InventoryView
from privca.urls import issuing_ca_urls
from privca.x509 import profiles
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    ca_subject,
    self_issuer,
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
    store: Store,
    role: str,
    certificate: x509.Certificate,
    key_ref: str,
    now: dt.datetime,
    cause: str | None = None,
) -> int:
    """Record a new active CA certificate of `role` (`cause`: why, for the audit log);
    returns its id."""
    return store.add_authorities([authority_row(role, certificate, key_ref)], now, cause=cause)[0]


def authority_row(role: str, certificate: x509.Certificate, key_ref: str) -> NewAuthorityRow:
    """The inventory row of a new active CA certificate."""
    return NewAuthorityRow(
        role,
        certificate.subject.rfc4514_string(),
        certificate.serial_number,
        der_certificate(certificate),
        key_ref,
        certificate.not_valid_after_utc,
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


def issuing_ca(
    custody: HomeCustody,
    key_type: KeyType,
    beside: str,
    signer: Issuer,
    name: str,
    policy: IssuancePolicy,
    base_url: str,
    days: int,
    now: dt.datetime,
) -> tuple[GeneratedKey, x509.Certificate]:
    """A new issuing CA key (kept `beside` the signer's: file or token, not yet kept) and
    its certificate signed by `signer`."""
    serial = random_serial()
    key: GeneratedKey = custody.generate(
        key_type, "issuing", f"issuing-{serial_hex(serial)[:12]}", beside=beside
    )
    cert = build_issuing_ca(
        subject=ca_subject(f"{name} Issuing CA {serial_hex(serial)[:8]}"),
        public_key=key.private_key.public_key(),
        root=signer,
        policy=policy,
        base_url=base_url,
        serial=serial,
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=days),
    )
    return key, cert


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
    issuer: str | None = None,
    before_record: Callable[[x509.Certificate], None] | None = None,
) -> x509.Certificate:
    """A new issuing CA key (where the root key is: file or token) and certificate for
    `issuer` (None: the default issuer; `policy` is already narrowed to it); the root key
    (`root`) is unlocked once everything else has been checked. `before_record` gets the
    certificate before it is recorded (to write what goes with it first); if it or the
    record fails, the new key file is removed."""
    check_ca_days(days, "issuing CA")
    root_ca = registry.root
    if min(now + dt.timedelta(days=days), root_ca.not_after) <= now:
        raise PolicyError("the root has expired; a new issuing CA cannot be made under it")
    issuer = registry.issuer(issuer).name if registry.issuers else None
    current = registry.active_issuing(issuer) or registry.active(CaRole.ISSUING)
    if key_type is None:
        key_type = key_type_of(current.certificate.public_key()) if current else DEFAULT_ISSUING_KEY
    key, cert = issuing_ca(
        custody, key_type, root_ca.key_ref, root(), name, policy, base_url, days, now
    )
    row = dataclasses.replace(authority_row(CaRole.ISSUING, cert, key.key_ref), issuer=issuer)
    with kept_until_recorded(custody, [key]):
        if before_record is not None:
            before_record(cert)
        store.add_authorities([row], now, cause="rotate issuing")
    return cert


@contextlib.contextmanager
def kept_until_recorded(custody: HomeCustody, keys: Sequence[GeneratedKey]) -> Iterator[None]:
    """Keep `keys` for the block that records them (keys first: a record never names a
    key that is not kept); if the block fails, remove the key files this kept, so a failed
    rotate or issuer create (a locked store) leaves no CA key that no record names. A key
    generated on a token stays there: it is not a file."""
    files: list[Path] = []
    try:
        for key in keys:
            path = custody.keep(key)
            if path is not None:
                files.append(path)
        yield
    except BaseException:
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


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
    if days is not None:
        check_ca_days(days, "root")  # before the date: a huge one overflows
    not_after = now + dt.timedelta(days=days) if days is not None else old.not_valid_after_utc
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
    record_authority(store, CaRole.ROOT, cert, root_ca.key_ref, now, "root re-issued, same key")
    return cert


@dataclasses.dataclass(frozen=True)
class Rollover:
    """What `rotate root --new-key` made: the new root, the cross-certificate (the new
    root signed by the old), the reverse one if asked (the old root signed by the new) and
    the new issuing CA under the new root."""

    root: x509.Certificate
    cross: x509.Certificate
    issuing: x509.Certificate | None  # None for a single-tier CA
    reverse_cross: x509.Certificate | None = None
    # Every issuer that got a new issuing CA under the new root, by name (the default's
    # is `issuing` too).
    issuers: tuple[tuple[str, x509.Certificate], ...] = ()


def build_cross_certificate(
    subject: x509.Certificate,
    signer: Issuer,
    policy: IssuancePolicy,
    base_url: str,
    now: dt.datetime,
) -> x509.Certificate:
    """The root `subject`'s name, key and key identifier, signed by the other root
    `signer` (AKI = the signer's SKI), valid only while both roots are, with the root
    profile's CA extensions, and the signer's CRL and certificate URLs: a client that
    trusts the signer reaches `subject`'s hierarchy through it. The new root signed by the
    old is the cross-certificate; the old signed by the new, the reverse one."""
    if signer.certificate is None:
        raise PolicyError("the signing root certificate is not known")
    not_before = max(
        now - BACKDATE, subject.not_valid_before_utc, signer.certificate.not_valid_before_utc
    )
    not_after = min(subject.not_valid_after_utc, signer.certificate.not_valid_after_utc)
    urls = issuing_ca_urls(base_url, signer.certificate.serial_number)
    return build_certificate(
        CertificateSpec(
            subject=subject.subject,
            public_key=subject.public_key(),
            profile=profiles.ROOT,
            serial=random_serial(),
            not_before=not_before,
            not_after=not_after,
            permitted=policy.permitted,
            excluded=policy.excluded,
            crl_url=urls.crl,
            ca_issuers_url=urls.ca_issuers,
            subject_key_identifier=subject_key_identifier(subject),
        ),
        signer,
    )


def rollover_root(
    *,
    store: Store,
    registry: Registry,
    custody: HomeCustody,
    old_root: Callable[[], Issuer],
    policy: IssuancePolicy,
    name: str,
    single_tier: bool,
    base_url: str,
    key_type: KeyType | None,
    days: int,
    issuing_days: int,
    now: dt.datetime,
    reverse_cross: bool = False,
    issuing_for: Sequence[tuple[str, IssuancePolicy]] = (),
) -> Rollover:
    """A new root key and self-signed certificate (kept where the old root key is: an
    encrypted file or the token), its cross-certificate signed by the old root, with
    `reverse_cross` the old root signed by the new, and a new issuing CA under the new
    root for each issuer of `issuing_for` (name and narrowed policy; the default issuer
    first; empty: one for the default issuer under `policy`); recorded root, cross,
    reverse cross, issuing CAs, in that order."""
    check_ca_days(days, "root")
    check_ca_days(issuing_days, "issuing CA")
    current = registry.root
    if current.not_after <= now:
        raise PolicyError(
            "the old root has expired; it can no longer cross-sign a new root",
            "make a new CA with privca init and distribute its root",
        )
    if registry.cross is not None:
        raise PolicyError(
            "a root rollover is already under way",
            "finish it first: privca rotate status, then privca rotate root --retire-old",
        )
    if key_type is None:
        key_type = key_type_of(current.certificate.public_key())
    signer = old_root()
    serial = random_serial()
    tag = serial_hex(serial)[:8]
    root_key: GeneratedKey = custody.generate(
        key_type, "root", f"root-{serial_hex(serial)[:12]}", beside=current.key_ref
    )
    subject = ca_subject(f"{name} Root {tag}")
    root_cert = build_certificate(
        CertificateSpec(
            subject=subject,
            public_key=root_key.private_key.public_key(),
            profile=profiles.ROOT,
            serial=serial,
            not_before=now - BACKDATE,
            not_after=now + dt.timedelta(days=days),
            permitted=policy.permitted,
            excluded=policy.excluded,
        ),
        self_issuer(subject, root_key.private_key),
    )
    new_root_signer = Issuer.from_certificate(root_cert, root_key.private_key)
    cross = build_cross_certificate(root_cert, signer, policy, base_url, now)
    reverse = (
        build_cross_certificate(current.certificate, new_root_signer, policy, base_url, now)
        if reverse_cross
        else None
    )
    made: list[tuple[str | None, GeneratedKey, x509.Certificate]] = []
    targets: Sequence[tuple[str | None, IssuancePolicy]] = issuing_for or [(None, policy)]
    for index, (issuer, issuer_policy) in enumerate(targets):
        if single_tier and index == 0:
            continue  # the new root signs for the default issuer itself
        current_ca = registry.active_issuing(issuer) if issuer else registry.active(CaRole.ISSUING)
        key, cert = issuing_ca(
            custody,
            key_type_of(current_ca.certificate.public_key()) if current_ca else DEFAULT_ISSUING_KEY,
            current.key_ref,
            new_root_signer,
            name if index == 0 else f"{name} {issuer}",
            issuer_policy,
            base_url,
            issuing_days,
            now,
        )
        made.append((issuer, key, cert))
    issuing_cert = made[0][2] if made and not single_tier else None
    # One transaction: a rollover half recorded (a root without its cross-certificate)
    # would strand clients that trust only the old root.
    rows = [
        authority_row(CaRole.ROOT, root_cert, root_key.key_ref),
        authority_row(CaRole.CROSS, cross, root_key.key_ref),
    ]
    if reverse is not None:
        rows.append(authority_row(CaRole.REVERSE_CROSS, reverse, current.key_ref))
    for issuer, key, cert in made:
        row = authority_row(CaRole.ISSUING, cert, key.key_ref)
        rows.append(dataclasses.replace(row, issuer=issuer))
    with kept_until_recorded(custody, [root_key, *(key for _issuer, key, _cert in made)]):
        store.add_authorities(rows, now, unless_active=CaRole.CROSS, cause="root rollover, new key")
    return Rollover(
        root=root_cert,
        cross=cross,
        issuing=issuing_cert,
        reverse_cross=reverse,
        issuers=tuple((issuer, cert) for issuer, _key, cert in made if issuer is not None),
    )


@dataclasses.dataclass(frozen=True)
class RolloverStatus:
    """Where a root rollover stands (`privca rotate status`)."""

    roots: tuple[CaCertificate, ...]  # the roots clients should trust now, oldest first
    cross: CaCertificate | None  # the cross-certificate while the transition lasts
    old_leaves: int  # valid leaves whose only path is to the old root
    last_old_leaf_expires: dt.datetime | None
    # The same leaves counted by the named issuer that signed them ("" when none), by name.
    old_leaves_by_issuer: tuple[tuple[str, int], ...] = ()

    @property
    def in_transition(self) -> bool:
        return self.cross is not None

    @property
    def old_root_retirable(self) -> bool:
        """True when nothing valid depends on the old root any more."""
        return self.in_transition and self.old_leaves == 0


def old_hierarchy(registry: Registry) -> set[int]:
    """The ids of the CAs whose chain ends at the old root of a rollover under way."""
    previous = registry.previous_root
    if previous is None:
        return set()
    return _under(registry, {previous.key_identifier})


def retired_hierarchy(registry: Registry) -> set[int]:
    """The ids of the CAs whose chain ends at a root retired by a rollover that ended
    (trusted by no client that follows this CA any more)."""
    return _under(registry, _retired_root_keys(registry))


def under_retired_root(registry: Registry, entry: CaCertificate) -> bool:
    """Whether `entry` is one of retired_hierarchy (without walking every CA's chain)."""
    retired = _retired_root_keys(registry)
    return bool(retired) and subject_key_identifier(registry.chain_of(entry)[-1]) in retired


def under_old_root(registry: Registry, entry: CaCertificate) -> bool:
    """Whether `entry` is an issuing CA under the old root of a rollover under way: one
    the rollover passed by (its issuer was disabled then), whose certificates clients
    that trust only the new root do not accept."""
    previous = registry.previous_root
    if previous is None or entry.role != CaRole.ISSUING:
        return False
    return subject_key_identifier(registry.chain_of(entry)[-1]) == previous.key_identifier


def _retired_root_keys(registry: Registry) -> set[bytes]:
    trusted = {r.key_identifier for r in registry.trusted_roots}
    return {r.key_identifier for r in registry.roots} - trusted


def _under(registry: Registry, root_keys: set[bytes]) -> set[int]:
    if not root_keys:
        return set()
    return {
        entry.id
        for entry in registry.authorities
        if entry.role not in CROSS_ROLES
        and subject_key_identifier(registry.chain_of(entry)[-1]) in root_keys
    }


# Certificates privca makes and replaces for itself (`privca renew` cannot renew them):
# never counted as leaves left to renew before or after a rollover.
OWN_PROFILES = (profiles.OCSP_RESPONDER.name, profiles.AUDIT_SIGNER.name)


def rollover_status(
    registry: Registry, inventory: InventoryView, now: dt.datetime
) -> RolloverStatus:
    """The old hierarchy's valid certificates, counted by the inventory: one aggregate per
    CA, not a read of each certificate (a rollover may leave a million behind). Left out:
    OCSP responder and audit-signer certificates, which privca replaces under the new
    issuing CA itself when it next needs one (`privca renew` cannot renew them, and
    counting them held retirement back until they expired)."""
    old_ids = old_hierarchy(registry)
    valid = inventory.valid_by_issuer(old_ids, now, OWN_PROFILES)
    by_issuer: Counter[str] = Counter()
    for issuer_id, leaves in valid.items():
        by_issuer[registry.issuer_name_of(registry.by_id(issuer_id)) or ""] += leaves.count
    return RolloverStatus(
        roots=tuple(registry.trusted_roots),
        cross=registry.cross,
        old_leaves=sum(leaves.count for leaves in valid.values()),
        last_old_leaf_expires=max((leaves.last_expiry for leaves in valid.values()), default=None),
        old_leaves_by_issuer=tuple(sorted(by_issuer.items())),
    )


def left_under_retired_root(
    registry: Registry, inventory: InventoryView, now: dt.datetime
) -> ValidLeaves | None:
    """The valid certificates that chain only to a root retired by a rollover (`--retire-old
    --force`), as one count and the last expiry, or None when there are none: listed as
    valid, yet no client that trusts only the current root accepts them. Counted in SQL,
    OWN_PROFILES left out (privca replaces those itself)."""
    retired = retired_hierarchy(registry)
    valid = inventory.valid_by_issuer(retired, now, OWN_PROFILES) if retired else {}
    if not valid:
        return None
    return ValidLeaves(
        sum(leaves.count for leaves in valid.values()),
        max(leaves.last_expiry for leaves in valid.values()),
    )


def check_retirable(status: RolloverStatus, force: bool) -> None:
    """PolicyError unless the old root may be retired now."""
    if not status.in_transition:
        raise PolicyError(
            "no root rollover is under way", "start one with privca rotate root --new-key"
        )
    if status.old_leaves and not force:
        last = status.last_old_leaf_expires
        raise PolicyError(
            f"{status.old_leaves} valid certificate(s) still chain only to the old root"
            + (f" (the last expires {last:%Y-%m-%d})" if last else ""),
            "renew them (privca renew), wait, or retire anyway with --force",
        )


__all__ = [
    "MAX_CA_DAYS",
    "Rollover",
    "RolloverStatus",
    "build_cross_certificate",
    "build_issuing_ca",
    "ca_certificate_files",
    "check_ca_days",
    "check_retirable",
    "issuing_ca",
    "old_hierarchy",
    "record_authority",
    "reissue_root",
    "rollover_root",
    "rollover_status",
    "rotate_issuing",
    "under_old_root",
]
