"""`privca backup verify`: prove an archive restores, without touching any CA.

The archive is restored into a temporary home exactly as `privca restore` would (hashes,
store integrity, migrations, and every check of backup/contents.py: every certificate in
its store against the CA that signed it among them), opened as a CA and examined by
doctor's checks. The first problem
raises CheckFailed (exit 1); InputError (exit 2) for what is not a privca backup.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

from privca.adopt.doctor import Finding, examine_home
from privca.authority import CertificateAuthority
from privca.backup.restore import RestoreResult, restore
from privca.errors import CheckFailed, KeyUnavailable, WrongPassphrase
from privca.home import locked_scratch_directory
from privca.keys.custody import SecretSource

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
        member = f"{path.parent.name}/{path.name}"
        try:
            ca.signer(authority)
        except WrongPassphrase as exc:
            raise _wrong_passphrase(member, exc) from exc
        except KeyUnavailable as exc:
            raise CheckFailed(f"in the backup, {exc.message}", exc.hint) from exc
        checked.append(member)
    # The audit key too: swapped for another key, restoring passed and the first
    # checkpoint afterwards failed (exit 3).
    try:
        audit_key = ca.check_audit_key()
    except WrongPassphrase as exc:
        raise _wrong_passphrase("the audit key", exc) from exc
    except KeyUnavailable as exc:
        raise CheckFailed(f"in the backup, {exc.message}", exc.hint) from exc
    if audit_key is not None:
        checked.append(f"{audit_key.parent.name}/{audit_key.name}")
    return tuple(checked)


def _wrong_passphrase(member: str, exc: WrongPassphrase) -> WrongPassphrase:
    """The key named as the archive holds it: the message named its copy in the scratch
    home, a path gone by the time the reader looks for it."""
    return WrongPassphrase(f"the passphrase does not decrypt {member} of the backup", exc.hint)


def verify_backup(
    archive: Path, now: dt.datetime, *, passphrase: SecretSource | None = None
) -> VerifyResult:
    """Restore `archive` into a temporary home and check it (module docstring); with a
    `passphrase`, also unlock every CA key file and match it to its certificate."""
    with locked_scratch_directory(Path(tempfile.gettempdir()), "privca-verify-") as scratch:
        # restore refuses what the archive must not hold (backup/contents.py), the
        # certificates' signatures and the store's audit log included.
        restored = restore(archive, scratch / "home", now)
        ca = CertificateAuthority.open(restored.home, passphrase)
        try:
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
    return VerifyResult(restored, tuple(findings), restored.certificates_verified, keys)


__all__ = ["VerifyResult", "check_key_files", "verify_backup"]
