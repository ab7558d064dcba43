"""`privca backup verify`: prove an archive restores, without touching any CA.

The archive is restored into a temporary home exactly as `privca restore` would (hashes,
store integrity, migrations), opened as a CA, examined by doctor's checks, and every
certificate in its store is checked against the CA that signed it. The first problem
raises CheckFailed (exit 1); InputError (exit 2) for what is not a privca backup.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from privca.adopt.doctor import Finding, examine_home
from privca.authority import CertificateAuthority
from privca.backup.restore import RestoreResult, restore
from privca.errors import CheckFailed, KeyUnavailable
from privca.keys.custody import SecretSource
from privca.store.schema import authorities, certificates
from privca.x509.encoding import serial_hex

KEY_FILE_FINDING = "ca-key-file"


@dataclass(frozen=True)
class VerifyResult:
    restored: RestoreResult
    findings: tuple[Finding, ...]
    certificates_checked: int
    keys_checked: tuple[str, ...] = ()  # key files that decrypted and matched (check_keys)


def check_key_files(ca: CertificateAuthority) -> tuple[str, ...]:
    """Unlock every CA key file (and the audit key file) in the restored home and check
    it is the key its certificate certifies (KeyUnavailable from a mismatch becomes
    CheckFailed; a wrong passphrase stays WrongPassphrase). Keys on a token or not in the
    archive are skipped."""
    checked: list[str] = []
    for authority in ca.authorities():
        path = ca.key_file(authority)
        if path is None or not path.exists():
            continue
        try:
            ca.signer(authority)
        except KeyUnavailable as exc:
            raise CheckFailed(f"in the backup, {exc.message}", exc.hint) from exc
        checked.append(f"{path.parent.name}/{path.name}")
    # The audit key too: swapped for another key, restoring passed and the first
    # checkpoint afterwards failed (exit 3).
    try:
        audit_key = ca.check_audit_key()
    except KeyUnavailable as exc:
        raise CheckFailed(f"in the backup, {exc.message}", exc.hint) from exc
    if audit_key is not None:
        checked.append(f"{audit_key.parent.name}/{audit_key.name}")
    return tuple(checked)


def _signed_rows(home: Path) -> Iterator[tuple[str, int, bytes]]:
    engine = sa.create_engine(f"sqlite:///{home / 'privca.db'}", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            result = connection.execute(
                sa.select(certificates.c.serial, certificates.c.issuer_id, certificates.c.der)
                .where(certificates.c.der.is_not(None))
                .order_by(certificates.c.serial)
            )
            yield from ((r[0], int(r[1]), bytes(r[2])) for r in result)
    finally:
        engine.dispose()


def _issuers(home: Path) -> dict[int, x509.Certificate]:
    engine = sa.create_engine(f"sqlite:///{home / 'privca.db'}", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(authorities.c.id, authorities.c.der)).all()
    finally:
        engine.dispose()
    return {int(r[0]): x509.load_der_x509_certificate(bytes(r[1])) for r in rows}


def check_certificates(home: Path) -> int:
    """Every stored certificate parses and is signed by the CA the store says issued it."""
    issuers = _issuers(home)
    checked = 0
    for serial, issuer_id, der in _signed_rows(home):
        try:
            certificate = x509.load_der_x509_certificate(der)
            issuer = issuers[issuer_id]
            certificate.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, KeyError, InvalidSignature) as exc:
            raise CheckFailed(
                f"certificate {serial} in the backup does not verify against its CA: {exc}"
            ) from exc
        if serial_hex(certificate.serial_number) != serial:
            raise CheckFailed(f"certificate {serial} in the backup holds another serial")
        checked += 1
    return checked


def verify_backup(
    archive: Path, now: dt.datetime, *, passphrase: SecretSource | None = None
) -> VerifyResult:
    """Restore `archive` into a temporary home and check it (module docstring); with a
    `passphrase`, also unlock every CA key file and match it to its certificate."""
    with tempfile.TemporaryDirectory(prefix="privca-verify-") as scratch:
        restored = restore(archive, Path(scratch) / "home", now)
        expected = restored.manifest.summary.get("certificates")
        if expected != restored.summary.certificates:
            raise CheckFailed(
                f"the backup's store holds {restored.summary.certificates} certificates, "
                f"its manifest says {expected}"
            )
        checked = check_certificates(restored.home)
        ca = CertificateAuthority.open(restored.home, passphrase)
        try:
            # (restore has checked the store against its own audit log)
            findings = examine_home(ca, now)
            keys = check_key_files(ca) if passphrase is not None else ()
        finally:
            ca.close()
    if not restored.manifest.keys_complete:
        # Keys left out on purpose (or kept offline) are reported by the manifest instead.
        findings = [f for f in findings if f.code != KEY_FILE_FINDING]
    critical = [f for f in findings if f.severity == "critical"]
    if critical:
        raise CheckFailed(f"doctor, in the restored home: {critical[0].message}", critical[0].fix)
    return VerifyResult(restored, tuple(findings), checked, keys)


__all__ = ["VerifyResult", "check_certificates", "check_key_files", "verify_backup"]
