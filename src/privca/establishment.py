"""The one place that establishes a CA home: `privca init` and `privca import` both end here.

The rules for a new home (no CA there yet, a name, a passphrase long enough) are checked
before anything is written; then, in this order: the directories, the EAB sealing key,
the CA key files, the CA certificate files, the inventory ("holds no CA yet", then the CA
records and whatever else the founding brings), and privca.toml last, for it is the mark
of an established CA. A failure anywhere removes exactly what was created.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from privca._text import shows_as_itself
from privca.errors import AlreadyExists, InputError
from privca.home import CAHome, HomeConstruction, atomic_write
from privca.issuance import BACKDATE
from privca.keys.custody import GeneratedKey, HomeCustody
from privca.keys.pkcs11 import check_module
from privca.keys.types import DEFAULT_ISSUING_KEY, DEFAULT_ROOT_KEY, KeyType
from privca.policy import IssuancePolicy
from privca.publication import crl_file_of, crl_files, root_crl_file, sign_crl
from privca.registry import CaRole
from privca.rotation import (
    build_issuing_ca,
    ca_certificate_files,
    check_ca_days,
    record_authority,
)
from privca.settings import Settings
from privca.store.address import check_store_url
from privca.store.database import sqlite_url
from privca.store.imports import add_imported_certificates
from privca.store.inventory import Store
from privca.store.records import CrlState, ImportedRow
from privca.store.serials import random_serial
from privca.urls import check_base_url
from privca.x509 import profiles
from privca.x509.build import CertificateSpec, Issuer, build_certificate, ca_subject, self_issuer

# Shorter passphrases for CA keys are refused (an HSM PIN is the token's business).
MIN_PASSPHRASE_LENGTH = 8
MAX_NAME_LENGTH = 64


def check_new_home(home: Path) -> CAHome:
    """The home, refused (AlreadyExists) when it holds a CA or the remains of one."""
    ca_home = CAHome(Path(home))
    if ca_home.exists() or ca_home.key_path("root").exists() or ca_home.database.exists():
        raise AlreadyExists(
            f"a CA already exists at '{ca_home.root}'",
            "choose another --home; privca never overwrites a CA",
        )
    return ca_home


def check_ca_name(name: str) -> str:
    """The CA's name as it will be used: stripped, 1 to 64 printable characters. No
    control, bidirectional or invisible character: the name is every certificate's issuer
    and shows in clients, trust stores and listings (a right-to-left override would make
    it read as another)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not shows_as_itself(name):
        raise InputError(
            f"CA name '{name}' must be 1 to {MAX_NAME_LENGTH} printable characters (no "
            "control, bidirectional or invisible ones)",
            "give one with --name 'Example Internal CA'",
        )
    return name


def check_new_passphrase(passphrase: bytes | None) -> None:
    """A passphrase for new CA key files (None: the keys are written unencrypted)."""
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InputError(
            f"the passphrase is shorter than {MIN_PASSPHRASE_LENGTH} characters",
            "use a long passphrase; it protects the CA keys at rest",
        )


@dataclass(frozen=True)
class NewAuthority:
    """A CA certificate of the new home with its key; `pem` keeps an adopted root's file
    exactly as clients already trust it."""

    role: CaRole
    certificate: x509.Certificate
    key: GeneratedKey
    pem: bytes | None = None


@dataclass(frozen=True)
class Founding:
    """Everything a new home holds from its first moment, built and checked in memory."""

    home: CAHome
    settings: Settings
    authorities: tuple[NewAuthority, ...]  # the root first
    store_password: str | None = None
    imported: tuple[ImportedRow, ...] = ()  # certificates an adopted CA signed
    crl_numbers: CrlState | None = None  # where an adopted CA's CRLNumbers continue
    # Publish the root's first CRL (the CDP of the issuing CA) while its key is at hand.
    root_crl: bool = False
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def _write_keys_and_certificates(
    founding: Founding, custody: HomeCustody, construction: HomeConstruction
) -> None:
    for authority in founding.authorities:
        path = custody.keep(authority.key)
        if path is not None:
            construction.track(path)
    for path, data, mode in _certificate_files(founding):
        atomic_write(path, data, mode)
        construction.track(path)


def _certificate_files(founding: Founding) -> list[tuple[Path, bytes, int]]:
    by_role = {a.role: a for a in founding.authorities}
    root = by_role[CaRole.ROOT]
    issuing = by_role.get(CaRole.ISSUING)
    chain = [root.certificate] if issuing is None else [issuing.certificate, root.certificate]
    return ca_certificate_files(
        founding.home,
        chain,
        root=root.certificate,
        issuing=issuing.certificate if issuing is not None else None,
        root_pem=root.pem,
    )


def _open_store(founding: Founding, custody: HomeCustody, construction: HomeConstruction) -> Store:
    url = founding.settings.store_url
    store = Store(
        url or sqlite_url(founding.home.database),
        password=founding.store_password,
        sealer=custody.sealing_key(),
    )
    if not url:
        construction.track(founding.home.database)
    store.migrate()
    if store.authorities():
        raise AlreadyExists(
            "the store at --store-url already holds a CA",
            "give each CA its own database, or point privca.toml of this home at it",
        )
    return store


def _publish_root_crl(
    founding: Founding, store: Store, root_id: int, construction: HomeConstruction
) -> None:
    """`privca serve` never signs the root's CRL, and it is the CDP of the issuing CA:
    publish the first one now, while the root key is at hand."""
    root = founding.authorities[0]
    now = founding.now
    next_update = now + dt.timedelta(days=founding.settings.root_crl_days)
    signer = Issuer.from_certificate(root.certificate, root.key.private_key)
    crl = sign_crl(store, root_id, signer, now, next_update)
    by_serial = crl_file_of(founding.home, root.certificate.serial_number)
    files = crl_files(by_serial, crl) + crl_files(root_crl_file(founding.home), crl)
    for path, data, mode in files:
        atomic_write(path, data, mode)
        construction.track(path)


def _populate(founding: Founding, store: Store, construction: HomeConstruction) -> None:
    """The CA records, then what the founding brings: imports, CRL numbers, root CRL."""
    ids = [
        record_authority(store, a.role, a.certificate, a.key.key_ref, founding.now, "init")
        for a in founding.authorities
    ]
    root_id = ids[0]
    if founding.imported:
        add_imported_certificates(store.database, root_id, founding.imported, founding.now)
    if founding.crl_numbers is not None:
        state = founding.crl_numbers
        store.continue_crl_numbers(root_id, state.number, state.this_update, state.next_update)
    if founding.root_crl:
        _publish_root_crl(founding, store, root_id, construction)


@dataclass(frozen=True)
class NewCa:
    """What `privca init` asks for (CertificateAuthority.init's arguments)."""

    home: Path
    name: str
    single_tier: bool = False
    key_type: KeyType | None = None
    issuing_key_type: KeyType | None = None
    root_days: int = profiles.ROOT.default_days
    issuing_days: int = profiles.ISSUING.default_days
    permitted: Sequence[str] = ()
    excluded: Sequence[str] = ()
    passphrase: bytes | None = None
    pin: bytes | None = None
    store_url: str = ""
    store_password_file: Path | None = None
    base_url: str = ""
    hsm_module: str = ""
    hsm_token: str = ""

    def check(self) -> None:
        """Every rule that does not need the home (InputError, before anything is made)."""
        check_ca_days(self.root_days, "root")
        check_ca_days(self.issuing_days, "issuing CA")
        if not self.single_tier and self.issuing_days > self.root_days:
            raise InputError(
                f"issuing CA validity of {self.issuing_days} days exceeds the root's "
                f"{self.root_days}",
                "give --issuing-days no larger than --root-days",
            )
        if bool(self.hsm_module) != bool(self.hsm_token):
            raise InputError(
                "an HSM needs both a module and a token label", "give --hsm-module and --hsm-token"
            )
        if self.hsm_module:
            # Before the home exists: a relative path, or a library others could replace,
            # would be loaded with the PIN in hand by every later command.
            check_module(self.hsm_module)
        if self.hsm_module and not (self.pin or self.passphrase):
            raise InputError(
                "the HSM token's PIN is required", "use --passphrase-file with the PIN"
            )
        if not self.hsm_module:
            check_new_passphrase(self.passphrase)
        check_base_url(self.base_url)

    def settings(self, name: str) -> Settings:
        return Settings(
            name=name,
            single_tier=self.single_tier,
            policy=IssuancePolicy.build(self.permitted, self.excluded),
            store_url=check_store_url(self.store_url) if self.store_url else "",
            base_url=check_base_url(self.base_url),
            # Keys on a token are never written in clear; files only with a passphrase.
            encrypted_keys=self.passphrase is not None or bool(self.hsm_module),
            hsm_module=self.hsm_module,
            store_password_file=str(Path(self.store_password_file).absolute())
            if self.store_password_file
            else "",
        )

    def custody(self, home: CAHome) -> HomeCustody:
        return HomeCustody(
            home,
            passphrase=self.passphrase,
            pin=self.pin,
            encrypted=self.passphrase is not None,
            hsm_module=self.hsm_module,
            hsm_token=self.hsm_token,
        )


def _hierarchy(
    request: NewCa, settings: Settings, custody: HomeCustody, now: dt.datetime
) -> tuple[NewAuthority, ...]:
    """The root (self-signed) and, unless single-tier, the issuing CA under it."""
    policy = settings.policy
    root_key = custody.generate(request.key_type or DEFAULT_ROOT_KEY, "root", "root")
    root_subject = ca_subject(settings.name if request.single_tier else f"{settings.name} Root")
    root_cert = build_certificate(
        CertificateSpec(
            subject=root_subject,
            public_key=root_key.private_key.public_key(),
            profile=profiles.ROOT,
            serial=random_serial(),
            not_before=now - BACKDATE,
            not_after=now + dt.timedelta(days=request.root_days),
            permitted=policy.permitted,
            excluded=policy.excluded,
        ),
        self_issuer(root_subject, root_key.private_key),
    )
    root = NewAuthority(CaRole.ROOT, root_cert, root_key)
    if request.single_tier:
        return (root,)
    key_type = request.issuing_key_type or request.key_type or DEFAULT_ISSUING_KEY
    issuing_key = custody.generate(key_type, "issuing", "issuing")
    issuing_cert = build_issuing_ca(
        subject=ca_subject(f"{settings.name} Issuing CA"),
        public_key=issuing_key.private_key.public_key(),
        root=Issuer.from_certificate(root_cert, root_key.private_key),
        policy=policy,
        base_url=settings.base_url,
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=request.issuing_days),
    )
    return (root, NewAuthority(CaRole.ISSUING, issuing_cert, issuing_key))


def establish_new_ca(request: NewCa, now: dt.datetime) -> tuple[Founding, HomeCustody, Store]:
    """`privca init`: check everything, generate and sign in memory (keys on a token are
    made there), then establish the home. Returns what the authority is opened with."""
    home = check_new_home(request.home)
    name = check_ca_name(request.name)
    request.check()
    settings = request.settings(name)
    store_password = settings.store_password() if settings.store_url else None
    custody = request.custody(home)
    try:
        founding = Founding(
            home=home,
            settings=settings,
            authorities=_hierarchy(request, settings, custody, now),
            store_password=store_password,
            root_crl=not request.single_tier,
            now=now,
        )
        store = establish(founding, custody)
    except BaseException:
        # Keys made on a token are there already: a failed init (an unreachable store,
        # say) must not leave them behind, each retry two more.
        custody.discard_generated()
        custody.close()
        raise
    return founding, custody, store


def establish(founding: Founding, custody: HomeCustody) -> Store:
    """Create the home `founding` describes, all or nothing; returns its open store."""
    construction = HomeConstruction(founding.home)
    store: Store | None = None
    try:
        construction.make_directories()
        # Made now, so that copies of the home (replicas, backups) carry it from the start.
        custody.sealing_key().create()
        construction.track(founding.home.eab_sealing_key)
        _write_keys_and_certificates(founding, custody, construction)
        store = _open_store(founding, custody, construction)
        _populate(founding, store, construction)
        founding.settings.write(founding.home.settings)
    except BaseException:
        if store is not None:
            store.close()
        construction.undo()
        raise
    return store


__all__ = [
    "MIN_PASSPHRASE_LENGTH",
    "Founding",
    "NewAuthority",
    "NewCa",
    "check_ca_name",
    "check_new_home",
    "check_new_passphrase",
    "establish",
    "establish_new_ca",
]
