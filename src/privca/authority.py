"""CertificateAuthority: the use cases of one CA home (init/open, issue, sign, verify,
revoke, renew, crl, ocsp, rotate), and the only code that orders "record, then return".

It delegates: the CA certificates to the registry (registry.py), keys to custody
(keys/custody.py), setting up a home to establishment.py, signing leaves to issuance.py,
new CA certificates to rotation.py, CRLs to publication.py, and the inventory to the store,
which nothing outside this layer writes: others read it through `inventory`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from privca._time import utcnow
from privca.errors import InputError, NotFound, PolicyError
from privca.establishment import MIN_PASSPHRASE_LENGTH, NewCa, establish_new_ca
from privca.home import CAHome, atomic_write_many, check_home
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
from privca.keys.custody import HomeCustody, SecretSource
from privca.keys.types import DEFAULT_LEAF_KEY, KeyType, key_type_of
from privca.policy import IssuancePolicy
from privca.publication import read_published_root_crl, root_crl_due, root_crl_file, sign_crl
from privca.registry import CaCertificate, Registry
from privca.rotation import ca_certificate_files, check_ca_days, reissue_root, rotate_issuing
from privca.settings import Settings
from privca.store import Store
from privca.store.database import sqlite_url
from privca.store.records import AuthorityRecord, CertificateRecord, RevocationOutcome
from privca.store.schema import SCHEMA_REVISION
from privca.store.view import InventoryView
from privca.x509 import profiles
from privca.x509.build import Issuer
from privca.x509.csr import CertificateRequest
from privca.x509.encoding import der_certificate, public_key_der, serial_hex
from privca.x509.names import parse_names
from privca.x509.verify import VerificationReport, check_certificate

if TYPE_CHECKING:
    from privca.store.acme import AcmeStore

PassphraseSource = SecretSource
Authority = CaCertificate | AuthorityRecord


class CertificateAuthority:
    """A CA home opened for work. Keys are unlocked only when something must be signed."""

    def __init__(
        self,
        home: CAHome,
        settings: Settings,
        store: Store,
        passphrase: SecretSource = None,
        *,
        pin: SecretSource = None,
        custody: HomeCustody | None = None,
    ) -> None:
        self.home = home
        self.settings = settings
        self._store = store
        self.inventory: InventoryView = store.view()
        self._custody = custody or HomeCustody(
            home,
            passphrase=passphrase,
            pin=pin,
            encrypted=settings.encrypted_keys,
            hsm_module=settings.hsm_module,
        )
        self._registry: Registry | None = None
        self._signers: dict[int, Issuer] = {}

    # establishing and opening -------------------------------------------------------------

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
        password = settings.store_password() if settings.store_url else None
        store = Store(url, password=password, sealer=custody.sealing_key())
        before = store.migrate()
        if before is not None and before != SCHEMA_REVISION:
            # Keys from before sealing existed: the migration could not reach private/.
            from privca.store.acme import AcmeStore

            AcmeStore.of(store).seal_plaintext_keys()
        return cls(ca_home, settings, store, custody=custody)

    def refresh(self) -> None:
        """Forget the snapshot of CA certificates (keeping unlocked keys), so a
        long-running process sees an issuing CA rotated by another process."""
        self._registry = None

    def reload_settings(self) -> None:
        """Read privca.toml again (an operator changed the policy while serving)."""
        self.settings = Settings.read(self.home.settings)

    def close(self) -> None:
        self._store.close()
        self._custody.close()

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        """Deprecated: the store is the authority's own; read through `inventory`, change
        through the named operations (revoke, supersede, ...)."""
        warnings.warn(
            "CertificateAuthority.store is private; use .inventory or a named operation",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._store

    def acme_store(self) -> AcmeStore:
        """The ACME tables of this CA's inventory, with the home's EAB sealing key."""
        from privca.store.acme import AcmeStore

        return AcmeStore.of(self._store)

    # the CA certificates ------------------------------------------------------------------

    @property
    def policy(self) -> IssuancePolicy:
        return self.settings.policy

    @property
    def registry(self) -> Registry:
        """The CA certificates as last read (see `refresh`)."""
        if self._registry is None:
            self._registry = Registry.from_records(self.inventory.authorities())
        return self._registry

    def authorities(self) -> list[CaCertificate]:
        """Every CA certificate of the home, oldest first."""
        return list(self.registry.authorities)

    @property
    def root(self) -> x509.Certificate:
        """The active root (NotFound if the inventory has none)."""
        return self.registry.root.certificate

    def issuing_record(self) -> CaCertificate:
        """The CA that signs services: the issuing CA, or the root if single-tier."""
        return self.registry.issuing

    @property
    def issuing(self) -> x509.Certificate:
        """The certificate that signs services: the issuing CA, or the root if single-tier."""
        return self.registry.issuing.certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates above a new leaf, root last."""
        return self.registry.chain

    def publishing_authorities(self) -> list[CaCertificate]:
        """CAs that sign leaves, so publish CRLs and answer OCSP (registry.publishing)."""
        signed = {r.id for r in self.registry.roots if self.inventory.has_certificates(r.id)}
        return self.registry.publishing(frozenset(signed))

    def authority_by_serial(self, serial: str) -> CaCertificate:
        """A CA by hex serial, or the active one by role (root, issuing or current)."""
        record = self.registry.select(serial)
        if record is None:
            raise NotFound(f"no CA with serial or role '{serial}'", "see `privca check`")
        return record

    def issuer_of(self, record: CertificateRecord) -> CaCertificate | None:
        """The CA certificate that signed `record`."""
        return self.registry.by_id(record.issuer_id)

    def chain_of(self, record: CertificateRecord) -> tuple[x509.Certificate, ...]:
        """The CA certificates above `record`, root last (empty if its CA is unknown)."""
        issuer = self.issuer_of(record)
        return self.registry.chain_of(issuer) if issuer is not None else ()

    def _entry(self, authority: Authority) -> CaCertificate:
        entry = self.registry.by_id(authority.id)
        if entry is None:
            self.refresh()
            entry = self.registry.by_id(authority.id)
        if entry is None:
            raise NotFound(f"no CA with id {authority.id} in the inventory")
        return entry

    def signer(self, authority: Authority) -> Issuer:
        """The Issuer (certificate + unlocked private key) of one CA.

        Raises:
            KeyUnavailable: the key is missing or does not match the certificate.
            WrongPassphrase: the passphrase (or PIN) does not unlock it.
            InsecurePermissions: the key file or private/ is open to others.
        """
        cached = self._signers.get(authority.id)
        if cached is not None:
            return cached
        entry = self._entry(authority)
        key = self._custody.load_for(entry.certificate, entry.key_ref, entry.role)
        signer = Issuer.from_certificate(entry.certificate, key)
        self._signers[entry.id] = signer
        return signer

    # issuance -----------------------------------------------------------------------------

    def issue(
        self,
        names: Sequence[str],
        *,
        profile: str = profiles.DEFAULT_LEAF_PROFILE.name,
        key_type: KeyType = DEFAULT_LEAF_KEY,
        days: int | None = None,
        common_name: str | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Generate a key and certify it for `names`. The key is returned, never stored.

        `common_name` sets the subject CN (see x509/subject.py for what each profile
        allows); by default it is the first DNS name.

        Raises:
            InputError: a name is malformed. PolicyError: the policy refuses a name, the
            key type, the validity or the CN. Errors of `signer` and StoreUnavailable.
        """
        parsed = parse_names(names)
        check_key_type_allowed(self.policy, key_type)
        # Validate before spending time on key generation (RSA-4096 takes a while).
        self.policy.check_names(parsed)
        leaf = profiles.leaf_profile(profile)
        if common_name is not None:
            common_name = check_common_name(self.policy, common_name, parsed, leaf)
        validity(self.policy, leaf, self.issuing, days, now or utcnow())
        private_key = key_type.generate()
        request = CertificateRequest(
            public_key=private_key.public_key(),
            names=tuple(parsed),
            ignored=(),
            asks_for_ca=False,
            source="generated key",
            common_name=common_name,
        )
        issued = self.sign_requests([request], profile=profile, days=days, now=now)[0]
        return dataclasses.replace(issued, private_key=private_key)

    def sign_requests(
        self,
        requests: Sequence[CertificateRequest],
        *,
        profile: str = profiles.DEFAULT_LEAF_PROFILE.name,
        days: int | None = None,
        strict: bool = False,
        now: dt.datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[IssuedCertificate]:
        """Sign many requests: all are validated before any is signed (all or nothing).

        Each request's `common_name` (set by the caller, never read from the CSR) becomes
        the subject CN under the same rules as `issue(common_name=...)`.

        Raises:
            PolicyError: the policy refuses a request (names, key, validity, --strict, a
            CA's or a compromised key). Errors of `signer` and StoreUnavailable.
        """
        if not requests:
            return []
        issuer = self.registry.issuing
        issuance = LeafIssuance(
            store=self._store,
            registry=self.registry,
            policy=self.policy,
            base_url=self.settings.base_url,
            issuer=issuer,
            signer=lambda: self.signer(issuer),
        )
        return issuance.sign(
            requests,
            profile=profile,
            days=days,
            strict=strict,
            now=now or utcnow(),
            progress=progress,
        )

    def issue_ocsp_responder(
        self, authority: Authority, *, days: int = 30, now: dt.datetime | None = None
    ) -> tuple[x509.Certificate, PrivateKeyTypes]:
        """A delegated OCSP responder certificate (OCSPSigning, ocsp-nocheck) for one CA.

        The key goes to the caller only (privca serve keeps it 0600 in the home's
        private/serve/ to reuse it); the certificate is recorded like any other before it
        is returned."""
        entry = self._entry(authority)
        signer = self.signer(entry)
        return issue_ocsp_responder(self._store, entry, signer, days, now or utcnow())

    # verification and inventory -----------------------------------------------------------

    def verify(
        self,
        certificate: x509.Certificate,
        *,
        intermediates: Sequence[x509.Certificate] = (),
        name: str | None = None,
        private_key: PrivateKeyTypes | None = None,
        roots: Sequence[x509.Certificate] | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[VerificationReport, str]:
        """Validate against our root (or `roots`), and look the serial up in the inventory:
        its status there, or "unknown"."""
        now = now or utcnow()
        report = check_certificate(
            certificate,
            roots if roots is not None else [self.root],
            [*intermediates, *self.registry.intermediates()],
            now,
            name,
            public_key_der(private_key.public_key()) if private_key is not None else None,
        )
        record = self.inventory.get(certificate.serial_number)
        if record is None or record.der != der_certificate(certificate):
            return report, "unknown"
        return report, record.status_at(now)

    def certificates(
        self,
        *,
        expiring_within: dt.timedelta | None = None,
        status: str | None = None,
        name_pattern: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[CertificateRecord]:
        """Signed certificates, soonest expiry first (InputError for an unknown status)."""
        now = now or utcnow()
        return self.inventory.find(
            name_pattern=name_pattern,
            status=status,
            expiring_before=now + expiring_within if expiring_within is not None else None,
            now=now,
        )

    def lookup(
        self, serial_or_name: str, now: dt.datetime | None = None, *, unique: bool = False
    ) -> CertificateRecord:
        """A certificate by hex serial (colons allowed) or by one of its names.

        By name, the valid certificate is preferred; with `unique`, a name that matches
        several valid certificates is refused rather than guessed.

        Raises:
            NotFound: nothing matches. InputError: `unique` and several valid ones match.
        """
        now = now or utcnow()
        text = serial_or_name.strip().lower().replace(":", "")
        if text and all(ch in "0123456789abcdef" for ch in text):
            record = self.inventory.get(int(text, 16))
            if record is not None and record.der is not None:
                return record
        try:
            name = str(parse_names([serial_or_name])[0])
        except InputError:
            name = serial_or_name
        matches = self.inventory.find_by_name(name, now)
        if not matches:
            raise NotFound(
                f"no certificate with serial or name '{serial_or_name}' in the inventory",
                "see `privca list`",
            )
        valid = [m for m in matches if m.status_at(now) == "valid"]
        if unique and len(valid) > 1:
            serials = ", ".join(serial_hex(r.serial) for r in valid)
            raise InputError(
                f"name '{serial_or_name}' matches {len(valid)} valid certificates: {serials}",
                "give the serial of the one you mean",
            )
        return (valid or matches)[0]

    def certificate_status(self, authority: Authority, serial: int) -> CertificateRecord | None:
        """The inventory record of `serial` under `authority`, if it was ever signed
        (read only: an OCSP request never writes)."""
        record = self.inventory.get(serial)
        if record is None or record.der is None or record.issuer_id != authority.id:
            return None
        return record

    # revocation ---------------------------------------------------------------------------

    def revoke(
        self,
        serial_or_name: str,
        reason: str = "unspecified",
        now: dt.datetime | None = None,
    ) -> tuple[CertificateRecord, RevocationOutcome]:
        """Revoke, or make an earlier revocation keyCompromise (the first date is kept).

        Any other change of an existing revocation is refused (PolicyError): a reason only
        ever gets worse, so whoever holds a stolen key cannot pre-empt keyCompromise with a
        milder reason. keyCompromise bars the public key for good.

        Raises:
            InputError: unknown reason. NotFound: no such certificate. PolicyError: the
            change of reason is refused. StoreUnavailable.
        """
        from privca.x509.crl import REASONS

        if reason not in REASONS:
            raise InputError(
                f"revocation reason '{reason}' is not one privca knows",
                "use one of: " + ", ".join(REASONS),
            )
        now = now or utcnow()
        record = self.lookup(serial_or_name, now, unique=True)
        return self._store.revoke(record.serial, reason, now, record.public_key_sha256)

    def supersede(self, old: int, new: int, now: dt.datetime | None = None) -> None:
        """Record that certificate `new` replaces `old` (renew, ACME `replaces`)."""
        self._store.mark_superseded(old, new, now or utcnow())

    def apply_scheduled_revocations(self, now: dt.datetime | None = None) -> list[int]:
        """Write the scheduled revocations that are due (reads already count them); for
        `privca crl` and the server's scheduler. Returns their serials."""
        return self._store.apply_due_revocations(now or utcnow())

    def crl(
        self,
        authority: Authority | None = None,
        now: dt.datetime | None = None,
        *,
        days: int | None = None,
    ) -> x509.CertificateRevocationList:
        """`privca crl`: write the scheduled revocations that are due, then a full CRL for
        one CA (default: the issuing CA) with the next CRLNumber.

        `days` overrides the nextUpdate interval, e.g. for the long-lived CRL of a root
        whose key is kept offline."""
        now = now or utcnow()
        self.apply_scheduled_revocations(now)
        return self.sign_crl(authority, now, days=days)

    def sign_crl(
        self,
        authority: Authority | None = None,
        now: dt.datetime | None = None,
        *,
        days: int | None = None,
    ) -> x509.CertificateRevocationList:
        """A full CRL for one CA with the next CRLNumber (never reused, never lower),
        writing nothing else (the server's path): a scheduled revocation that is due is
        listed whether or not it has been written."""
        now = now or utcnow()
        entry = self._entry(authority) if authority is not None else self.registry.issuing
        signer = self.signer(entry)
        next_update = now + dt.timedelta(days=days or self.settings.crl_days)
        return sign_crl(self._store, entry.id, signer, now, next_update)

    @property
    def root_crl_file(self) -> Path:
        """Where `privca crl --root` leaves the root's CRL, for when its key goes offline."""
        return root_crl_file(self.home)

    def published_root_crl(self, now: dt.datetime) -> x509.CertificateRevocationList:
        """The root CRL made earlier with `privca crl --root`, if it is still current
        (KeyUnavailable otherwise)."""
        return read_published_root_crl(self.home, now)

    def root_key_present(self) -> bool:
        """True if the active root's key is at hand (a file in private/, or an HSM)."""
        root = self.registry.active("root")
        return root is not None and self._custody.is_present(root.key_ref)

    def root_crl_due(self, now: dt.datetime) -> bool:
        """True when the published root CRL is missing or past half its life: time for
        `privca crl` to publish a new one while the root key is at hand."""
        return root_crl_due(self.home, now)

    def key_file(self, authority: Authority) -> Path | None:
        """The file holding a CA's key, or None when it is on a token."""
        return self._custody.key_file(self._entry(authority).key_ref)

    # renewal and rotation -----------------------------------------------------------------

    def renew(
        self,
        serial_or_name: str,
        *,
        days: int | None = None,
        new_key: bool = True,
        key_type: KeyType | None = None,
        revoke_old_after: dt.timedelta | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Same names and profile, a new serial; the old certificate is marked superseded,
        and with `revoke_old_after` revoked (reason superseded) once that grace has passed.

        Raises:
            NotFound, InputError: as `lookup`. PolicyError: a revoked certificate's key
            may not be reused; as `issue` and `sign_requests`.
        """
        now = now or utcnow()
        old = self.lookup(serial_or_name, now, unique=True)
        if old.status == "revoked" and not new_key:
            raise PolicyError(
                f"certificate {serial_hex(old.serial)} is revoked; its key may not be reused",
                "renew with --new-key",
            )
        if old.der is None:
            raise NotFound(f"certificate {serial_hex(old.serial)} was never signed")
        old_cert = x509.load_der_x509_certificate(old.der)
        names = tuple(parse_names(old.names))
        common_name = kept_common_name(self.policy, old_cert, names, old.profile)
        if new_key:
            renewed = self.issue(
                old.names,
                profile=old.profile,
                key_type=key_type or key_type_of(old_cert.public_key()),
                days=days,
                common_name=common_name,
                now=now,
            )
        else:
            request = CertificateRequest(
                public_key=old_cert.public_key(),
                names=names,
                ignored=(),
                asks_for_ca=False,
                source=f"certificate {serial_hex(old.serial)}",
                common_name=common_name,
            )
            renewed = self.sign_requests([request], profile=old.profile, days=days, now=now)[0]
        self._store.mark_superseded(old.serial, renewed.serial, utcnow())
        if revoke_old_after is not None and old.status != "revoked":
            at = now + revoke_old_after
            if revoke_old_after <= dt.timedelta(0):
                self._store.revoke(old.serial, "superseded", at, None)
            else:
                self._store.schedule_revocation(old.serial, at, utcnow())
        return renewed

    def rotate_issuing(
        self,
        *,
        key_type: KeyType | None = None,
        days: int = profiles.ISSUING.default_days,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A new issuing CA key and certificate under the same root. New certificates come
        from it at once; the old one keeps its key so it can still sign CRLs and OCSP.

        Raises:
            InputError: `days` out of range. PolicyError: the root has expired. Errors of
            `signer` (the root key), KeyUnavailable (HSM) and StoreUnavailable.
        """
        now = now or utcnow()
        root = self.registry.root
        cert = rotate_issuing(
            store=self._store,
            registry=self.registry,
            custody=self._custody,
            root=lambda: self.signer(root),
            policy=self.policy,
            name=self.settings.name,
            base_url=self.settings.base_url,
            key_type=key_type,
            days=days,
            now=now,
        )
        self.refresh()
        atomic_write_many(ca_certificate_files(self.home, self.chain, issuing=cert))
        if self.settings.single_tier:
            self.settings = dataclasses.replace(self.settings, single_tier=False)
            self.settings.write(self.home.settings)
        return cert

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
