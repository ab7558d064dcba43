"""AuthorityRecords: the inventory side of a CA's use cases: verify, list and look up
certificates, revoke, and publish CRLs. Reads never write; `crl` (privca crl) and the
server's scheduler are the only ones to write the scheduled revocations that are due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from privca._time import utcnow
from privca.authority_core import Authority, AuthorityCore
from privca.errors import InputError, NotFound, PolicyError
from privca.publication import (
    read_published_root_crl,
    record_crl,
    root_crl_due,
    root_crl_file,
    sign_crl,
)
from privca.store.authorities import StoredCrl, crl_basis
from privca.store.imports import add_imported_certificates
from privca.store.records import CertificateRecord, ImportedRow, RevocationOutcome
from privca.store.revocation import RevocationClock
from privca.store.status import StoredStatus
from privca.x509.encoding import der_certificate, public_key_der, serial_hex
from privca.x509.names import parse_names
from privca.x509.verify import VerificationReport, check_certificate, is_signed_by, under_roots

# What `privca verify` and `privca scan` say of a certificate that chains to this CA but
# that the inventory does not hold (no row, or a row with other bytes): signed with the
# CA key behind privca's back, or lost in a restore (then `privca import` it).
OUTSIDE_RECORDS = "CRITICAL: issued outside privca's records"


class AuthorityRecords(AuthorityCore):
    """Verification, the inventory, revocation and CRLs of an opened CA."""

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
        """Validate against our roots (or `roots`): the active root, and during a root
        rollover the old one too. Then look the serial up in the inventory:
        its status there, or "unknown".

        Problems with the certificate are listed in the report, never raised.

        Raises:
            StoreUnavailable: the inventory cannot be read.
        """
        now = now or utcnow()
        ours = self.registry.intermediates()
        if roots is None:
            roots = [r.certificate for r in self.registry.trusted_roots]
        else:
            # Only this home's CA certificates that lead to the roots given: another CA of
            # the same name (every docs example is "Example Internal CA") would otherwise
            # be tried as the issuer and its signature called a forgery.
            ours = under_roots(ours, roots)
        report = check_certificate(
            certificate,
            roots,
            [*intermediates, *ours],
            now,
            name,
            public_key_der(private_key.public_key()) if private_key is not None else None,
            # A leaf of a root not trusted here is named as such, not taken for a forgery.
            self.registry.untrusted_roots(roots),
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
        """Signed certificates, soonest expiry first.

        Raises:
            InputError: `status` is not a certificate status. StoreUnavailable: the
                inventory cannot be read.
        """
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

    def certificate_by_serial(self, serial: int) -> CertificateRecord | None:
        """The inventory record with this serial (pending and failed ones too), or None."""
        return self.inventory.get(serial)

    def certificate_status(self, authority: Authority, serial: int) -> CertificateRecord | None:
        """The inventory record of `serial` under `authority`, if it was ever signed
        (read only: an OCSP request never writes). Signed means issued or revoked, with or
        without its DER: a tombstone left by tidy, or an adopted revocation whose file was
        gone, still answers (a revoked serial stays revoked); an intent never signed
        (pending, failed) does not."""
        record = self.inventory.get(serial)
        signed = (StoredStatus.ISSUED.value, StoredStatus.REVOKED.value)
        if record is None or record.status not in signed or record.issuer_id != authority.id:
            return None
        return record

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

    def supersede(self, old: int, new: int, now: dt.datetime | None = None) -> bool:
        """Record that certificate `new` replaces `old` (renew, ACME `replaces`), unless
        another certificate replaced `old` already; whether it was marked now.

        Raises:
            StoreUnavailable: the record could not be written.
        """
        return self._store.mark_superseded(old, new, now or utcnow())

    def apply_scheduled_revocations(self, now: dt.datetime | None = None) -> list[int]:
        """Write the scheduled revocations that are due (reads already count them); for
        `privca crl` and the server's scheduler. Returns their serials.

        Raises:
            StoreUnavailable: the store cannot be reached (nothing is half-written).
        """
        return self._store.apply_due_revocations(now or utcnow())

    def tidy(
        self, expired_for: dt.timedelta, now: dt.datetime | None = None, *, dry_run: bool = False
    ) -> int:
        """Turn the certificates that expired more than `expired_for` ago into tombstones
        (store/retention.py says what is kept); returns how many (would be, with dry_run)."""
        now = now or utcnow()
        if expired_for < dt.timedelta(0):
            raise InputError("a negative retention time", "e.g. --expired-for 90d")
        try:
            cutoff = now - expired_for
        except OverflowError:
            cutoff = dt.datetime.min.replace(tzinfo=dt.UTC)  # before anything: tidies nothing
        if dry_run:
            return self._store.count_tidy(cutoff)
        return self._store.tidy(cutoff, now)

    def import_lost(
        self, found: Sequence[tuple[x509.Certificate, ImportedRow]], now: dt.datetime | None = None
    ) -> tuple[list[int], list[int]]:
        """Put certificates our CAs signed back into the inventory (the period a restore
        lost), each with its audit entry. All are checked before any is recorded; one the
        inventory already holds with the same bytes is left as it is (idempotent).

        Returns (serials recorded now, serials already there).

        Raises:
            PolicyError: a certificate is not signed by one of this home's CAs, or its
                serial is in the inventory with other bytes.
        """
        now = now or utcnow()
        by_issuer: dict[int, list[ImportedRow]] = {}
        known: list[int] = []
        own = {authority.der for authority in self.registry.authorities}
        for certificate, row in found:
            where = row.source or f"serial {serial_hex(certificate.serial_number)}"
            # A CA certificate recorded as a leaf was listed as a service's, revoked onto
            # its parent's CRL (breaking every chain through it) and called a leaf with
            # CA:TRUE by doctor. The home's own CAs are its already; no other CA is a leaf.
            try:
                constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
                is_ca = constraints.value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if row.der in own or is_ca:
                raise PolicyError(
                    f"certificate '{where}' is a CA certificate"
                    f"{' of this home' if row.der in own else ''}, not one issued to a service; "
                    "refusing to import it (nothing was imported)",
                    "privca import certificates takes the leaf certificates this CA issued; "
                    "leave CA certificates (certs/root.crt, issuing.crt, chains) out",
                )
            issuer = next(
                (
                    a
                    for a in self.registry.authorities
                    if a.certificate.subject == certificate.issuer
                    and is_signed_by(certificate, a.certificate)
                ),
                None,
            )
            if issuer is None:
                raise PolicyError(
                    f"certificate '{where}' is not signed by this CA's keys; refusing to import it",
                    "only certificates our CAs signed can be put back (adopt another CA with "
                    "privca import openssl|easyrsa)",
                )
            existing = self.inventory.get(certificate.serial_number)
            if existing is not None:
                if existing.der == der_certificate(certificate):
                    known.append(certificate.serial_number)
                    continue
                raise PolicyError(
                    f"serial {serial_hex(certificate.serial_number)} of '{where}' is in the "
                    "inventory with other bytes",
                    "two certificates with one serial from one CA: investigate (privca audit "
                    "verify) before importing",
                )
            by_issuer.setdefault(issuer.id, []).append(row)
        added: list[int] = []
        for issuer_id, rows in by_issuer.items():
            unique = list({r.serial: r for r in rows}.values())
            add_imported_certificates(self._store.database, issuer_id, unique, now)
            added.extend(r.serial for r in unique)
        return added, known

    def crl(
        self,
        authority: Authority | None = None,
        now: dt.datetime | None = None,
        *,
        days: int | None = None,
        record: bool = True,
    ) -> x509.CertificateRevocationList:
        """`privca crl`: write the scheduled revocations that are due, then a full CRL for
        one CA (default: the issuing CA) with the next CRLNumber.

        `days` overrides the nextUpdate interval, e.g. for the long-lived CRL of a root
        whose key is kept offline. Without `record`, the caller calls `crl_written` once
        it has written the CRL's files: until then `check` still sees the previous one.

        Raises:
            NotFound: `authority` is not a CA of this home.
            KeyUnavailable, WrongPassphrase, InsecurePermissions: the CA key cannot be
                unlocked (as `signer`).
            StoreUnavailable: the inventory cannot be read or the CRL number written.
        """
        now = now or utcnow()
        self.apply_scheduled_revocations(now)
        entry = self._entry(authority) if authority is not None else self.registry.issuing
        # Read before signing, so that it names no revocation the CRL lacks; kept in the
        # store, the CRL becomes what every `privca serve` replica hands out (unless one
        # has a newer one): a client never sees an older number from a server after it.
        fingerprint = self.inventory.revocation_fingerprints().get(entry.id)
        crl = self.sign_crl(entry, now, days=days, record=record)
        self.publish_crl(entry, crl, fingerprint)
        return crl

    def crl_written(self, authority: Authority, crl: x509.CertificateRevocationList) -> None:
        """Record `crl` (signed by `crl(..., record=False)`) now that its files exist."""
        record_crl(self._store, self._entry(authority).id, crl)

    def sign_crl(
        self,
        authority: Authority | None = None,
        now: dt.datetime | None = None,
        *,
        days: int | None = None,
        record: bool = True,
    ) -> x509.CertificateRevocationList:
        """A full CRL for one CA with the next CRLNumber (never reused, never lower),
        writing nothing else (the server's path): a scheduled revocation that is due is
        listed whether or not it has been written.

        Raises:
            As `crl`.
        """
        now = now or utcnow()
        entry = self._entry(authority) if authority is not None else self.registry.issuing
        signer = self.signer(entry)
        next_update = now + dt.timedelta(days=days or self.settings.crl_days)
        crl = sign_crl(self._store, entry.id, signer, now, next_update, record=record)
        self.checkpoint_if_due(now)
        return crl

    def publish_crl(
        self,
        authority: Authority,
        crl: x509.CertificateRevocationList,
        fingerprint: tuple[int, str] | None,
    ) -> StoredCrl | None:
        """Keep `crl` in the store as the CA's published CRL unless a newer one is there;
        returns the newest stored (what every replica then serves: server/crl.py).
        `fingerprint`: the CA's revocation fingerprint read before `crl` was signed."""
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        der = crl.public_bytes(Encoding.DER)
        basis = crl_basis(fingerprint)
        return self._store.publish_crl(self._entry(authority).id, number, der, basis, utcnow())

    def published_crl(self, authority: Authority) -> StoredCrl | None:
        """The CA's newest CRL published in the store by a server, if any."""
        return self._store.published_crl(self._entry(authority).id)

    def revocation_clock(self) -> RevocationClock | None:
        """A cheap "was anything revoked since?" counter (SQLite; None elsewhere), for
        the server's OCSP cache (server/watch.py). The caller closes it."""
        return self._store.revocation_clock()

    def published_crl_numbers(self) -> dict[int, int]:
        """CA id -> CRLNumber of the CRL published in the store, for the CAs that have one."""
        return self._store.published_crl_numbers()

    @property
    def root_crl_file(self) -> Path:
        """Where `privca crl --root` leaves the CRL /crl/root.crl serves (the root's, or
        the old root's while a rollover lasts: Registry.root_crl_alias)."""
        return root_crl_file(self.home)

    def published_root_crl(
        self, root: Authority, now: dt.datetime
    ) -> x509.CertificateRevocationList:
        """The CRL of `root` made earlier with `privca crl --root`, if it is still current.

        Raises:
            NotFound: `root` is not a CA of this home.
            KeyUnavailable: none was published, or it has expired.
        """
        return read_published_root_crl(self.home, self._entry(root).certificate, now)

    def root_crl_due(self, root: Authority, now: dt.datetime) -> bool:
        """True when the published CRL of `root` is missing, past half its life or lacks
        an issuing CA revoked since: time for `privca crl` to publish a new one while the
        root key is at hand."""
        entry = self._entry(root)
        must_list = frozenset(a.serial for a in self.registry.revoked_signed_by(entry, now))
        return root_crl_due(self.home, entry.certificate, now, must_list)


__all__ = ["AuthorityRecords"]
