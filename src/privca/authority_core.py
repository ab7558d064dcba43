"""AuthorityCore: a CA home opened for work, as the use cases build on it.

It holds what every use case needs: the settings, the store (private: others read through
`inventory`), key custody with the unlocked signers, and the registry of CA certificates.
`CertificateAuthority` (authority.py) is built on it, by way of AuthorityRecords
(authority_records.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

from cryptography import x509

from privca._text import printable
from privca._time import utcnow
from privca.auditing import (
    RENEW_BEFORE,
    AuditSigner,
    Checkpoint,
    build_export,
    establish_audit_key,
    load_audit_signer,
    read_audit_certificate,
    read_audit_key_ref,
    sign_checkpoint,
)
from privca.errors import NotFound, PrivcaError
from privca.home import CAHome, atomic_write, exclusive_lock
from privca.keys.custody import HomeCustody, SecretSource
from privca.policy import IssuancePolicy
from privca.registry import CaCertificate, Registry
from privca.settings import Settings
from privca.store.inventory import Store
from privca.store.records import AuthorityRecord, CertificateRecord
from privca.store.view import InventoryView
from privca.x509.build import Issuer

if TYPE_CHECKING:
    from privca.store.acme import AcmeStore

# A CA as callers hold it: a registry entry, or (older code) its inventory record.
Authority = CaCertificate | AuthorityRecord


class AuthorityCore:
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
        self._audit_signer: AuditSigner | None = None
        self._checkpoint_covers = 0  # as last read: entries the latest checkpoint covers
        self._note_settings()

    def _note_settings(self) -> None:
        """An entry when privca.toml changed since the log last saw it (one place for
        every way it changes: privca's own writes and an operator's editor)."""
        try:
            data = self.home.settings.read_bytes()
        except FileNotFoundError:
            return
        self._store.note_settings(hashlib.sha256(data).hexdigest(), utcnow())

    def record_host_change(self, action: str, detail: Mapping[str, object]) -> None:
        """Append an entry for what privca changed on this host outside the store (trust
        install/uninstall), in this home's log."""
        self._store.record(action, detail, utcnow())

    def refresh(self) -> None:
        """Forget the snapshot of CA certificates (keeping unlocked keys), so a
        long-running process sees an issuing CA rotated by another process."""
        self._registry = None

    def reload_settings(self) -> None:
        """Read privca.toml again (an operator changed the policy while serving).

        Raises:
            InputError: privca.toml is malformed (the settings in use are kept).
        """
        self.settings = Settings.read(self.home.settings)

    def close(self) -> None:
        """Close the store's connections and log out of an HSM."""
        self._store.close()
        self._custody.close()

    def __enter__(self) -> Self:
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

    def acme_repository(self) -> AcmeStore:
        """ACME's storage (privca.acme's repository) in this CA's database, with the home's
        EAB sealing key: the one way to the ACME tables from outside the store."""
        from privca.store.acme import AcmeStore

        return AcmeStore.of(self._store)

    @property
    def policy(self) -> IssuancePolicy:
        """What this CA may sign (privca.toml's [policy])."""
        return self.settings.policy

    @property
    def registry(self) -> Registry:
        """The CA certificates as last read (see `refresh`).

        Raises:
            StoreUnavailable: the first read after `refresh` cannot reach the store.
        """
        if self._registry is None:
            self._registry = Registry.from_records(
                self.inventory.authorities(), self.inventory.issuers()
            )
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

    def crl_period(self, authority: CaCertificate) -> int:
        """Days from a CRL's thisUpdate to its nextUpdate: `crl_days` for a CA that signs
        leaves, a root too (single-tier, or leaves of its own), whose revocations clients
        must not cache for months; `root_crl_days` for a root that signs only CAs."""
        if authority in self.publishing_authorities():
            return self.settings.crl_days
        return self.settings.root_crl_days

    def authority_by_serial(self, serial: str) -> CaCertificate:
        """A CA by hex serial, or the active one by role (root, issuing or current).

        Raises:
            NotFound: no CA of this home has that serial or role.
        """
        record = self.registry.select(serial)
        if record is None:
            shown = printable(serial, 64)
            raise NotFound(f"no CA with serial or role '{shown}'", "see `privca check`")
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

    # The audit log's signatures (auditing.py) ------------------------------------------

    def audit_signer(self, now: dt.datetime | None = None) -> AuditSigner:
        """The audit key, unlocked like the CA keys (same passphrase or token), with its
        certificate; made on first need (and when its certificate nears its end),
        certified by the issuing CA.

        Raises:
            As `signer` for the issuing CA; StoreUnavailable.
        """
        now = now or utcnow()
        cached = self._audit_signer
        issuing = self.registry.issuing
        chain = self.chain
        if (
            cached is not None
            and cached.certificate.not_valid_after_utc - RENEW_BEFORE > now
            and cached.chain == chain
        ):
            return cached
        found = load_audit_signer(self.home, self._custody, issuing, chain, now)
        if found is None:
            # Two processes of one home (serve replicas starting together) make one key.
            with exclusive_lock(self.home.private / ".audit.lock", 0o400):
                found = load_audit_signer(self.home, self._custody, issuing, chain, now)
                if found is None:
                    found = establish_audit_key(
                        self.home,
                        self._custody,
                        self._store,
                        issuing,
                        self.signer(issuing),
                        chain,
                        now,
                    )
        self._audit_signer = found
        return found

    def audit_checkpoint(self, now: dt.datetime | None = None) -> Checkpoint:
        """Sign a checkpoint of the audit log (entries, head hash, time), keep it in the
        store and publish it as certs/audit-checkpoint.json.

        Raises:
            As `audit_signer`.
        """
        now = now or utcnow()
        signer = self.audit_signer(now)
        entries, head = self.inventory.audit_head()
        checkpoint = sign_checkpoint(signer, entries, head, now, self.root)
        text = checkpoint.text()
        self._store.add_checkpoint(entries, head, now, text)
        self._checkpoint_covers = max(self._checkpoint_covers, entries)
        atomic_write(self.home.audit_checkpoint, text.encode(), 0o644)
        return checkpoint

    def checkpoint_if_due(self, now: dt.datetime) -> Checkpoint | None:
        """A checkpoint when [audit] checkpoint_every entries have been appended since the
        last one. Called where the CA key was just used, so the audit key is unlocked with
        the same secret; if it cannot be (another operator's key, a token gone), the
        checkpoint waits for the next chance, and the change stays done."""
        every = self.settings.audit_checkpoint_every
        # Only read the store when this process's own entries could make one due.
        if every <= 0 or self.inventory.appended_seq - self._checkpoint_covers < every:
            return None
        entries, self._checkpoint_covers = self.inventory.checkpoint_state()
        if entries - self._checkpoint_covers < every:
            return None
        try:
            return self.audit_checkpoint(now)
        except PrivcaError:
            return None

    def audit_export(
        self, since: dt.datetime, now: dt.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """The entries since `since` and the certificates they name, as the export's bytes
        and their detached CMS signature (DER).

        Raises:
            As `audit_signer`.
        """
        now = now or utcnow()
        signer = self.audit_signer(now)
        with self.inventory.audit_snapshot() as snapshot:
            entries = list(snapshot.entries(since=since))
            head = snapshot.head()
            named = {e.serial for e in entries if e.serial and "fingerprint" in e.details}
            certificates = snapshot.certificates(named)
        data = build_export(entries, certificates, since=since, at=now, head=head, signer=signer)
        return data, signer.sign(data)

    def key_file(self, authority: Authority) -> Path | None:
        """The file holding a CA's key, or None when it is on a token.

        Raises:
            NotFound: `authority` is not a CA of this home.
        """
        return self._custody.key_file(self._entry(authority).key_ref)

    def check_audit_key(self) -> Path | None:
        """Unlock the audit key file and check it is the key its certificate certifies:
        the file, or None when the home has no audit key in a file (none made yet, on a
        token, or left out of a backup).

        Raises:
            KeyUnavailable: it is not its certificate's key. WrongPassphrase.
        """
        key_ref, certificate = read_audit_key_ref(self.home), read_audit_certificate(self.home)
        if key_ref is None or certificate is None:
            return None
        path = self._custody.key_file(key_ref)
        if path is None or not path.exists():
            return None
        self._custody.load_for(certificate, key_ref, "audit")
        return path

    def root_key_present(self) -> bool:
        """True if the active root's key is at hand (a file in private/, or an HSM)."""
        root = self.registry.active("root")
        return root is not None and self.key_present(root)

    def key_present(self, authority: Authority) -> bool:
        """True if this CA's key is at hand (a file in private/, or an HSM); NotFound
        when `authority` is not a CA of this home."""
        return self._custody.is_present(self._entry(authority).key_ref)

    def key_destroyed(self, authority: Authority) -> bool:
        """True for a revoked CA whose key file is gone: destroyed after the revocation, as
        it should be. Such a CA signs nothing more (no CRL of its own, no OCSP answer with
        its key; the root's CRL lists it), and nothing else may stop for it. The key of a
        CA that is not revoked is never destroyed: a missing one stays an error. NotFound
        when `authority` is not a CA of this home."""
        entry = self._entry(authority)
        return entry.revoked_at is not None and not self.key_present(entry)


__all__ = ["Authority", "AuthorityCore"]
