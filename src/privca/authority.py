"""CertificateAuthority: the use cases of one CA home (init/open, issue, sign, verify,
revoke, renew, crl, ocsp, rotate), and the only code that orders "record, then return".

It is assembled in three parts, one concern each: AuthorityCore (authority_core.py: the
opened home, its registry of CA certificates and the unlocked signers), AuthorityRecords
(authority_records.py: verification, lookup, revocation, CRLs) and this module: setting
up and opening a home, issuance, renewal and rotation. The work itself is delegated: the
CA certificates to registry.py, keys to keys/custody.py, a new home to establishment.py,
signing leaves to issuance.py, new CA certificates to rotation.py, CRLs to
publication.py, and the inventory to the store, which nothing outside this layer writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from privca._time import utcnow
from privca.auditing import COMPROMISE_REASONS
from privca.authority_core import Authority
from privca.authority_records import AuthorityRecords
from privca.errors import (
    AlreadyExists,
    EnvironmentRefused,
    InputError,
    KeyUnavailable,
    NotFound,
    PolicyError,
    PrivcaError,
)
from privca.establishment import MIN_PASSPHRASE_LENGTH, NewCa, establish_new_ca
from privca.home import (
    CAHome,
    atomic_write_many,
    check_home,
    discard_staged,
    exclusive_lock,
    publish_staged,
    stage_files,
)
from privca.issuance import (
    BACKDATE,
    IssuedCertificate,
    LeafIssuance,
    check_common_name,
    check_key_type_allowed,
    issue_ocsp_responder,
    kept_common_name,
    validity,
)
from privca.issuers import NewIssuer, choose_issuer, create_issuer, issuer_policy
from privca.keys.custody import HomeCustody, SecretSource
from privca.keys.types import DEFAULT_LEAF_KEY, GeneratedPrivateKey, KeyType, key_type_of
from privca.publication import CrlFile, crl_file_of, crl_files, sign_crl
from privca.registry import CaCertificate, CaRole, Registry
from privca.rotation import (
    Rollover,
    RolloverStatus,
    ca_certificate_files,
    check_ca_days,
    check_retirable,
    reissue_root,
    rollover_root,
    rollover_status,
    rotate_issuing,
)
from privca.settings import Settings
from privca.store.database import check_database_exists, sqlite_url
from privca.store.inventory import Store
from privca.store.records import CertificateRecord, IssuerRecord
from privca.store.schema import SCHEMA_REVISION
from privca.x509 import profiles
from privca.x509.csr import CertificateRequest
from privca.x509.encoding import serial_hex
from privca.x509.names import parse_names

PassphraseSource = SecretSource


@dataclass(frozen=True)
class CaRevocation:
    """What revoking an issuing CA did."""

    revoked: CaCertificate  # as recorded now, revocation date and reason included
    published: tuple[Path, ...]  # the CRL file (by serial) of each root whose key was here
    # Roots whose key is elsewhere: their CRL lists it once `privca crl --root` runs there.
    unpublished: tuple[CaCertificate, ...]


class CertificateAuthority(AuthorityRecords):
    """A CA home opened for work. Keys are unlocked only when something must be signed."""

    @classmethod
    def init(
        cls,
        home: Path,
        name: str,
        *,
        single_tier: bool = False,
        key_type: KeyType | None = None,
        issuing_key_type: KeyType | None = None,
        root_days: int = profiles.ROOT.default_days,
        issuing_days: int = profiles.ISSUING.default_days,
        permitted: Sequence[str] = (),
        excluded: Sequence[str] = (),
        passphrase: bytes | None = None,
        pin: bytes | None = None,
        store_url: str = "",
        store_password_file: Path | None = None,
        base_url: str = "",
        hsm_module: str = "",
        hsm_token: str = "",
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Create a CA (root + issuing by default) in `home`, refusing to overwrite one.

        With `hsm_module` and `hsm_token` the CA keys are generated inside that PKCS#11
        token (non-extractable), and `pin` is the token's user PIN (`passphrase` stands
        for it when no `pin` is given, as it always has).

        `store_url` (PostgreSQL) may not carry a password: it comes from
        `store_password_file` (recorded in privca.toml as a path), $PRIVCA_STORE_PASSWORD,
        or libpq's own $PGPASSFILE / ~/.pgpass.

        Everything is validated and built in memory first; files are written last, with
        privca.toml (the mark of an established CA) written at the very end.

        Raises:
            AlreadyExists: `home` holds a CA, or the store at `store_url` does.
            InputError: a name, validity, passphrase, URL or policy breaks its rule.
            KeyUnavailable, WrongPassphrase: the HSM refuses (module, token, PIN).
            StoreUnavailable: the store cannot be reached.
        """
        request = NewCa(
            home=home,
            name=name,
            single_tier=single_tier,
            key_type=key_type,
            issuing_key_type=issuing_key_type,
            root_days=root_days,
            issuing_days=issuing_days,
            permitted=permitted,
            excluded=excluded,
            passphrase=passphrase,
            pin=pin,
            store_url=store_url,
            store_password_file=store_password_file,
            base_url=base_url,
            hsm_module=hsm_module,
            hsm_token=hsm_token,
        )
        founding, custody, store = establish_new_ca(request, now or utcnow())
        return cls(founding.home, founding.settings, store, custody=custody)

    @classmethod
    def open(
        cls, home: Path, passphrase: SecretSource = None, *, pin: SecretSource = None
    ) -> CertificateAuthority:
        """Open an established CA home, refusing one others could read or change.

        `passphrase` (bytes, or a callable asked whenever a key file is unlocked) opens
        the CA key files; `pin` logs in to an HSM (default: the passphrase).

        Raises:
            NotFound: no CA at `home`.
            InsecurePermissions: the home, privca.toml, private/ or the database is open
                to others.
            InputError: privca.toml is malformed.
            StoreUnavailable: the store cannot be reached.
        """
        ca_home = CAHome(Path(home))
        check_home(ca_home)
        settings = Settings.read(ca_home.settings)
        custody = HomeCustody(
            ca_home,
            passphrase=passphrase,
            pin=pin,
            encrypted=settings.encrypted_keys,
            hsm_module=settings.hsm_module,
        )
        url = settings.store_url or sqlite_url(ca_home.database)
        check_database_exists(url)
        password = settings.store_password() if settings.store_url else None
        store = Store(url, password=password, sealer=custody.sealing_key())
        before = store.migrate()
        if before is not None and before != SCHEMA_REVISION:
            # Keys from before sealing existed: the migration could not reach private/.
            from privca.store.acme import AcmeStore

            AcmeStore.of(store).seal_plaintext_keys()
        return cls(ca_home, settings, store, custody=custody)

    def issue(
        self,
        names: Sequence[str],
        *,
        profile: str = profiles.DEFAULT_LEAF_PROFILE.name,
        key_type: KeyType = DEFAULT_LEAF_KEY,
        days: int | None = None,
        common_name: str | None = None,
        issuer: str | None = None,
        now: dt.datetime | None = None,
        private_key: GeneratedPrivateKey | None = None,
    ) -> IssuedCertificate:
        """Generate a key and certify it for `names`. The key is returned, never stored.

        `common_name` sets the subject CN (see x509/subject.py for what each profile
        allows); by default it is the first DNS name. `issuer` names the issuer (None:
        the default issuer). `private_key`, of `key_type`, is certified instead of a new
        one (`privca issue` writes it to disk before anything is recorded).

        Raises:
            InputError: a name is malformed. PolicyError: the policy (or the issuer's
            constraints) refuses a name, the key type, the validity or the CN; the issuer
            is disabled or does not issue `profile`. NotFound: no such issuer. Errors of
            `signer` and StoreUnavailable.
        """
        parsed = parse_names(names)
        leaf = profiles.leaf_profile(profile)
        choice = choose_issuer(self.registry, self.policy, issuer, leaf.name)
        check_key_type_allowed(choice.policy, key_type)
        # Validate before spending time on key generation (RSA-4096 takes a while).
        choice.policy.check_names(parsed)
        if common_name is not None:
            common_name = check_common_name(choice.policy, common_name, parsed, leaf)
        validity(choice.policy, leaf, choice.signing.certificate, days, now or utcnow())
        if private_key is None:
            private_key = key_type.generate()
        elif key_type_of(private_key.public_key()) != key_type:
            raise ValueError("issue: private_key is not of key_type")
        request = CertificateRequest(
            public_key=private_key.public_key(),
            names=tuple(parsed),
            ignored=(),
            asks_for_ca=False,
            source="generated key",
            common_name=common_name,
        )
        issued = self.sign_requests([request], profile=profile, days=days, issuer=issuer, now=now)[
            0
        ]
        return dataclasses.replace(issued, private_key=private_key)

    def sign_requests(
        self,
        requests: Sequence[CertificateRequest],
        *,
        profile: str = profiles.DEFAULT_LEAF_PROFILE.name,
        days: int | None = None,
        strict: bool = False,
        issuer: str | None = None,
        now: dt.datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[IssuedCertificate]:
        """Sign many requests: all are validated before any is signed (all or nothing).

        Each request's `common_name` (set by the caller, never read from the CSR) becomes
        the subject CN under the same rules as `issue(common_name=...)`. `issuer` names
        the issuer that signs (None: the default issuer).

        Raises:
            PolicyError: the policy or the issuer refuses a request (names, key, validity,
            --strict, a CA's or a compromised key, a disabled issuer, a profile it does
            not issue). NotFound: no such issuer. Errors of `signer` and StoreUnavailable.
        """
        if not requests:
            return []
        choice = choose_issuer(self.registry, self.policy, issuer, profile)
        signing = choice.signing
        issuance = LeafIssuance(
            store=self._store,
            registry=self.registry,
            policy=choice.policy,
            base_url=self.settings.base_url,
            issuer=signing,
            signer=lambda: self.signer(signing),
        )
        now = now or utcnow()
        issued = issuance.sign(
            requests, profile=profile, days=days, strict=strict, now=now, progress=progress
        )
        self.checkpoint_if_due(now)
        return issued

    def issue_ocsp_responder(
        self, authority: Authority, *, days: int = 30, now: dt.datetime | None = None
    ) -> tuple[x509.Certificate, GeneratedPrivateKey]:
        """A delegated OCSP responder certificate (OCSPSigning, ocsp-nocheck) for one CA.

        The key goes to the caller only (privca serve keeps it 0600 in the home's
        private/serve/ to reuse it); the certificate is recorded like any other before it
        is returned.

        Raises:
            NotFound: `authority` is not a CA of this home.
            KeyUnavailable, WrongPassphrase, InsecurePermissions: the CA key cannot be
                unlocked (as `signer`).
            StoreUnavailable: the record could not be written (nothing is returned).
        """
        entry = self._entry(authority)
        signer = self.signer(entry)
        return issue_ocsp_responder(self._store, entry, signer, days, now or utcnow())

    def renew(
        self,
        serial_or_name: str,
        *,
        days: int | None = None,
        new_key: bool = True,
        key_type: KeyType | None = None,
        revoke_old_after: dt.timedelta | None = None,
        issuer: str | None = None,
        private_key: GeneratedPrivateKey | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Same names and profile, a new serial; the old certificate is marked superseded,
        and with `revoke_old_after` revoked (reason superseded) once that grace has passed.
        The renewal comes from the old certificate's issuer (its newest issuing CA), or
        from `issuer` when given. With `new_key`, `private_key` is the new key when the
        caller made it (to write it somewhere before anything is recorded); else privca
        generates one of `key_type`.

        Raises:
            NotFound, InputError: as `lookup`. PolicyError: a revoked certificate's key
            may not be reused; as `issue` and `sign_requests`.
        """
        now = now or utcnow()
        old = self.lookup(serial_or_name, now, unique=True)
        if old.superseded_by is not None:
            raise AlreadyExists(
                f"certificate {serial_hex(old.serial)} was renewed already, by "
                f"{serial_hex(old.superseded_by)}",
                f"renew that one: privca renew {serial_hex(old.superseded_by)}",
            )
        # Revoked as readers see it: written, or scheduled and due.
        revoked = old.revocation_at(now) is not None
        if revoked and not new_key:
            raise PolicyError(
                f"certificate {serial_hex(old.serial)} is revoked; its key may not be reused",
                "renew with --new-key",
            )
        if issuer is None:
            issuer = self.registry.issuer_name_of(self.issuer_of(old))
        # The revocation time is worked out before anything is signed or recorded: one
        # past year 9999 once crashed after the renewal and its supersession had committed.
        at = _revocation_time(now, revoke_old_after)
        if private_key is not None and not new_key:
            raise InputError("a new key was given for a renewal that reuses the old one")
        renewed = self._successor(old, new_key, key_type, days, issuer, now, private_key)
        if not self._store.mark_superseded(old.serial, renewed.serial, utcnow()):
            # Another run renewed the same certificate meanwhile and marked it first: two
            # valid successors would leave the name ambiguous and one key unwritten.
            self._store.revoke(renewed.serial, "superseded", utcnow(), None)
            raise AlreadyExists(
                f"certificate {serial_hex(old.serial)} was renewed by another run meanwhile; "
                f"this run's certificate {serial_hex(renewed.serial)} is revoked",
                f"use the other renewal: privca show {serial_hex(old.serial)}",
            )
        if revoke_old_after is not None and at is not None and not revoked:
            if revoke_old_after <= dt.timedelta(0):
                self._store.revoke(old.serial, "superseded", at, None)
            else:
                self._store.schedule_revocation(old.serial, at, utcnow())
        return renewed

    def _successor(
        self,
        old: CertificateRecord,
        new_key: bool,
        key_type: KeyType | None,
        days: int | None,
        issuer: str | None,
        now: dt.datetime,
        private_key: GeneratedPrivateKey | None = None,
    ) -> IssuedCertificate:
        """The renewal of `old`: its names, profile and common name, on a new key (the
        caller's `private_key`, or one generated) or on its own public key."""
        if old.der is None:
            raise NotFound(f"certificate {serial_hex(old.serial)} was never signed")
        old_cert = x509.load_der_x509_certificate(old.der)
        names = tuple(parse_names(old.names))
        common_name = kept_common_name(self.policy, old_cert, names, old.profile)
        if new_key and private_key is None:
            return self.issue(
                old.names,
                profile=old.profile,
                key_type=key_type or key_type_of(old_cert.public_key()),
                days=days,
                common_name=common_name,
                issuer=issuer,
                now=now,
            )
        request = CertificateRequest(
            public_key=old_cert.public_key() if private_key is None else private_key.public_key(),
            names=names,
            ignored=(),
            asks_for_ca=False,
            source=f"certificate {serial_hex(old.serial)}" if private_key is None else "new key",
            common_name=common_name,
        )
        renewed = self.sign_requests(
            [request], profile=old.profile, days=days, issuer=issuer, now=now
        )[0]
        return dataclasses.replace(renewed, private_key=private_key)

    def rotate_issuing(
        self,
        *,
        key_type: KeyType | None = None,
        days: int = profiles.ISSUING.default_days,
        issuer: str | None = None,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A new issuing CA key and certificate under the same root, for `issuer` (None:
        the default issuer; the name is kept). New certificates come from it at once; the
        old one keeps its key so it can still sign CRLs and OCSP.

        Raises:
            InputError: `days` out of range. NotFound: no such issuer. PolicyError: the
            root has expired. Errors of `signer` (the root key), KeyUnavailable (HSM) and
            StoreUnavailable.
        """
        now = now or utcnow()
        registry = self.registry
        root = registry.root
        record = registry.issuer(issuer) if registry.issuers else None
        named = record is not None and not record.default
        staged: list[tuple[Path, Path]] = []

        def stage_ca_files(cert: x509.Certificate) -> None:
            """certs/issuing.crt and chain.pem written (as temporaries) before the new CA
            is recorded: an unwritable certs/ once left them naming the old CA after the
            commit, and a retry made yet another CA. Now it fails first, nothing kept."""
            if not named:
                chain = (cert, *registry.chain_of(root))
                staged.extend(stage_files(ca_certificate_files(self.home, chain, issuing=cert)))

        try:
            cert = rotate_issuing(
                store=self._store,
                registry=registry,
                custody=self._custody,
                root=lambda: self.signer(root),
                policy=issuer_policy(self.policy, record),
                name=f"{self.settings.name} {record.name}"
                if named and record
                else self.settings.name,
                base_url=self.settings.base_url,
                key_type=key_type,
                days=days,
                now=now,
                issuer=record.name if record is not None else None,
                before_record=stage_ca_files,
            )
        except BaseException:
            discard_staged(staged)
            raise
        self.refresh()
        if named:
            return cert  # certs/issuing.crt and chain.pem are the default issuer's
        if self.chain == (cert, *registry.chain_of(root)):
            publish_staged(staged, overwrite=True)  # renames: they need no room
        else:  # not the chain foreseen: written anew (the staged ones proved certs/ takes them)
            discard_staged(staged)
            atomic_write_many(ca_certificate_files(self.home, self.chain, issuing=cert))
        if self.settings.single_tier:
            self.settings = dataclasses.replace(self.settings, single_tier=False)
            self.settings.write(self.home.settings)
            self._note_settings()
        return cert

    def revoke_issuing_ca(
        self, entry: CaCertificate, reason: str, *, now: dt.datetime | None = None
    ) -> CaRevocation:
        """Revoke an issuing CA certificate: it signs nothing more, and the CRL of the root
        that signed it lists it. The revocation is recorded first; the root's CRL is then
        published at once when the root key is at hand (else `privca crl --root`, or
        `privca crl`, where it is).

        Raises:
            PolicyError: `entry` is not an issuing CA, is the default issuer's current one
            (rotate first), its root is no longer trusted, or `reason` is not one for a CA.
            AlreadyExists: it was revoked already. EnvironmentRefused: recorded, but the
            CRL files could not be written. Errors of `signer` (a root key that is here
            but cannot be unlocked: nothing is recorded then) and StoreUnavailable.
        """
        from privca.x509.crl import CA_REASONS

        now = now or utcnow()
        registry = self.registry
        shown = serial_hex(entry.serial)
        if entry.role != CaRole.ISSUING:
            raise PolicyError(
                f"{shown} is a {entry.role} CA certificate: only issuing CAs are revoked",
                "a root leaves by `privca rotate root --new-key` and `privca trust uninstall`",
            )
        if reason not in CA_REASONS:
            raise PolicyError(
                f"'{reason}' is not a reason for revoking a CA",
                f"give one of {', '.join(CA_REASONS)}",
            )
        if entry.revoked_at is not None:
            raise AlreadyExists(
                f"the issuing CA {shown} was revoked on {entry.revoked_at:%Y-%m-%d} "
                f"({entry.revocation_reason})",
                "publish the root's CRL where the root key is: privca crl --root",
            )
        default = registry.default_issuer
        if default is not None and registry.active_issuing(default.name) == entry:
            # The CA every command and `privca serve` sign with by default (their CRL and
            # OCSP included): it is replaced before it goes.
            raise PolicyError(
                f"{shown} is the current issuing CA of the default issuer '{default.name}'",
                f"replace it first (privca rotate issuing), then: privca issuer revoke {shown}",
            )
        roots = registry.roots_signing(entry)
        signing = next((r for r in registry.trusted_roots if r in roots), None)
        if signing is None:
            raise PolicyError(
                f"the root that signed {shown} is no longer trusted (its rollover ended): "
                "clients reject everything under it already",
                "see privca rotate status",
            )
        # Unlocked before anything is recorded: a wrong passphrase changes nothing.
        signer = self.signer(signing) if self.key_present(signing) else None
        self._store.revoke_authority(entry.id, reason, now)
        self.refresh()
        revoked = self._entry(entry)
        if reason in COMPROMISE_REASONS:
            # What was checkpointed under it proves nothing now (`audit verify` says so
            # until a newer checkpoint covers it): one under the current issuing CA, when
            # its audit key unlocks here; else `privca audit checkpoint` where it does.
            with contextlib.suppress(PrivcaError):
                self.audit_checkpoint(now)
        if signer is None:
            return CaRevocation(revoked, (), (signing,))
        try:
            published = self._publish_root_crl(signing, roots, now)
        except (OSError, PrivcaError) as exc:
            raise EnvironmentRefused(
                f"the revocation of {shown} is recorded, but the root's CRL could not be "
                f"published: {exc}",
                "make <home>/crl/ writable, then: privca crl --root",
            ) from exc
        return CaRevocation(revoked, published, ())

    def _publish_root_crl(
        self, signing: CaCertificate, roots: Sequence[CaCertificate], now: dt.datetime
    ) -> tuple[Path, ...]:
        """One CRL of `signing`, written under the serial of each root certificate of its
        name and key (`roots`: one issuer, so one CRLNumber sequence), and as root.crl when
        that URL means one of them; kept in the store as `privca crl` keeps it. A root
        that signs leaves too keeps its leaves' CRL period."""
        days = self.crl_period(signing)
        # Two revocations at once: the later CRL is written last, never an older one over it.
        with exclusive_lock(self.home.private / ".root-crl.lock", 0o400):
            crl = self.crl(signing, now, days=days, record=False)
            atomic_write_many(self._root_files_of(signing, crl))
            self.crl_written(signing, crl)
        return tuple(crl_file_of(self.home, root.serial) for root in roots)

    # named issuers ------------------------------------------------------------------------

    def issuers(self) -> list[IssuerRecord]:
        """Every named issuer, oldest first (the default one is marked)."""
        return list(self.registry.issuers)

    def create_issuer(
        self, request: NewIssuer, *, now: dt.datetime | None = None
    ) -> x509.Certificate:
        """A new named issuer with its first issuing CA, signed by the active root; the
        certificate carries the issuer's name constraints (inside the root's).

        Raises:
            InputError: a bad name, subtree, profile or validity. AlreadyExists: the name
            is taken. PolicyError: constraints outside the root's, or the root has
            expired. Errors of `signer` (the root key) and StoreUnavailable.
        """
        root = self.registry.root
        acme_profiles = self.settings.acme.get("profiles")
        cert = create_issuer(
            store=self._store,
            registry=self.registry,
            custody=self._custody,
            root=lambda: self.signer(root),
            policy=self.policy,
            ca_name=self.settings.name,
            base_url=self.settings.base_url,
            request=request,
            taken=[str(p) for p in acme_profiles] if isinstance(acme_profiles, dict) else [],
            now=now or utcnow(),
        )
        self.refresh()
        return cert

    def disable_issuer(self, name: str, *, disabled: bool = True) -> bool:
        """Stop (or, with disabled=False, resume) issuing new certificates from `name`;
        its CRLs and OCSP go on. False when nothing changed.

        Raises:
            NotFound: no such issuer. PolicyError: it is the default issuer.
        """
        issuer = self.registry.issuer(name).name
        changed = self._store.set_issuer_disabled(issuer, disabled, utcnow())
        self.refresh()
        return changed

    def set_default_issuer(self, name: str) -> None:
        """Make `name` the issuer used when none is named (issue, sign, /acme/directory).

        Raises:
            NotFound: no such issuer, or it has no issuing CA now (its last one was
            revoked). PolicyError: it is disabled.
        """
        record = self.registry.issuer(name)
        # Checked before the store changes: every command and `privca serve` sign with the
        # default issuer's CA (CRLs and OCSP included), so it must have one.
        self.registry.issuing_of(record.name)
        self._store.set_default_issuer(record.name, utcnow())
        self.refresh()
        # certs/issuing.crt and certs/chain.pem are the default issuer's (docs/issuers.md):
        # they stayed the old default's, unlike `privca export chain`.
        issuing = self.registry.issuing
        atomic_write_many(
            ca_certificate_files(
                self.home,
                self.chain,
                issuing=issuing.certificate if issuing.role == CaRole.ISSUING else None,
            )
        )

    def reissue_root(
        self, *, days: int | None = None, now: dt.datetime | None = None
    ) -> x509.Certificate:
        """Re-issue the root with its own key and subject and privca's root profile
        (critical basicConstraints, keyUsage keyCertSign/cRLSign, SKI).

        Everything the old root signed chains to the new one, because the key, the subject
        and the key identifier stay the same. This is the cure for a hand-made root that
        lacks keyUsage (rejected by `openssl verify -x509_strict` and Python 3.13 clients):
        clients still have to receive the new root.crt, but nothing needs re-issuing.

        Raises:
            InputError: `days` out of range. PolicyError: the root has expired and no
            `days` were given. Errors of `signer` and StoreUnavailable.
        """
        now = now or utcnow()
        root = self.registry.root
        cert = reissue_root(
            store=self._store,
            root_ca=root,
            signer=lambda: self.signer(root),
            policy=self.policy,
            days=days,
            now=now,
        )
        self.refresh()
        self._signers.pop(root.id, None)
        atomic_write_many(ca_certificate_files(self.home, self.chain, root=cert))
        return cert

    def rollover_root(
        self,
        *,
        key_type: KeyType | None = None,
        days: int = profiles.ROOT.default_days,
        issuing_days: int = profiles.ISSUING.default_days,
        name: str | None = None,
        reverse_cross: bool = False,
        now: dt.datetime | None = None,
    ) -> Rollover:
        """A root with a new key: the new root, its cross-certificate signed by the old
        root, with `reverse_cross` the old root signed by the new one, and a new issuing CA
        under it. New leaves come from the new hierarchy and their chain carries the
        cross-certificate until `retire_old_root`; what the old hierarchy signed keeps its
        chain, CRL and OCSP. The new root's first CRL is published, as at init.

        Raises:
            InputError: `days` out of range or a bad `name`. PolicyError: the old root
            has expired, or a rollover is already under way. Errors of `signer` (the
            old root key), KeyUnavailable (HSM) and StoreUnavailable.
        """
        from privca.establishment import check_ca_name

        now = now or utcnow()
        registry = self.registry
        old = registry.root
        # Every enabled issuer that signs now gets a new issuing CA under the new root,
        # with its own constraints; the default issuer first. A disabled issuer keeps its
        # old CA (for CRL and OCSP) and gets none.
        issuing_for = [
            (issuer.name, issuer_policy(self.policy, issuer))
            for issuer in sorted(registry.issuers, key=lambda i: not i.default)
            if issuer.default or (not issuer.disabled and registry.active_issuing(issuer.name))
        ]
        rollover = rollover_root(
            store=self._store,
            registry=self.registry,
            custody=self._custody,
            old_root=lambda: self.signer(old),
            policy=self.policy,
            name=check_ca_name(name) if name is not None else self.settings.name,
            single_tier=self.settings.single_tier,
            base_url=self.settings.base_url,
            key_type=key_type,
            days=days,
            issuing_days=min(issuing_days, days),
            now=now,
            reverse_cross=reverse_cross,
            issuing_for=issuing_for,
        )
        self.refresh()
        atomic_write_many(
            [
                *ca_certificate_files(
                    self.home, self.chain, root=rollover.root, issuing=rollover.issuing
                ),
                *self._transition_files(),
            ]
        )
        # Recorded and written first: should signing fail, `privca crl --root` makes it.
        next_update = now + dt.timedelta(days=self.settings.root_crl_days)
        atomic_write_many(self._root_crl_files(self.registry.root, next_update, now))
        return rollover

    def _root_crl_files(
        self, root: CaCertificate, next_update: dt.datetime, now: dt.datetime
    ) -> list[CrlFile]:
        """A CRL of `root` (the server never signs one), as the files it is published in:
        under its serial, and as root.crl when that URL means this root."""
        crl = sign_crl(self._store, root.id, self.signer(root), now, next_update)
        return self._root_files_of(root, crl)

    def _root_files_of(
        self, root: CaCertificate, crl: x509.CertificateRevocationList
    ) -> list[CrlFile]:
        """Where a CRL of `root` is published: under the serial of every root certificate
        of its name and key, and as root.crl when that URL means one of them."""
        alias = self.registry.root_crl_alias
        files: list[CrlFile] = []
        for same in self.registry.same_key_roots(root):
            files += crl_files(crl_file_of(self.home, same.serial), crl)
            if same.id == alias.id:
                files += crl_files(self.root_crl_file, crl)
        return files

    def rollover_status(self, now: dt.datetime | None = None) -> RolloverStatus:
        """Where a root rollover stands: the roots, and what still depends on the old one.

        Raises:
            StoreUnavailable: the inventory cannot be read.
        """
        now = now or utcnow()
        return rollover_status(self.registry, self.inventory, now)

    def retire_old_root(
        self, *, force: bool = False, now: dt.datetime | None = None
    ) -> CaCertificate:
        """End a root rollover: chains drop the cross-certificate(s) and only the new root
        is trusted. The old root's last CRL is published first, valid until the old root
        expires (its key is not needed again); the old hierarchy's records stay, so its
        CRLs and OCSP keep answering. Returns the old root.

        Raises:
            PolicyError: no rollover is under way, or (without `force`) valid
            certificates still chain only to the old root. Errors of `signer` (the old
            root key, for its last CRL) and StoreUnavailable.
        """
        now = now or utcnow()
        check_retirable(self.rollover_status(now), force)
        old = self.registry.previous_root
        if old is None:  # in transition, so the cross-certificate names its signer
            raise NotFound("the old root of the rollover is not in the inventory")
        last_crl = self._root_crl_files(old, old.not_after, now) if old.not_after > now else []
        self._store.end_role(CaRole.CROSS, now, "old root retired")
        self._store.end_role(CaRole.REVERSE_CROSS, now, "old root retired")
        self.refresh()
        # /crl/root.crl now means the new root: its file follows, when one was published.
        new_root = self.registry.root
        try:
            current = crl_files(self.root_crl_file, self.published_root_crl(new_root, now))
        except KeyUnavailable:
            current = []
        atomic_write_many([*self._transition_files(), *last_crl, *current])
        self.home.previous_root_cert.unlink(missing_ok=True)
        return old

    def _transition_files(self) -> list[tuple[Path, bytes, int]]:
        """certs/roots.pem (every root to trust now), certs/cross.pem (the active
        cross-certificates; empty once the rollover has ended) and, while it lasts,
        certs/previous-root.crt (the old root, for trust install)."""
        from privca.x509.encoding import pem_certificates

        registry = self.registry
        cross = [c.certificate for c in registry.crosses]
        roots = [r.certificate for r in registry.trusted_roots]
        files = [
            (self.home.roots, pem_certificates(roots), 0o644),
            (self.home.cross, pem_certificates(cross), 0o644),
        ]
        previous = registry.previous_root
        if previous is not None:
            files.append((self.home.previous_root_cert, pem_certificates(roots[:1]), 0o644))
        return files


def _revocation_time(now: dt.datetime, after: dt.timedelta | None) -> dt.datetime | None:
    """When a renewed certificate's predecessor is to be revoked, or None (never)."""
    if after is None:
        return None
    try:
        return now + after
    except OverflowError:
        raise InputError(
            "the old certificate's revocation would fall after the year 9999",
            "give a shorter --revoke-old-after, e.g. 7d",
        ) from None


def select_authority(records: Sequence[CaCertificate], name: str) -> CaCertificate | None:
    """A CA among `records` by hex serial, or by alias (see Registry.select)."""
    return Registry(tuple(records)).select(name)


__all__ = [
    "BACKDATE",
    "MIN_PASSPHRASE_LENGTH",
    "CertificateAuthority",
    "IssuedCertificate",
    "check_ca_days",
    "select_authority",
]
