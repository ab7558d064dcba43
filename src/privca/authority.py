"""CertificateAuthority: establish, load, issue, sign CSRs, verify, and the inventory.

The only code that orders "record, then return": every certificate is committed to the
store as an intent before the CA key signs it, and as a result before it is handed back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from privca._time import utcnow
from privca.errors import AlreadyExists, InputError, KeyUnavailable, NotFound, PolicyError
from privca.home import CAHome, HomeConstruction, atomic_write, check_home
from privca.keys.files import read_ca_key, write_ca_key
from privca.keys.sealing import SealingKey
from privca.keys.types import DEFAULT_ISSUING_KEY, DEFAULT_LEAF_KEY, DEFAULT_ROOT_KEY, KeyType
from privca.policy import IssuancePolicy
from privca.settings import Settings
from privca.store import AuthorityRecord, CertificateRecord, Intent, RevocationOutcome, Store
from privca.store.acme import AcmeStore
from privca.store.database import check_store_url, sqlite_url
from privca.store.inventory import random_serial
from privca.store.schema import SCHEMA_REVISION
from privca.urls import OCSP_PATH, ROOT_CRL_PATH, absolute, ca_certificate_path, crl_path
from privca.x509 import profiles
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    ca_subject,
    leaf_subject,
    self_issuer,
    subject_key_identifier,
)
from privca.x509.csr import CertificateRequest
from privca.x509.encoding import (
    der_certificate,
    pem_certificate,
    pem_certificates,
    public_key_der,
    serial_hex,
)
from privca.x509.names import SubjectName, files_stem, parse_names
from privca.x509.profiles import Profile
from privca.x509.verify import VerificationReport, check_certificate

PassphraseSource = bytes | Callable[[], bytes | None] | None

# Leaves start a little in the past so a client whose clock lags does not reject them.
BACKDATE = dt.timedelta(minutes=5)
MAX_CA_DAYS = 36500
# Shorter passphrases for CA keys are refused (an HSM PIN is the token's business).
MIN_PASSPHRASE_LENGTH = 8


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed, recorded certificate; `private_key` only when privca generated it."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the CA certificates above it, root last
    names: tuple[SubjectName, ...]
    profile: str
    private_key: Any = None
    ignored_extensions: tuple[str, ...] = field(default=())

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def file_stem(self) -> str:
        return files_stem(self.names)

    def certificate_pem(self) -> bytes:
        return pem_certificate(self.certificate)

    def chain_pem(self) -> bytes:
        """Leaf + intermediates: what a server sends (the root is the client's anchor)."""
        return self.certificate_pem() + _intermediates_pem(self.chain)


@functools.lru_cache(maxsize=8)
def _intermediates_pem(chain: tuple[x509.Certificate, ...]) -> bytes:
    # Shared by every certificate of a batch: encode the CA certificates once.
    return pem_certificates([c for c in chain if c.subject != c.issuer])


def _public_key_sha256(public_key: Any) -> str:
    return hashlib.sha256(public_key_der(public_key)).hexdigest()


def _check_ca_days(days: int, what: str) -> None:
    if days <= 0 or days > MAX_CA_DAYS:
        raise InputError(
            f"{what} validity of {days} days is out of range", f"use 1 to {MAX_CA_DAYS} days"
        )


def _subject_text(name: x509.Name) -> str:
    return name.rfc4514_string()


class CertificateAuthority:
    """A CA home opened for work. Keys are loaded only when something must be signed."""

    def __init__(
        self, home: CAHome, settings: Settings, store: Store, passphrase: PassphraseSource
    ):
        self.home = home
        self.settings = settings
        self.store = store
        self._passphrase = passphrase
        self._authorities: list[AuthorityRecord] | None = None
        self._issuer: Issuer | None = None
        self._signers: dict[int, Issuer] = {}
        self._hsm: Any = None

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
        store_url: str = "",
        store_password_file: Path | None = None,
        base_url: str = "",
        hsm_module: str = "",
        hsm_token: str = "",
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Create a CA (root + issuing by default) in `home`, refusing to overwrite one.

        With `hsm_module` and `hsm_token` the CA keys are generated inside that PKCS#11
        token (non-extractable) and `passphrase` is the token's user PIN.

        `store_url` (PostgreSQL) may not carry a password: it comes from
        `store_password_file` (recorded in privca.toml as a path), $PRIVCA_STORE_PASSWORD,
        or libpq's own $PGPASSFILE / ~/.pgpass.

        Everything is validated and built in memory first; files are written last, with
        privca.toml (the mark of an established CA) written at the very end.
        """
        ca_home = CAHome(Path(home))
        if ca_home.exists() or ca_home.key_path("root").exists():
            raise AlreadyExists(
                f"a CA already exists at '{ca_home.root}'",
                "choose another --home; privca never overwrites a CA",
            )
        name = name.strip()
        if not name or len(name) > 64 or any(ord(ch) < 32 for ch in name):
            raise InputError(
                f"CA name '{name}' must be 1 to 64 printable characters",
                "e.g. --name 'Example Internal CA'",
            )
        _check_ca_days(root_days, "root")
        _check_ca_days(issuing_days, "issuing CA")
        if not single_tier and issuing_days > root_days:
            raise InputError(
                f"issuing CA validity of {issuing_days} days exceeds the root's {root_days}",
                "give --issuing-days no larger than --root-days",
            )
        if bool(hsm_module) != bool(hsm_token):
            raise InputError(
                "an HSM needs both a module and a token label", "give --hsm-module and --hsm-token"
            )
        if hsm_module and not passphrase:
            raise InputError(
                "the HSM token's PIN is required", "use --passphrase-file with the PIN"
            )
        if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_LENGTH and not hsm_module:
            raise InputError(
                f"the passphrase is shorter than {MIN_PASSPHRASE_LENGTH} characters",
                "use a long passphrase; it protects the CA keys at rest",
            )
        policy = IssuancePolicy.build(permitted, excluded)
        store_url = check_store_url(store_url) if store_url else ""
        if base_url and not base_url.startswith(("http://", "https://")):
            raise InputError(f"URL '{base_url}' must start with http:// or https://")
        root_key_type = key_type or DEFAULT_ROOT_KEY
        issuing_type = issuing_key_type or key_type or DEFAULT_ISSUING_KEY
        now = now or utcnow()
        settings = Settings(
            name=name,
            single_tier=single_tier,
            policy=policy,
            store_url=store_url,
            base_url=base_url.rstrip("/"),
            encrypted_keys=passphrase is not None,
            hsm_module=hsm_module,
            store_password_file=str(Path(store_password_file).absolute())
            if store_password_file
            else "",
        )
        store_password = settings.store_password() if store_url else None

        hsm = None
        key_refs = {"root": "private/root.key", "issuing": "private/issuing.key"}
        if hsm_module:
            from privca.keys.pkcs11 import Pkcs11Session

            hsm = Pkcs11Session(hsm_module, hsm_token, passphrase)
            root_uri, root_key = hsm.generate(root_key_type, "root")
            key_refs["root"] = str(root_uri)
        else:
            root_key = root_key_type.generate()
        root_subject = ca_subject(name if single_tier else f"{name} Root")
        root_cert = build_certificate(
            CertificateSpec(
                subject=root_subject,
                public_key=root_key.public_key(),
                profile=profiles.ROOT,
                serial=random_serial(),
                not_before=now - BACKDATE,
                not_after=now + dt.timedelta(days=root_days),
                permitted=policy.permitted,
                excluded=policy.excluded,
            ),
            self_issuer(root_subject, root_key),
        )
        issuing_key = issuing_cert = None
        if not single_tier:
            if hsm is not None:
                issuing_uri, issuing_key = hsm.generate(issuing_type, "issuing")
                key_refs["issuing"] = str(issuing_uri)
            else:
                issuing_key = issuing_type.generate()
            issuing_cert = build_certificate(
                CertificateSpec(
                    subject=ca_subject(f"{name} Issuing CA"),
                    public_key=issuing_key.public_key(),
                    profile=profiles.ISSUING,
                    serial=random_serial(),
                    not_before=now - BACKDATE,
                    not_after=min(
                        now + dt.timedelta(days=issuing_days), root_cert.not_valid_after_utc
                    ),
                    permitted=policy.permitted,
                    excluded=policy.excluded,
                    ca_issuers_url=absolute(
                        settings.base_url, ca_certificate_path(root_cert.serial_number)
                    ),
                    crl_url=absolute(settings.base_url, ROOT_CRL_PATH),
                ),
                Issuer.from_certificate(root_cert, root_key),
            )

        construction = HomeConstruction(ca_home)
        try:
            construction.make_directories()
            # Made now, so that copies of the home (replicas, backups) carry it from the start.
            SealingKey(ca_home.eab_sealing_key).create()
            construction.track(ca_home.eab_sealing_key)
            if hsm is None:
                write_ca_key(ca_home.key_path("root"), root_key, passphrase)
                construction.track(ca_home.key_path("root"))
            atomic_write(ca_home.root_cert, pem_certificate(root_cert))
            construction.track(ca_home.root_cert)
            chain = [root_cert]
            if issuing_cert is not None:
                if hsm is None:
                    write_ca_key(ca_home.key_path("issuing"), issuing_key, passphrase)
                    construction.track(ca_home.key_path("issuing"))
                atomic_write(ca_home.issuing_cert, pem_certificate(issuing_cert))
                construction.track(ca_home.issuing_cert)
                chain = [issuing_cert, root_cert]
            atomic_write(ca_home.chain, pem_certificates(chain))
            construction.track(ca_home.chain)

            store = Store(
                store_url or sqlite_url(ca_home.database),
                password=store_password,
                sealer=SealingKey(ca_home.eab_sealing_key),
            )
            if not store_url:
                construction.track(ca_home.database)
            store.migrate()
            if store_url and store.authorities():
                raise AlreadyExists(
                    "the store at --store-url already holds a CA",
                    "give each CA its own database, or point privca.toml of this home at it",
                )
            root_id = store.add_authority(
                "root",
                root_subject.rfc4514_string(),
                root_cert.serial_number,
                der_certificate(root_cert),
                key_refs["root"],
                root_cert.not_valid_after_utc,
                now,
                active=True,
            )
            if issuing_cert is not None:
                # `privca serve` never signs the root's CRL, and it is the CDP of the
                # issuing CA: publish the first one now, while the root key is at hand.
                _publish_root_crl(
                    ca_home, construction, store, root_id, root_cert, root_key, settings, now
                )
                store.add_authority(
                    "issuing",
                    issuing_cert.subject.rfc4514_string(),
                    issuing_cert.serial_number,
                    der_certificate(issuing_cert),
                    key_refs["issuing"],
                    issuing_cert.not_valid_after_utc,
                    now,
                    active=True,
                )
            settings.write(ca_home.settings)
        except BaseException:
            construction.undo()
            if hsm is not None:
                hsm.close()
            raise
        ca = cls(ca_home, settings, store, passphrase)
        ca._hsm = hsm
        return ca

    @classmethod
    def open(cls, home: Path, passphrase: PassphraseSource = None) -> CertificateAuthority:
        """Open an established CA home, refusing one others could read or change."""
        ca_home = CAHome(Path(home))
        check_home(ca_home)
        settings = Settings.read(ca_home.settings)
        sealer = SealingKey(ca_home.eab_sealing_key)
        if settings.store_url:
            store = Store(settings.store_url, password=settings.store_password(), sealer=sealer)
        else:
            store = Store(sqlite_url(ca_home.database), sealer=sealer)
        before = store.migrate()
        if before is not None and before != SCHEMA_REVISION:
            # Keys from before sealing existed: the migration could not reach private/.
            AcmeStore.of(store).seal_plaintext_keys()
        return cls(ca_home, settings, store, passphrase)

    def refresh(self) -> None:
        """Forget the cached CA list (keeping loaded keys), so a long-running process sees
        an issuing CA rotated by another process."""
        self._authorities = None
        self._issuer = None

    def close(self) -> None:
        self.store.close()
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # the CA certificates ------------------------------------------------------------------

    @property
    def policy(self) -> IssuancePolicy:
        return self.settings.policy

    def authorities(self) -> list[AuthorityRecord]:
        if self._authorities is None:
            self._authorities = self.store.authorities()
        return self._authorities

    def _active(self, role: str) -> AuthorityRecord | None:
        for record in reversed(self.authorities()):
            if record.role == role and record.active:
                return record
        return None

    @property
    def root(self) -> x509.Certificate:
        record = self._active("root")
        if record is None:
            raise NotFound("the inventory has no root CA", "is this a privca home?")
        return x509.load_der_x509_certificate(record.der)

    def issuing_record(self) -> AuthorityRecord:
        record = self._active("issuing") or self._active("root")
        assert record is not None
        return record

    @property
    def issuing(self) -> x509.Certificate:
        """The certificate that signs services: the issuing CA, or the root if single-tier."""
        return x509.load_der_x509_certificate(self.issuing_record().der)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates above a new leaf, root last."""
        issuing, root = self.issuing, self.root
        return (root,) if issuing == root else (issuing, root)

    def _passphrase_bytes(self) -> bytes | None:
        source = self._passphrase
        if callable(source):
            source = source()
            self._passphrase = source
        return source

    def _load_issuer(self) -> Issuer:
        if self._issuer is None:
            self._issuer = self.signer(self.issuing_record())
        return self._issuer

    def _hsm_session(self, pin: bytes | None) -> Any:
        if self._hsm is None:
            from privca.keys.pkcs11 import Pkcs11Session, Pkcs11Uri

            if not self.settings.hsm_module:
                raise KeyUnavailable(
                    "a CA key is in an HSM but privca.toml names no hsm_module",
                    "set hsm_module under [ca] in privca.toml",
                )
            tokens = {
                Pkcs11Uri.parse(r.key_ref).token
                for r in self.authorities()
                if r.key_ref.startswith("pkcs11:")
            }
            self._hsm = Pkcs11Session(self.settings.hsm_module, sorted(tokens)[0], pin)
        return self._hsm

    def signer(self, record: AuthorityRecord) -> Issuer:
        """The Issuer (certificate + private key) of one CA record."""
        cached = self._signers.get(record.id)
        if cached is not None:
            return cached
        passphrase = self._passphrase_bytes() if self.settings.encrypted_keys else None
        if record.key_ref.startswith("pkcs11:"):
            from privca.keys.pkcs11 import Pkcs11Uri

            key = self._hsm_session(passphrase).key(Pkcs11Uri.parse(record.key_ref))
        else:
            key = read_ca_key(self.home.root / record.key_ref, passphrase)
        cert = x509.load_der_x509_certificate(record.der)
        if public_key_der(key.public_key()) != public_key_der(cert.public_key()):
            raise KeyUnavailable(
                f"the key '{record.key_ref}' does not match the {record.role} certificate",
                "restore the right key file into private/",
            )
        signer = Issuer.from_certificate(cert, key)
        self._signers[record.id] = signer
        return signer

    # issuance -----------------------------------------------------------------------------

    def _validity(
        self, profile: Profile, days: int | None, now: dt.datetime
    ) -> tuple[dt.datetime, dt.datetime]:
        issuer_not_after = self.issuing.not_valid_after_utc
        if days is None:
            # The default is capped silently by the policy and the issuing CA's own life.
            days = min(profile.default_days, self.policy.max_days)
            not_after = min(now + dt.timedelta(days=days), issuer_not_after)
        else:
            self.policy.check_days(days)
            not_after = now + dt.timedelta(days=days)
            self.policy.check_not_after(not_after, issuer_not_after, days)
        if not_after <= now:
            raise PolicyError(
                "the issuing CA has expired", "rotate the issuing CA (privca rotate issuing)"
            )
        return max(now - BACKDATE, self.issuing.not_valid_before_utc), not_after

    def _ca_public_keys(self) -> dict[bytes, AuthorityRecord]:
        return {
            public_key_der(x509.load_der_x509_certificate(r.der).public_key()): r
            for r in self.authorities()
        }

    def _check_not_ca_key(
        self, public_key: Any, source: str, ca_keys: dict[bytes, AuthorityRecord] | None = None
    ) -> None:
        ca_keys = ca_keys if ca_keys is not None else self._ca_public_keys()
        record = ca_keys.get(public_key_der(public_key))
        if record is not None:
            raise PolicyError(
                f"{source} carries the public key of the {record.role} CA",
                "a service must have its own key; generate a new one",
            )

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
        allows); by default it is the first DNS name."""
        parsed = parse_names(names)
        if key_type not in self.policy.key_types:
            raise PolicyError(
                f"key type {key_type.value} is not allowed by the policy",
                "allowed: " + ", ".join(k.value for k in self.policy.key_types),
            )
        # Validate before spending time on key generation (RSA-4096 takes a while).
        self.policy.check_names(parsed)
        leaf = profiles.leaf_profile(profile)
        if common_name is not None:
            common_name = self._check_common_name(common_name, parsed, leaf)
        self._validity(leaf, days, now or utcnow())
        private_key = key_type.generate()
        request = CertificateRequest(
            public_key=private_key.public_key(),
            names=parsed,
            ignored=(),
            asks_for_ca=False,
            source="generated key",
            common_name=common_name,
        )
        issued = self.sign_requests([request], profile=profile, days=days, now=now)[0]
        return IssuedCertificate(
            certificate=issued.certificate,
            chain=issued.chain,
            names=issued.names,
            profile=issued.profile,
            private_key=private_key,
        )

    def _check_common_name(self, text: str, names: Sequence[SubjectName], profile: Profile) -> str:
        """The CN as it goes into the certificate, once the profile and policy allow it."""
        from privca._text import printable
        from privca.x509.subject import names_to_check, parse_common_name

        common_name = parse_common_name(text)
        for name in names_to_check(common_name, names, profile):
            try:
                self.policy.check_name(name)
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
        the subject CN under the same rules as `issue(common_name=...)`."""
        if not requests:
            return []
        leaf = profiles.leaf_profile(profile)
        now = now or utcnow()
        not_before, not_after = self._validity(leaf, days, now)
        ca_keys = self._ca_public_keys()
        common_names: list[str | None] = []
        for request in requests:
            if strict:
                request.check_strict()
            self.policy.check_names(request.names)
            common_names.append(
                None
                if request.common_name is None
                else self._check_common_name(request.common_name, request.names, leaf)
            )
            self.policy.check_public_key(request.public_key)
            self._check_not_ca_key(request.public_key, request.source, ca_keys)
        key_hashes = [_public_key_sha256(request.public_key) for request in requests]
        blocked = self.store.blocked(key_hashes)
        for request, key_hash in zip(requests, key_hashes, strict=True):
            if key_hash in blocked:
                raise PolicyError(
                    f"{request.source} carries a public key revoked for keyCompromise",
                    "generate a new key; a compromised key is never certified again",
                )
        issuer = self._load_issuer()
        issuer_record = self.issuing_record()
        base = self.settings.base_url
        subjects = [
            leaf_subject(request.names, common_name)
            for request, common_name in zip(requests, common_names, strict=True)
        ]
        intents = [
            Intent(
                issuer_id=issuer_record.id,
                profile=leaf.name,
                names=tuple(str(n) for n in request.names),
                subject=_subject_text(subject),
                not_before=not_before,
                not_after=not_after,
                public_key_sha256=key_hash,
            )
            for request, subject, key_hash in zip(requests, subjects, key_hashes, strict=True)
        ]
        serials = self.store.reserve(intents, now)
        signed: list[x509.Certificate] = []
        try:
            for index, (request, subject, serial) in enumerate(
                zip(requests, subjects, serials, strict=True)
            ):
                spec = CertificateSpec(
                    subject=subject,
                    public_key=request.public_key,
                    profile=leaf,
                    serial=serial,
                    not_before=not_before,
                    not_after=not_after,
                    names=request.names,
                    crl_url=absolute(base, crl_path(issuer_record.serial)),
                    ocsp_url=absolute(base, OCSP_PATH),
                    # The leaf's own issuer by serial: still served after later rotations.
                    ca_issuers_url=absolute(base, ca_certificate_path(issuer_record.serial)),
                )
                signed.append(build_certificate(spec, issuer))
                if progress is not None:
                    progress(index + 1)
        except BaseException:
            with contextlib.suppress(Exception):
                self.store.abandon(serials[len(signed) :], utcnow(), "signing failed")
            raise
        self.store.complete(
            [(cert.serial_number, der_certificate(cert)) for cert in signed], utcnow()
        )
        chain = self.chain
        return [
            IssuedCertificate(
                certificate=cert,
                chain=chain,
                names=request.names,
                profile=leaf.name,
                ignored_extensions=request.ignored,
            )
            for cert, request in zip(signed, requests, strict=True)
        ]

    # verification and inventory -----------------------------------------------------------

    def verify(
        self,
        certificate: x509.Certificate,
        *,
        intermediates: Sequence[x509.Certificate] = (),
        name: str | None = None,
        private_key: Any = None,
        roots: Sequence[x509.Certificate] | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[VerificationReport, str]:
        """Validate against our root (or `roots`), and look the serial up in the inventory."""
        now = now or utcnow()
        known_intermediates = [c for c in self._all_ca_certificates() if c.subject != c.issuer]
        report = check_certificate(
            certificate,
            roots if roots is not None else [self.root],
            [*intermediates, *known_intermediates],
            now,
            name,
            public_key_der(private_key.public_key()) if private_key is not None else None,
        )
        record = self.store.get(certificate.serial_number)
        if record is None or record.der != der_certificate(certificate):
            return report, "unknown"
        return report, record.status_at(now)

    def _all_ca_certificates(self) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(r.der) for r in self.authorities()]

    def certificates(
        self,
        *,
        expiring_within: dt.timedelta | None = None,
        status: str | None = None,
        name_pattern: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[CertificateRecord]:
        now = now or utcnow()
        self.store.apply_due_revocations(now)
        return self.store.find(
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
        """
        now = now or utcnow()
        text = serial_or_name.strip().lower().replace(":", "")
        if text and all(ch in "0123456789abcdef" for ch in text):
            record = self.store.get(int(text, 16))
            if record is not None and record.der is not None:
                return record
        try:
            name = str(parse_names([serial_or_name])[0])
        except InputError:
            name = serial_or_name
        matches = self.store.find_by_name(name, now)
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
        milder reason. keyCompromise bars the public key for good."""
        from privca.x509.crl import REASONS

        if reason not in REASONS:
            raise InputError(
                f"revocation reason '{reason}' is not one privca knows",
                "use one of: " + ", ".join(REASONS),
            )
        now = now or utcnow()
        record = self.lookup(serial_or_name, now, unique=True)
        return self.store.revoke(record.serial, reason, now, record.public_key_sha256)

    def publishing_authorities(self) -> list[AuthorityRecord]:
        """CAs that sign leaves, so publish CRLs and answer OCSP: all issuing CAs, or the
        root of a single-tier CA."""
        issuing = [r for r in self.authorities() if r.role == "issuing"]
        if not issuing:
            return [r for r in self.authorities() if r.role == "root"]
        # A root that signed leaves itself (single-tier, then rotated; or imported) keeps
        # publishing for them.
        signers = self.store.issuer_ids_with_certificates()
        roots = [r for r in self.authorities() if r.role == "root" and r.id in signers]
        return roots + issuing

    def authority_by_serial(self, serial: str) -> AuthorityRecord:
        """A CA by hex serial, or the active one by role (root, issuing or current)."""
        record = select_authority(self.authorities(), serial)
        if record is None:
            raise NotFound(f"no CA with serial or role '{serial}'", "see `privca check`")
        return record

    def crl(
        self,
        authority: AuthorityRecord | None = None,
        now: dt.datetime | None = None,
        *,
        days: int | None = None,
    ) -> x509.CertificateRevocationList:
        """A full CRL for one CA, with the next CRLNumber (never reused, never lower).

        `days` overrides the nextUpdate interval, e.g. for the long-lived CRL of a root
        whose key is kept offline."""
        from privca.x509.crl import Revocation, build_crl

        now = now or utcnow()
        self.store.apply_due_revocations(now)
        authority = authority or self.issuing_record()
        signer = self.signer(authority)
        next_update = now + dt.timedelta(days=days or self.settings.crl_days)
        entries = [
            Revocation(e.serial, e.revoked_at, e.reason)
            for e in self.store.revoked_entries(authority.id, now)
        ]
        number = self.store.next_crl_number(authority.id, now, next_update)
        return build_crl(signer, entries, number, now, next_update)

    @property
    def root_crl_file(self) -> Path:
        """Where `privca crl --root` leaves the root's CRL, for when its key goes offline."""
        return self.home.crl / "root.crl"

    def published_root_crl(self, now: dt.datetime) -> x509.CertificateRevocationList:
        """The root CRL made earlier with `privca crl --root`, if it is still current."""
        path = self.root_crl_file
        try:
            crl = x509.load_der_x509_crl(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(
                "no root CRL was published",
                "with the root key at hand, run `privca crl --root`",
            ) from exc
        if crl.next_update_utc is not None and crl.next_update_utc <= now:
            raise KeyUnavailable(
                f"the published root CRL expired on {crl.next_update_utc:%Y-%m-%d}",
                "bring the root key back and run `privca crl --root`",
            )
        return crl

    def root_key_present(self) -> bool:
        """True if the active root's key is at hand (a file in private/, or an HSM)."""
        record = self._active("root")
        if record is None:
            return False
        return record.key_ref.startswith("pkcs11:") or (self.home.root / record.key_ref).exists()

    def root_crl_due(self, now: dt.datetime) -> bool:
        """True when the published root CRL is missing or past half its life: time for
        `privca crl` to publish a new one while the root key is at hand."""
        try:
            crl = x509.load_der_x509_crl(self.root_crl_file.read_bytes())
        except (OSError, ValueError):
            return True
        if crl.next_update_utc is None:
            return False
        this_update = crl.last_update_utc
        return now >= this_update + (crl.next_update_utc - this_update) / 2

    def certificate_status(
        self, authority: AuthorityRecord, serial: int
    ) -> CertificateRecord | None:
        """The inventory record of `serial` under `authority`, if it was ever signed."""
        record = self.store.get(serial)
        if record is None or record.der is None or record.issuer_id != authority.id:
            return None
        if record.status == "issued" and self.store.apply_due_revocations(utcnow()):
            record = self.store.get(serial) or record
        return record

    def issue_ocsp_responder(
        self, authority: AuthorityRecord, *, days: int = 30, now: dt.datetime | None = None
    ) -> tuple[x509.Certificate, Any]:
        """A delegated OCSP responder certificate (OCSPSigning, ocsp-nocheck) for one CA.

        The key goes to the caller only (privca serve keeps it 0600 in the home's
        private/serve/ to reuse it); the certificate is recorded like any other before it
        is returned.
        """
        now = now or utcnow()
        signer = self.signer(authority)
        key = DEFAULT_LEAF_KEY.generate()
        subject = ca_subject(f"{authority.common_name.removeprefix('CN=')[:44]} OCSP Responder")
        not_before = max(now - BACKDATE, signer.not_before_or(now))
        not_after = min(now + dt.timedelta(days=days), signer.not_after or now)
        intent = Intent(
            issuer_id=authority.id,
            profile=profiles.OCSP_RESPONDER.name,
            names=(),
            subject=_subject_text(subject),
            not_before=not_before,
            not_after=not_after,
            public_key_sha256=_public_key_sha256(key.public_key()),
        )
        (serial,) = self.store.reserve([intent], now)
        try:
            cert = build_certificate(
                CertificateSpec(
                    subject=subject,
                    public_key=key.public_key(),
                    profile=profiles.OCSP_RESPONDER,
                    serial=serial,
                    not_before=not_before,
                    not_after=not_after,
                ),
                signer,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.store.abandon([serial], utcnow(), "signing failed")
            raise
        self.store.complete([(serial, der_certificate(cert))], utcnow())
        return cert, key

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
        and with `revoke_old_after` revoked (reason superseded) once that grace has passed."""
        from privca.keys.types import key_type_of

        now = now or utcnow()
        old = self.lookup(serial_or_name, now, unique=True)
        if old.status == "revoked" and not new_key:
            raise PolicyError(
                f"certificate {serial_hex(old.serial)} is revoked; its key may not be reused",
                "renew with --new-key",
            )
        assert old.der is not None
        old_cert = x509.load_der_x509_certificate(old.der)
        names = parse_names(old.names)
        common_name = self._kept_common_name(old_cert, names, old.profile)
        if new_key:
            chosen = key_type or key_type_of(old_cert.public_key())
            renewed = self.issue(
                old.names,
                profile=old.profile,
                key_type=chosen,
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
        self.store.mark_superseded(old.serial, renewed.serial, utcnow())
        if revoke_old_after is not None and old.status != "revoked":
            self.store.schedule_revocation(old.serial, now + revoke_old_after, utcnow())
            if revoke_old_after <= dt.timedelta(0):
                self.store.apply_due_revocations(now + revoke_old_after)
        return renewed

    def _kept_common_name(
        self, certificate: x509.Certificate, names: Sequence[SubjectName], profile: str
    ) -> str | None:
        """The CN a renewal keeps: the old one, when it differs from the default and the
        rules still allow it (a hand-made certificate's odd CN is dropped, as before)."""
        from cryptography.x509.oid import NameOID

        attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not attributes or certificate.subject == leaf_subject(names):
            return None
        try:
            return self._check_common_name(
                str(attributes[0].value), names, profiles.leaf_profile(profile)
            )
        except InputError:
            return None

    def rotate_issuing(
        self,
        *,
        key_type: KeyType | None = None,
        days: int = profiles.ISSUING.default_days,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A new issuing CA key and certificate under the same root. New certificates come
        from it at once; the old one keeps its key so it can still sign CRLs and OCSP."""
        now = now or utcnow()
        _check_ca_days(days, "issuing CA")
        root_record = self._active("root")
        assert root_record is not None
        root = self.signer(root_record)
        current = self._active("issuing")
        if key_type is None:
            key_type = (
                key_type_of_certificate(x509.load_der_x509_certificate(current.der))
                if current is not None
                else DEFAULT_ISSUING_KEY
            )
        serial = random_serial()
        passphrase = self._passphrase_bytes() if self.settings.encrypted_keys else None
        if root_record.key_ref.startswith("pkcs11:"):
            uri, key = self._hsm_session(passphrase).generate(key_type, "issuing")
            key_ref = str(uri)
        else:
            key = key_type.generate()
            key_ref = f"private/issuing-{serial_hex(serial)[:12]}.key"
        base = self.settings.base_url
        root_cert = x509.load_der_x509_certificate(root_record.der)
        not_after = min(now + dt.timedelta(days=days), root_cert.not_valid_after_utc)
        if not_after <= now:
            raise PolicyError("the root has expired; a new issuing CA cannot be made under it")
        cert = build_certificate(
            CertificateSpec(
                subject=ca_subject(f"{self.settings.name} Issuing CA {serial_hex(serial)[:8]}"),
                public_key=key.public_key(),
                profile=profiles.ISSUING,
                serial=serial,
                not_before=now - BACKDATE,
                not_after=not_after,
                permitted=self.policy.permitted,
                excluded=self.policy.excluded,
                ca_issuers_url=absolute(base, ca_certificate_path(root_record.serial)),
                crl_url=absolute(base, ROOT_CRL_PATH),
            ),
            root,
        )
        if not key_ref.startswith("pkcs11:"):
            write_ca_key(self.home.root / key_ref, key, passphrase)
        self.store.add_authority(
            "issuing",
            cert.subject.rfc4514_string(),
            serial,
            der_certificate(cert),
            key_ref,
            cert.not_valid_after_utc,
            now,
            active=True,
        )
        atomic_write(self.home.issuing_cert, pem_certificate(cert))
        atomic_write(self.home.chain, pem_certificates([cert, root_cert]))
        if self.settings.single_tier:
            from dataclasses import replace

            self.settings = replace(self.settings, single_tier=False)
            self.settings.write(self.home.settings)
        self._authorities = None
        self._issuer = None
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
        """
        now = now or utcnow()
        old_record = self._active("root")
        assert old_record is not None
        old = x509.load_der_x509_certificate(old_record.der)
        signer = self.signer(old_record)
        not_after = now + dt.timedelta(days=days) if days is not None else old.not_valid_after_utc
        if days is not None:
            _check_ca_days(days, "root")
        if not_after <= now:
            raise PolicyError(
                "the root has expired; give --days for the re-issued root",
                "e.g. --days 3650",
            )
        serial = random_serial()
        # Keep the old key identifier: leaves and issuing CAs name it in their AKI.
        issuer = dataclasses.replace(signer, key_identifier=subject_key_identifier(old))
        cert = build_certificate(
            CertificateSpec(
                subject=old.subject,
                public_key=old.public_key(),
                profile=profiles.ROOT,
                serial=serial,
                not_before=now - BACKDATE,
                not_after=not_after,
                permitted=self.policy.permitted,
                excluded=self.policy.excluded,
                subject_key_identifier=subject_key_identifier(old),
            ),
            issuer,
        )
        self.store.add_authority(
            "root",
            cert.subject.rfc4514_string(),
            serial,
            der_certificate(cert),
            old_record.key_ref,
            cert.not_valid_after_utc,
            now,
            active=True,
        )
        atomic_write(self.home.root_cert, pem_certificate(cert))
        issuing = self._active("issuing")
        chain = [cert]
        if issuing is not None:
            chain.insert(0, x509.load_der_x509_certificate(issuing.der))
        atomic_write(self.home.chain, pem_certificates(chain))
        self.refresh()
        self._signers.pop(old_record.id, None)
        return cert

    def issuer_of(self, record: CertificateRecord) -> AuthorityRecord | None:
        for authority in self.authorities():
            if authority.id == record.issuer_id:
                return authority
        return None

    # what the ACME server needs (server/acme.py) -------------------------------------------

    def certificate_by_serial(self, serial: int) -> CertificateRecord | None:
        """The inventory record with this serial (pending and failed ones too), or None."""
        return self.store.get(serial)

    def supersede(self, old_serial: int, new_serial: int, now: dt.datetime | None = None) -> None:
        """Mark `old_serial` replaced by `new_serial`, as renew does (ACME: ARI `replaces`)."""
        self.store.mark_superseded(old_serial, new_serial, now or utcnow())

    def reload_settings(self) -> None:
        """Re-read privca.toml: an operator changed the policy under a running server."""
        self.settings = Settings.read(self.home.settings)

    def acme_repository(self) -> AcmeStore:
        """ACME's storage (privca.acme.repository.AcmeRepository) in this CA's database."""
        return AcmeStore.of(self.store)


def _publish_root_crl(
    home: CAHome,
    construction: HomeConstruction,
    store: Store,
    root_id: int,
    root_cert: x509.Certificate,
    root_key: Any,
    settings: Settings,
    now: dt.datetime,
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from privca.x509.crl import build_crl

    next_update = now + dt.timedelta(days=settings.root_crl_days)
    number = store.next_crl_number(root_id, now, next_update)
    crl = build_crl(Issuer.from_certificate(root_cert, root_key), [], number, now, next_update)
    path = home.crl / "root.crl"
    for target, data in ((path, crl.public_bytes(Encoding.DER)),
                         (path.with_suffix(".pem"), crl.public_bytes(Encoding.PEM))):  # fmt: skip
        atomic_write(target, data, 0o644)
        construction.track(target)


def select_authority(records: Sequence[AuthorityRecord], name: str) -> AuthorityRecord | None:
    """A CA among `records` by hex serial, or by alias: `root` is the active root,
    `issuing` and `current` the active issuing CA (the root of a single-tier CA); the
    latest active one wins, as it is the one that signs now."""
    text = name.lower().removesuffix(".crl")
    if text in ("issuing", "current"):
        roles = ("issuing", "root")
    elif text == "root":
        roles = ("root",)
    else:
        return next((r for r in records if serial_hex(r.serial) == text), None)
    for role in roles:
        for record in reversed(records):
            if record.role == role and record.active:
                return record
    return None


def key_type_of_certificate(certificate: x509.Certificate) -> KeyType:
    from privca.keys.types import key_type_of

    return key_type_of(certificate.public_key())


__all__ = ["CertificateAuthority", "IssuedCertificate", "select_authority"]
