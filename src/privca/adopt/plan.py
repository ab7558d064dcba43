"""What an adoption will write, built and checked entirely in memory before anything is.

The readers (openssl.py, easyrsa.py) find files; this module turns them into one
consistent AdoptionPlan or raises InputError naming the file (and line) at fault.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.adopt.index import IndexEntry, format_serial, parse_index, serial_problem
from privca.errors import InputError
from privca.home import read_input_file
from privca.keys.types import SIGNING_KEY_CLASSES
from privca.x509.crl import REASONS, is_crl_of, load_crl
from privca.x509.encoding import (
    der_certificate,
    is_encrypted_key,
    is_pem,
    load_certificates,
    load_private_key,
    pem_certificate,
    public_key_der,
)
from privca.x509.names import names_from_general_names, parse_name

PassphraseSource = Callable[[], bytes | None]

# Profile of an imported certificate with no extendedKeyUsage: such a certificate may be
# used for anything, so server-client keeps what it could do, and renew can re-issue it.
UNRESTRICTED_PROFILE = "server-client"
# EKUs privca has no profile for (code signing, e-mail, ...): listed and revocable, but
# `privca renew` refuses them with a clear error rather than change what they are for.
OTHER_PROFILE = "imported"

_CRL_REASONS: dict[x509.ReasonFlags, str] = {flag: name for name, flag in REASONS.items()}


@dataclass(frozen=True)
class ImportedCertificate:
    """A certificate the old CA signed, with the status its records give it."""

    certificate: x509.Certificate
    source: str
    status: str  # issued | revoked
    revoked_at: dt.datetime | None
    reason: str | None
    names: tuple[str, ...]
    profile: str

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def der(self) -> bytes:
        return der_certificate(self.certificate)

    @property
    def public_key_sha256(self) -> str:
        return hashlib.sha256(public_key_der(self.certificate.public_key())).hexdigest()


@dataclass(frozen=True)
class RevokedSerial:
    """A revocation recorded (index.txt or crl.pem) for a certificate whose file is gone:
    kept so the CRL privca publishes still lists it."""

    serial: int
    revoked_at: dt.datetime
    reason: str
    expires: dt.datetime
    subject: str
    source: str


@dataclass(frozen=True)
class AdoptionPlan:
    kind: str  # openssl | easyrsa
    source: Path
    name: str
    ca_certificate: x509.Certificate
    ca_pem: bytes  # certs/root.crt: the original file, byte for byte, when it is plain PEM
    ca_key: CertificateIssuerPrivateKeyTypes
    key_file: Path
    key_mode: int
    key_was_encrypted: bool
    certificates: tuple[ImportedCertificate, ...]
    revoked_without_certificate: tuple[RevokedSerial, ...] = ()
    missing: tuple[IndexEntry, ...] = ()  # valid/expired index lines with no certificate file
    holds: tuple[int, ...] = ()  # serials on certificateHold, imported as revoked
    crl_number: int | None = None  # the last CRLNumber the old CA used
    # The old CA's latest CRL: until its nextUpdate clients are served; `privca check` warns.
    crl_this_update: dt.datetime | None = None
    crl_next_update: dt.datetime | None = None
    service_keys: tuple[Path, ...] = field(default=())  # service private keys left lying about


# reading files ----------------------------------------------------------------------------


def first_existing(directory: Path, candidates: Sequence[str]) -> Path | None:
    for candidate in candidates:
        path = directory / candidate
        if path.is_file():
            return path
    return None


def read_ca_certificate(path: Path) -> tuple[x509.Certificate, bytes]:
    """The self-signed CA certificate and the bytes certs/root.crt will hold."""
    data = read_input_file(path, "CA certificate")
    certs = load_certificates(data, f"CA certificate '{path}'")
    cert = certs[0]
    if cert.issuer != cert.subject or not _signed_by(cert, cert):
        raise InputError(
            f"CA certificate '{path}' ({cert.subject.rfc4514_string()}) is not self-signed",
            "privca adopts a root CA; give the root's certificate with --cert",
        )
    # Clients compare the root by its bytes (fingerprints, pinned bundles): keep the
    # original file when it is exactly this one certificate in PEM.
    keep = is_pem(data) and len(certs) == 1 and data.count(b"-----BEGIN") == 1
    return cert, data if keep else pem_certificate(cert)


def read_ca_key(
    path: Path, certificate: x509.Certificate, passphrase: PassphraseSource
) -> tuple[CertificateIssuerPrivateKeyTypes, bool, int]:
    """The CA private key (validated once, here), whether it was encrypted, and its mode."""
    data = read_input_file(path, "CA key file")
    encrypted = is_encrypted_key(data)
    secret = passphrase() if encrypted else None
    key = load_private_key(data, secret, source=f"CA key '{path}'", validate=True)
    if not isinstance(key, SIGNING_KEY_CLASSES):
        raise InputError(f"the key '{path}' cannot sign certificates")
    if public_key_der(key.public_key()) != public_key_der(certificate.public_key()):
        raise InputError(
            f"the key '{path}' does not match the CA certificate "
            f"({certificate.subject.rfc4514_string()})",
            "give the CA's own key with --key, or its certificate with --cert",
        )
    return key, encrypted, stat.S_IMODE(os.stat(path).st_mode)


def read_index(path: Path) -> list[IndexEntry]:
    data = read_input_file(path, "index file", limit=256 << 20)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # OpenSSL writes raw bytes of the DN; keep going
    return parse_index(text, f"'{path}'")


def read_serial_file(path: Path) -> int:
    text = read_input_file(path, "serial file").decode("ascii", "replace").strip()
    try:
        return int(text, 16)
    except ValueError:
        raise InputError(
            f"serial file '{path}' holds '{text[:40]}', not a hexadecimal number"
        ) from None


def expand_globs(patterns: Iterable[str], base: Path) -> list[Path]:
    """--certs patterns: relative ones against the CA directory first, then the cwd."""
    paths: list[Path] = []
    for pattern in patterns:
        candidates = [pattern] if Path(pattern).is_absolute() else [str(base / pattern), pattern]
        matched: list[str] = []
        for candidate in candidates:
            matched = sorted(glob.glob(os.path.expanduser(candidate), recursive=True))
            if matched:
                break
        files = [Path(m) for m in matched if Path(m).is_file()]
        if not files:
            raise InputError(
                f"--certs '{pattern}' matches no file (in '{base}' or the current directory)",
                "quote the pattern so the shell does not expand it, e.g. --certs '/srv/*.crt'",
            )
        paths.extend(files)
    return paths


def files_in(directory: Path, *patterns: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted({p for pattern in patterns for p in directory.glob(pattern) if p.is_file()})


def load_certificate_files(paths: Iterable[Path]) -> list[tuple[x509.Certificate, str]]:
    found: list[tuple[x509.Certificate, str]] = []
    for path in dict.fromkeys(paths):
        data = read_input_file(path, "certificate file")
        found.extend((cert, str(path)) for cert in load_certificates(data, f"'{path}'"))
    return found


def read_crl(path: Path, ca: x509.Certificate) -> x509.CertificateRevocationList:
    data = read_input_file(path, "CRL file", limit=64 << 20)
    try:
        crl = load_crl(data)
    except ValueError as exc:
        raise InputError(f"CRL '{path}' is not a valid CRL: {exc}") from exc
    if not is_crl_of(crl, ca):
        raise InputError(
            f"CRL '{path}' was not signed by the CA ({ca.subject.rfc4514_string()})",
            "remove the stale CRL, or give the CA it belongs to",
        )
    return crl


# The store keeps CRL numbers as a signed 64-bit integer (BIGINT), and the next CRL privca
# signs is one above the old CA's last: that must fit too (it was OverflowError, exit 70).
CRL_NUMBER_LIMIT = 1 << 63


def _check_crl_number(last: int, source: str) -> None:
    if last + 1 >= CRL_NUMBER_LIMIT:
        raise InputError(
            f"{source} gives CRL number {last + 1:X} (hex) next, which privca's store cannot "
            f"keep (it keeps numbers below 2^63)",
            "`openssl ca` does not count that high: check the file (privca continues the old "
            "CA's CRL numbers, so they must fit)",
        )


def crl_number_of(crl: x509.CertificateRevocationList, source: str) -> int | None:
    """The CRLNumber of `crl` (read from `source`), if it has one."""
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None
    _check_crl_number(number, f"CRL '{source}'")
    return number


def read_crl_number_file(path: Path) -> int:
    """The last CRLNumber used, from `openssl ca`'s crlnumber file (which holds the next)."""
    following = read_serial_file(path)
    _check_crl_number(following - 1, f"crlnumber file '{path}'")
    return following - 1


# describing certificates ------------------------------------------------------------------


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """SAN entries in privca's spelling; the CN when there is no SAN (old certificates)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        raw = [str(name) for name in names_from_general_names(san)]
    except x509.ExtensionNotFound:
        raw = [
            str(attribute.value)
            for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    names: dict[str, None] = {}
    for text in raw:
        try:
            names.setdefault(str(parse_name(text)), None)
        except InputError:
            # privca would not issue this name, but the certificate exists: keep it as is.
            names.setdefault(text, None)
    return tuple(names)


def certificate_profile(cert: x509.Certificate) -> str:
    try:
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return UNRESTRICTED_PROFILE
    any_usage = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
    server = any_usage or ExtendedKeyUsageOID.SERVER_AUTH in usages
    client = any_usage or ExtendedKeyUsageOID.CLIENT_AUTH in usages
    if server and client:
        return "server-client"
    if server:
        return "server"
    if client:
        return "client"
    return OTHER_PROFILE


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # ValueError, TypeError and InvalidSignature share no narrower base
        return False
    return True


def _describe(cert: x509.Certificate, source: str) -> tuple[tuple[str, ...], str]:
    try:
        return certificate_names(cert), certificate_profile(cert)
    except ValueError as exc:  # cryptography parses extensions lazily
        raise InputError(
            f"certificate '{source}' (serial {format_serial(cert.serial_number)}) has "
            f"malformed extensions: {exc}"
        ) from exc


# putting it together ----------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """What the old CA's records say, apart from the certificates themselves."""

    entries: Sequence[IndexEntry] = ()
    crl: x509.CertificateRevocationList | None = None
    crl_source: str = ""
    crl_number: int | None = None


Found = dict[int, tuple[x509.Certificate, str]]  # serial -> certificate, where it was read
Revoked = dict[int, tuple[dt.datetime, str]]  # serial -> revocation date, reason


def _certificates_of(ca: x509.Certificate, found: Sequence[tuple[x509.Certificate, str]]) -> Found:
    """The certificates this CA signed, one per serial; refuses foreign ones and two
    different certificates with one serial."""
    ca_der = der_certificate(ca)
    by_serial: Found = {}
    for cert, source in found:
        der = der_certificate(cert)
        if der == ca_der:
            continue  # the CA certificate itself, picked up by a glob
        serial = cert.serial_number
        problem = serial_problem(serial)
        if problem:
            raise InputError(
                f"certificate '{source}': its serial {problem}",
                "no CA can revoke or list it: leave the file out",
            )
        if serial in by_serial:
            if der_certificate(by_serial[serial][0]) != der:
                raise InputError(
                    f"'{source}' and '{by_serial[serial][1]}' are different certificates "
                    f"with the same serial {format_serial(serial)}",
                    "a CA never reuses a serial; remove the one this CA did not issue",
                )
            continue
        if cert.issuer != ca.subject or not _signed_by(cert, ca):
            raise InputError(
                f"certificate '{source}' ({cert.subject.rfc4514_string()}, serial "
                f"{format_serial(serial)}) was not issued by this CA "
                f"({ca.subject.rfc4514_string()})",
                "import only certificates this CA signed; leave the others out of --certs",
            )
        by_serial[serial] = (cert, source)
    return by_serial


@dataclass
class _Merged:
    """What the records say about the certificates found (built by `merge`)."""

    revoked: Revoked = field(default_factory=dict)
    orphans: dict[int, RevokedSerial] = field(default_factory=dict)
    missing: list[IndexEntry] = field(default_factory=list)
    holds: list[int] = field(default_factory=list)


def _check_index_entry(entry: IndexEntry, by_serial: Found) -> None:
    if entry.serial not in by_serial:
        return
    cert, source = by_serial[entry.serial]
    if cert.not_valid_after_utc != entry.expires:
        raise InputError(
            f"index line {entry.line} says serial {format_serial(entry.serial)} expires "
            f"{entry.expires:%Y-%m-%d %H:%M:%S}, but '{source}' with that serial "
            f"expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S}",
            "the index and the certificate files belong to different CAs",
        )


def _merge_index(entries: Sequence[IndexEntry], by_serial: Found, merged: _Merged) -> None:
    for entry in entries:
        _check_index_entry(entry, by_serial)
        if entry.hold:
            merged.holds.append(entry.serial)
        if entry.status == "R" and entry.revoked_at is not None:
            reason = entry.reason or "unspecified"
            merged.revoked[entry.serial] = (entry.revoked_at, reason)
            if entry.serial not in by_serial:
                merged.orphans[entry.serial] = RevokedSerial(
                    entry.serial,
                    entry.revoked_at,
                    reason,
                    entry.expires,
                    entry.subject,
                    f"index line {entry.line}",
                )
        elif entry.serial not in by_serial:
            merged.missing.append(entry)


def _crl_reason(item: x509.RevokedCertificate) -> str:
    try:
        flag = item.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "unspecified"
    return _CRL_REASONS.get(flag, "unspecified")


def _merge_crl(records: Records, ca: x509.Certificate, by_serial: Found, merged: _Merged) -> None:
    """What clients already refuse stays refused, even if index.txt forgot it."""
    if records.crl is None:
        return
    for item in records.crl:
        serial = item.serial_number
        problem = serial_problem(serial)
        if problem:
            raise InputError(
                f"CRL '{records.crl_source}' lists a serial that {problem}",
                "no CRL privca signs could list it: remove the stale CRL",
            )
        if serial in merged.revoked:
            continue
        reason = _crl_reason(item)
        merged.revoked[serial] = (item.revocation_date_utc, reason)
        if serial not in by_serial:
            merged.missing = [m for m in merged.missing if m.serial != serial]
            merged.orphans[serial] = RevokedSerial(
                serial,
                item.revocation_date_utc,
                reason,
                ca.not_valid_after_utc,  # unknown; keeps it on the CRL while the CA lives
                "",
                records.crl_source,
            )


def _imported(by_serial: Found, revoked: Revoked) -> list[ImportedCertificate]:
    imported = []
    for serial, (cert, source) in sorted(by_serial.items()):
        names, profile = _describe(cert, source)
        revocation = revoked.get(serial)
        imported.append(
            ImportedCertificate(
                certificate=cert,
                source=source,
                status="revoked" if revocation is not None else "issued",
                revoked_at=revocation[0] if revocation is not None else None,
                reason=revocation[1] if revocation is not None else None,
                names=names,
                profile=profile,
            )
        )
    return imported


def merge(
    ca: x509.Certificate,
    found: Sequence[tuple[x509.Certificate, str]],
    records: Records,
) -> tuple[
    tuple[ImportedCertificate, ...],
    tuple[RevokedSerial, ...],
    tuple[IndexEntry, ...],
    tuple[int, ...],
]:
    """Certificates with their status; refuses foreign certificates and contradictions."""
    by_serial = _certificates_of(ca, found)
    merged = _Merged()
    _merge_index(records.entries, by_serial, merged)
    _merge_crl(records, ca, by_serial, merged)
    return (
        tuple(_imported(by_serial, merged.revoked)),
        tuple(merged.orphans.values()),
        tuple(merged.missing),
        tuple(merged.holds),
    )


def build_plan(
    *,
    kind: str,
    source: Path,
    name: str | None,
    cert_path: Path,
    key_path: Path,
    passphrase: PassphraseSource,
    certificate_files: Sequence[Path],
    records: Records,
    service_keys: Sequence[Path] = (),
) -> AdoptionPlan:
    ca, ca_pem = read_ca_certificate(cert_path)
    key, encrypted, mode = read_ca_key(key_path, ca, passphrase)
    with warnings.catch_warnings():
        # A serial RFC 5280 forbids is refused by name (serial_problem); cryptography's
        # warning about it would print a traceback-like line above that error.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        found = load_certificate_files(certificate_files)
        certificates, orphans, missing, holds = merge(ca, found, records)
    return AdoptionPlan(
        kind=kind,
        source=source,
        name=_ca_name(name, ca),
        ca_certificate=ca,
        ca_pem=ca_pem,
        ca_key=key,
        key_file=key_path,
        key_mode=mode,
        key_was_encrypted=encrypted,
        certificates=certificates,
        revoked_without_certificate=orphans,
        missing=missing,
        holds=holds,
        crl_number=records.crl_number,
        crl_this_update=records.crl.last_update_utc if records.crl is not None else None,
        crl_next_update=records.crl.next_update_utc if records.crl is not None else None,
        service_keys=tuple(service_keys),
    )


def _ca_name(name: str | None, ca: x509.Certificate) -> str:
    if name is not None:
        return name
    common_names = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    text = str(common_names[0].value) if common_names else ca.subject.rfc4514_string()
    return text[:64] or "Imported CA"


def check_directory(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} '{path}' does not exist", "check the path")
    if not path.is_dir():
        raise InputError(f"{what} '{path}' is not a directory")
