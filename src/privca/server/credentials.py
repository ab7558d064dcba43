"""The certificates `privca serve` issues to itself, kept so that restarts reuse them.

Its TLS certificate and the delegated OCSP responder certificates are ordinary inventory
records. Issuing fresh ones at every start filled the inventory with "valid" certificates
nobody used; so each is kept, key and chain in one file (one atomic rename: a reader never
sees a key of one certificate with another's chain), 0600 in `<home>/private/serve/`, and
reused while more than a third of its life remains. A replacement marks the one it
replaces superseded. Several servers on one home share the files; a lock makes the
check-then-issue one step, so two starting at once issue one certificate, not two.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from privca.errors import KeyUnavailable, PrivcaError
from privca.home import (
    atomic_write,
    check_private_directory,
    exclusive_lock,
    make_private_directory,
)
from privca.keys.types import SIGNING_KEY_CLASSES
from privca.x509.encoding import (
    pem_certificates,
    pem_private_key_unencrypted,
    public_key_der,
    serial_hex,
)
from privca.x509.profiles import OCSP_RESPONDER, PRIVCA_SERVER

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.registry import CaCertificate
    from privca.store.records import CertificateRecord

log = logging.getLogger("privca.server")

DIRECTORY = "serve"
LOCK_FILE = ".lock"
# Reused while more than this part of the certificate's life remains.
REUSE_WHILE_LEFT = 1 / 3


@dataclass(frozen=True)
class Credential:
    """A certificate privca serve uses, its private key, and the file holding both."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the certificate, then its intermediates
    private_key: CertificateIssuerPrivateKeyTypes
    path: Path

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def renew_after(self) -> dt.datetime:
        """When less than a third of the life is left: then a successor is issued."""
        cert = self.certificate
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        return cert.not_valid_after_utc - life * REUSE_WHILE_LEFT

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


def read_credential(path: Path) -> Credential | None:
    """The credential in `path`, or None when it is missing, unreadable, not ours alone,
    or its key does not match its certificate (then it is simply replaced)."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            log.warning("not reusing %s: not a private regular file", path)
            return None
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            log.warning("not reusing %s: owned by another user", path)
            return None
        data = path.read_bytes()
        chain = tuple(x509.load_pem_x509_certificates(data))
        key = load_pem_private_key(data, password=None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("not reusing %s: %s", path, exc)
        return None
    if not isinstance(key, SIGNING_KEY_CLASSES) or public_key_der(
        key.public_key()
    ) != public_key_der(chain[0].public_key()):
        log.warning("not reusing %s: the key does not match the certificate", path)
        return None
    return Credential(chain[0], chain, key, path)


def kept_serial(path: Path) -> int | None:
    """The serial of the certificate in `path` even when the file is unusable (loose mode,
    wrong key), so its successor can supersede it; None when none can be read."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        return x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number
    except (OSError, ValueError, IndexError):
        return None


class ServeCredentials:
    """Obtain (reuse or issue) the certificates of one CA home's servers."""

    def __init__(self, ca: CertificateAuthority, directory: Path | None = None) -> None:
        self._ca = ca
        self.directory = directory or ca.home.private / DIRECTORY

    def server_path(self) -> Path:
        return self.directory / "server.pem"

    def responder_path(self, authority: CaCertificate) -> Path:
        return self.directory / f"ocsp-{authority.serial:x}.pem"

    # the two kinds ------------------------------------------------------------------------

    def server(self, names: tuple[str, ...], *, days: int, now: dt.datetime) -> Credential:
        """The TLS certificate for exactly `names`, from the CA's current issuing CA."""
        from privca.x509.names import names_from_general_names, parse_names

        wanted = set(parse_names(names))
        issuer = self._ca.issuing_record()

        def fits(credential: Credential) -> bool:
            try:
                san = credential.certificate.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName
                ).value
            except x509.ExtensionNotFound:
                return False
            return set(names_from_general_names(san)) == wanted and _issued_by(
                credential.certificate, issuer
            )

        def issue() -> Credential:
            issued = self._ca.issue(list(names), profile=PRIVCA_SERVER.name, days=days, now=now)
            if issued.private_key is None:  # issue() always generates one
                raise KeyUnavailable("the server certificate came without its key")
            return Credential(
                issued.certificate,
                # with the cross-certificate of a root rollover under way, as chain.pem
                (
                    issued.certificate,
                    *[c for c in issued.chain if c.subject != c.issuer],
                    *issued.cross,
                ),
                issued.private_key,
                self.server_path(),
            )

        return self._obtain(self.server_path(), PRIVCA_SERVER.name, fits, issue, now)

    def responder(self, authority: CaCertificate, *, days: int, now: dt.datetime) -> Credential:
        """A delegated OCSP responder certificate (OCSPSigning, ocsp-nocheck) for `authority`."""

        def issue() -> Credential:
            cert, key = self._ca.issue_ocsp_responder(authority, days=days, now=now)
            return Credential(cert, (cert,), key, self.responder_path(authority))

        def fits(credential: Credential) -> bool:
            return _issued_by(credential.certificate, authority)

        return self._obtain(self.responder_path(authority), OCSP_RESPONDER.name, fits, issue, now)

    def kept_responder(self, authority: CaCertificate, now: dt.datetime) -> Credential | None:
        """The responder certificate kept for `authority`, while it is valid to its end;
        None when there is none. Nothing is issued: for a CA that can sign no successor
        (revoked, its key destroyed), so it serves past the point a renewal was due."""
        path = self.responder_path(authority)
        with self._locked():
            current = read_credential(path)
            record = self._kept_record(path, OCSP_RESPONDER.name)
            if current is None or not _holds_valid(record, current, now):
                return None
            valid = current.certificate.not_valid_before_utc <= now < current.not_after
            return current if valid and _issued_by(current.certificate, authority) else None

    # the rule -----------------------------------------------------------------------------

    def _obtain(
        self,
        path: Path,
        profile: str,
        fits: Callable[[Credential], bool],
        issue: Callable[[], Credential],
        now: dt.datetime,
    ) -> Credential:
        with self._locked():
            current = read_credential(path)
            record = self._kept_record(path, profile)
            if (
                current is not None
                and _holds_valid(record, current, now)
                and current.certificate.not_valid_before_utc <= now < current.renew_after
                and fits(current)
            ):
                return current
            fresh = issue()
            try:
                key_pem = pem_private_key_unencrypted(fresh.private_key)
                atomic_write(path, key_pem + pem_certificates(list(fresh.chain)), 0o600)
            except BaseException:
                # Nobody will ever use it: do not leave it valid in the inventory.
                with contextlib.suppress(Exception):
                    self._ca.revoke(serial_hex(fresh.serial), "superseded", now)
                raise
            if record is not None and record.status_at(now) == "valid":
                self._ca.supersede(record.serial, fresh.serial, now)
            log.info("issued %s certificate %x", profile, fresh.serial)
            return fresh

    def _kept_record(self, path: Path, profile: str) -> CertificateRecord | None:
        """The inventory record of the certificate in `path`, if it is one of `profile`."""
        previous = kept_serial(path)
        record = self._ca.inventory.get(previous) if previous is not None else None
        if record is not None and record.profile != profile:
            return None  # not one of ours: leave it alone
        return record

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_directory(self.directory)
        check_private_directory(self.directory)
        with exclusive_lock(self.directory / LOCK_FILE, 0o600):
            yield


def _holds_valid(record: CertificateRecord | None, current: Credential, now: dt.datetime) -> bool:
    """The inventory holds `current` valid (not revoked, superseded or expired)."""
    return (
        record is not None
        and record.der == current.certificate.public_bytes(Encoding.DER)
        and record.status_at(now) == "valid"
    )


def _issued_by(certificate: x509.Certificate, authority: CaCertificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def prove_keys(ca: CertificateAuthority, now: dt.datetime) -> None:
    """Load every CA key the server will sign with, so a wrong passphrase or a missing key
    stops the start before anything is issued. A revoked CA whose key was destroyed signs
    nothing more (OcspResponder says what it answers for it instead)."""
    ca.signer(ca.issuing_record())
    for authority in ca.publishing_authorities():
        if authority.not_after > now and not ca.key_destroyed(authority):
            ca.signer(authority)


def unusable_token_keys(
    ca: CertificateAuthority, authorities: Sequence[CaCertificate], now: dt.datetime
) -> list[CaCertificate]:
    """Which of `authorities` (those the server signs for) have a key on a PKCS#11 token
    that cannot sign now. Key files are not asked (prove_keys read them at start, and a
    key held in memory cannot go away); a token can. Asking also logs in again once the
    token is back, so health turns ok without waiting for a signature."""
    from privca.keys.pkcs11 import Pkcs11EcKey, Pkcs11RsaKey

    unusable = []
    for authority in authorities:
        try:
            on_token = authority.not_after > now and ca.key_file(authority) is None
        except PrivcaError:  # not a CA of the home as last read: the store's to say
            continue
        if not on_token:
            continue
        try:
            key = ca.signer(authority).private_key
            if isinstance(key, Pkcs11EcKey | Pkcs11RsaKey):
                key.check()
        except PrivcaError:  # e.g. TokenUnavailable, or a PIN changed since the start
            unusable.append(authority)
    return unusable


__all__ = [
    "Credential",
    "ServeCredentials",
    "prove_keys",
    "read_credential",
    "unusable_token_keys",
]
