"""Write a checked AdoptionPlan into a new single-tier privca home, all or nothing.

The old CA certificate becomes certs/root.crt unchanged (clients already trust exactly
those bytes) and the old key becomes private/root.key, re-encrypted the privca way. The
CA signs services directly, as before; `privca rotate issuing` later moves to two tiers
under the same root, without touching a client trust store.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from privca._time import utcnow
from privca.adopt.plan import AdoptionPlan
from privca.authority import CertificateAuthority
from privca.establishment import (
    Founding,
    NewAuthority,
    check_ca_name,
    check_new_home,
    check_new_passphrase,
)
from privca.establishment import establish as establish_home
from privca.home import CAHome
from privca.keys.custody import FileCustody, GeneratedKey, HomeCustody
from privca.policy import IssuancePolicy
from privca.registry import CaRole
from privca.settings import Settings
from privca.store.address import check_store_url
from privca.store.records import CrlState, ImportedRow

ROOT_KEY_REF = FileCustody.reference("root")


def check_target(home: Path) -> CAHome:
    """The new home, refused when a CA (or the remains of one) is there."""
    return check_new_home(home)


def rows_of(plan: AdoptionPlan) -> list[ImportedRow]:
    rows = [
        ImportedRow(
            serial=item.serial,
            status=item.status,
            profile=item.profile,
            names=item.names,
            subject=item.certificate.subject.rfc4514_string(),
            not_before=item.certificate.not_valid_before_utc,
            not_after=item.certificate.not_valid_after_utc,
            public_key_sha256=item.public_key_sha256,
            der=item.der,
            revoked_at=item.revoked_at,
            reason=item.reason,
            source=item.source,
        )
        for item in plan.certificates
    ]
    # The certificate file is lost but its revocation is not: keep it on the CRL. No names,
    # so a lookup by name never lands on a record that cannot be renewed.
    rows += [
        ImportedRow(
            serial=orphan.serial,
            status="revoked",
            profile="imported",
            names=(),
            subject=orphan.subject,
            not_before=orphan.revoked_at,
            not_after=orphan.expires,
            public_key_sha256="",
            der=None,
            revoked_at=orphan.revoked_at,
            reason=orphan.reason,
            source=orphan.source,
        )
        for orphan in plan.revoked_without_certificate
    ]
    return rows


def establish(
    plan: AdoptionPlan,
    home: Path,
    passphrase: bytes | None,
    now: dt.datetime | None = None,
    *,
    store_url: str = "",
    store_password_file: Path | None = None,
) -> CertificateAuthority:
    """Create the home from the plan; on any failure remove what was created.

    With `store_url` (PostgreSQL, no password in it) the inventory goes there; it must hold
    no CA yet. Its password comes from `store_password_file` (kept in privca.toml as a
    path), $PRIVCA_STORE_PASSWORD or libpq's ~/.pgpass."""
    now = now or utcnow()
    ca_home = check_target(home)
    name = check_ca_name(plan.name)
    check_new_passphrase(passphrase)
    # Permissive: the original root has no name constraints, so a policy narrower than
    # what it already signed would only refuse renewals of certificates it issued.
    settings = Settings(
        name=name,
        single_tier=True,
        policy=IssuancePolicy(),
        encrypted_keys=passphrase is not None,
        store_url=check_store_url(store_url) if store_url else "",
        store_password_file=str(store_password_file.absolute()) if store_password_file else "",
    )
    crl_numbers = None
    if plan.crl_number:
        crl_numbers = CrlState(
            0, plan.crl_number, plan.crl_this_update or now, plan.crl_next_update or now
        )
    founding = Founding(
        home=ca_home,
        settings=settings,
        authorities=(
            NewAuthority(
                CaRole.ROOT,
                plan.ca_certificate,
                GeneratedKey(ROOT_KEY_REF, plan.ca_key),
                pem=plan.ca_pem,
            ),
        ),
        store_password=settings.store_password() if store_url else None,
        imported=tuple(rows_of(plan)),
        crl_numbers=crl_numbers,
        now=now,
    )
    custody = HomeCustody(ca_home, passphrase=passphrase, encrypted=passphrase is not None)
    store = establish_home(founding, custody)
    return CertificateAuthority(ca_home, settings, store, custody=custody)


__all__ = ["check_ca_name", "check_new_passphrase", "check_target", "establish", "rows_of"]
