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
from privca.errors import AlreadyExists, InputError
from privca.home import CAHome, HomeConstruction, atomic_write
from privca.keys.files import write_ca_key
from privca.keys.sealing import SealingKey
from privca.policy import IssuancePolicy
from privca.settings import Settings
from privca.store import Store
from privca.store.database import check_store_url, sqlite_url
from privca.store.imports import ImportedRow, add_imported_certificates
from privca.x509.encoding import der_certificate, pem_certificate

ROOT_KEY_REF = "private/root.key"


def check_target(home: Path) -> CAHome:
    ca_home = CAHome(Path(home))
    if ca_home.exists() or ca_home.key_path("root").exists() or ca_home.database.exists():
        raise AlreadyExists(
            f"a CA already exists at '{ca_home.root}'",
            "choose another --home; privca never overwrites a CA",
        )
    return ca_home


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or any(ord(ch) < 32 for ch in name):
        raise InputError(
            f"CA name '{name}' must be 1 to 64 printable characters",
            "give one with --name 'Example Internal CA'",
        )
    return name


def check_new_passphrase(passphrase: bytes | None) -> None:
    from privca.authority import MIN_PASSPHRASE_LENGTH

    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InputError(
            f"the new passphrase is shorter than {MIN_PASSPHRASE_LENGTH} characters",
            "use a long passphrase; it protects the CA key at rest",
        )


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
    name = check_name(plan.name)
    check_new_passphrase(passphrase)
    root = plan.ca_certificate
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
    rows = rows_of(plan)
    construction = HomeConstruction(ca_home)
    store: Store | None = None
    try:
        construction.make_directories()
        SealingKey(ca_home.eab_sealing_key).create()
        construction.track(ca_home.eab_sealing_key)
        write_ca_key(ca_home.root / ROOT_KEY_REF, plan.ca_key, passphrase)
        construction.track(ca_home.root / ROOT_KEY_REF)
        atomic_write(ca_home.root_cert, plan.ca_pem)
        construction.track(ca_home.root_cert)
        atomic_write(ca_home.chain, pem_certificate(root))
        construction.track(ca_home.chain)
        store = Store(
            store_url or sqlite_url(ca_home.database),
            password=settings.store_password() if store_url else None,
            sealer=SealingKey(ca_home.eab_sealing_key),
        )
        if not store_url:
            construction.track(ca_home.database)
        store.migrate()
        if store.authorities():
            raise AlreadyExists(
                "the store at --store-url already holds a CA",
                "give each CA its own database",
            )
        authority_id = store.add_authority(
            "root",
            root.subject.rfc4514_string(),
            root.serial_number,
            der_certificate(root),
            ROOT_KEY_REF,
            root.not_valid_after_utc,
            now,
            active=True,
        )
        add_imported_certificates(store.database, authority_id, rows, now)
        if plan.crl_number:
            store.continue_crl_numbers(
                authority_id,
                plan.crl_number,
                plan.crl_this_update or now,
                plan.crl_next_update or now,
            )
        settings.write(ca_home.settings)
    except BaseException:
        if store is not None:
            store.close()
        construction.undo()
        raise
    assert store is not None
    return CertificateAuthority(ca_home, settings, store, passphrase)
