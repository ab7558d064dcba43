"""Checkpoints and exports signed under an issuing CA that was revoked afterwards.

Revoked for keyCompromise or caCompromise, its key signs whatever and whenever its holder
likes: a checkpoint or an export under it proves nothing, and verification says so
(naming the CA and what to do) unless a checkpoint under a CA whose key is not suspect
covers as much of the log. Revoked for another reason, the key is not suspect: what it
signed before the revocation still verifies, anything dated after fails. An export is
checked against the revocations the home knows, or offline those of the root's CRL given.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from privca._time import utcnow
from privca.auditing import AuditSigner, sign_checkpoint
from privca.authority import CertificateAuthority
from privca.x509 import profiles
from privca.x509.build import CertificateSpec, build_certificate, ca_subject
from privca.x509.crl import load_crl
from tests.conftest import Cli, assert_user_error


def _secret(run_cli: Cli) -> str:
    return str(run_cli.passphrase_file)


def _ok(run_cli: Cli, *args: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


def _rotate(run_cli: Cli, tmp_path: Path) -> tuple[str, Path, Path]:
    """Keep the checkpoint and an export signed under the first issuing CA, then rotate:
    (its serial, the checkpoint, the export)."""
    kept = tmp_path / "checkpoint-under-the-old-ca.json"
    kept.write_bytes((run_cli.home / "certs" / "audit-checkpoint.json").read_bytes())
    export = tmp_path / "export-under-the-old-ca.json"
    _ok(run_cli, "audit", "export", "--since", "2000-01-01", "--out", str(export),
        "--passphrase-file", _secret(run_cli))  # fmt: skip
    _ok(run_cli, "rotate", "issuing", "--passphrase-file", _secret(run_cli))
    shown = json.loads(_ok(run_cli, "issuer", "show", "main", "--json"))
    return shown["issuing_cas"][0], kept, export


def _revoke(run_cli: Cli, serial: str, reason: str) -> None:
    _ok(run_cli, "issuer", "revoke", serial, "--reason", reason,
        "--passphrase-file", _secret(run_cli))  # fmt: skip


def _forge_checkpoint(run_cli: Cli, ca_serial: str, claimed: dt.datetime, out: Path) -> Path:
    """What whoever holds the revoked CA's key can do: certify an audit key of their own
    and sign the log's head as it is now, with any time in it."""
    with CertificateAuthority.open(
        run_cli.home, run_cli.passphrase_file.read_bytes().rstrip(b"\n")
    ) as ca:
        old = ca.registry.by_serial(int(ca_serial, 16))
        assert old is not None
        key = ec.generate_private_key(ec.SECP256R1())
        spec = CertificateSpec(
            subject=ca_subject("Forged Audit Log"),
            public_key=key.public_key(),
            profile=profiles.AUDIT_SIGNER,
            serial=secrets.randbits(127),
            not_before=claimed - dt.timedelta(hours=1),
            not_after=claimed + dt.timedelta(days=30),
        )
        certificate = build_certificate(spec, ca.signer(old))
        signer = AuditSigner(certificate, key, (old.certificate, ca.root))
        entries, head = ca.inventory.audit_head()
        checkpoint = sign_checkpoint(signer, entries, head, claimed, ca.root)
    out.write_text(checkpoint.text())
    return out


def _issue(run_cli: Cli, name: str, tmp_path: Path) -> None:
    _ok(run_cli, "issue", name, "--out", str(tmp_path / "out"),
        "--passphrase-file", _secret(run_cli))  # fmt: skip


def test_a_checkpoint_forged_with_a_compromised_key_fails_until_a_newer_one_covers_it(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    old_ca, kept, _export = _rotate(run_cli, tmp_path)
    before = utcnow()
    _revoke(run_cli, old_ca, "keyCompromise")
    # The revocation signed a checkpoint under the current CA: it covers the old ones.
    assert run_cli("audit", "verify").exit_code == 0
    assert run_cli("audit", "verify", "--checkpoint", str(kept)).exit_code == 0

    _issue(run_cli, "four.corp.internal", tmp_path)
    forged = _forge_checkpoint(run_cli, old_ca, before, tmp_path / "forged.json")
    result = run_cli("audit", "verify", "--checkpoint", str(forged))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert str(forged) in result.stderr
    # Not proof of tampering (the log may be intact): the word an operator acts on.
    assert result.stderr.startswith("privca: audit log NOT PROVEN: "), result.stderr
    assert f"issuing CA {old_ca}, revoked for keyCompromise" in result.stderr, result.stderr
    assert "its key signs any time" in result.stderr, result.stderr
    assert "sign a new one (privca audit checkpoint)" in result.stderr, result.stderr

    _ok(run_cli, "audit", "checkpoint", "--passphrase-file", _secret(run_cli))
    # Covered now by a checkpoint whose key is not suspect: it says nothing more.
    covered = run_cli("audit", "verify", "--checkpoint", str(forged))
    assert covered.exit_code == 0, covered.stderr


def test_a_revocation_for_another_reason_keeps_what_the_ca_signed_before(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    old_ca, kept, export = _rotate(run_cli, tmp_path)
    before = utcnow()
    _revoke(run_cli, old_ca, "superseded")
    assert run_cli("audit", "verify", "--checkpoint", str(kept)).exit_code == 0
    assert run_cli("audit", "verify-export", str(export)).exit_code == 0
    assert _forge_checkpoint(run_cli, old_ca, before, tmp_path / "before.json")
    assert run_cli("audit", "verify", "--checkpoint", str(tmp_path / "before.json")).exit_code == 0

    later = utcnow() + dt.timedelta(minutes=5)
    forged = _forge_checkpoint(run_cli, old_ca, later, tmp_path / "after.json")
    result = run_cli("audit", "verify", "--checkpoint", str(forged))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("privca: audit log NOT PROVEN: "), result.stderr
    assert f"issuing CA {old_ca}, revoked for superseded" in result.stderr, result.stderr
    assert "after its revocation; sign a new one" in result.stderr, result.stderr


def test_an_export_under_a_compromised_ca_fails_with_the_home_or_the_roots_crl(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    old_ca, _kept, export = _rotate(run_cli, tmp_path)
    root = audited_home / "certs" / "root.crt"
    assert run_cli("audit", "verify-export", str(export)).exit_code == 0
    _revoke(run_cli, old_ca, "caCompromise")

    at_home = run_cli("audit", "verify-export", str(export))
    assert at_home.exit_code == 1, (at_home.stdout, at_home.stderr)
    assert f"issuing CA {old_ca}, revoked for caCompromise" in at_home.stderr, at_home.stderr
    assert "export it again under the current issuing CA" in at_home.stderr

    # Offline, the export and the root alone cannot tell; the root's CRL can.
    alone = run_cli("audit", "verify-export", str(export), "--root", str(root))
    assert alone.exit_code == 0, alone.stderr
    crl = audited_home / "crl" / "root.crl"
    offline = run_cli("audit", "verify-export", str(export), "--root", str(root), "--crl", str(crl))
    assert offline.exit_code == 1, (offline.stdout, offline.stderr)
    assert f"issuing CA {old_ca}, revoked for caCompromise" in offline.stderr

    again = tmp_path / "export-again.json"
    _ok(run_cli, "audit", "export", "--since", "2000-01-01", "--out", str(again),
        "--passphrase-file", _secret(run_cli))  # fmt: skip
    fresh = run_cli("audit", "verify-export", str(again), "--root", str(root), "--crl", str(crl))
    assert fresh.exit_code == 0, fresh.stderr


@pytest.mark.parametrize("given", ["not-a-crl", "another-issuers-crl"])
def test_a_crl_that_is_not_the_roots_is_refused(
    run_cli: Cli, audited_home: Path, tmp_path: Path, given: str
) -> None:
    export = tmp_path / "export.json"
    _ok(run_cli, "audit", "export", "--since", "2000-01-01", "--out", str(export),
        "--passphrase-file", _secret(run_cli))  # fmt: skip
    crl = tmp_path / "given.crl"
    if given == "not-a-crl":
        crl.write_bytes(b"\x1b[31mnot a CRL\n")
        fragment = "is not a CRL"
    else:  # the issuing CA's CRL: signed, but not by the root
        root = x509.load_pem_x509_certificate((audited_home / "certs" / "root.crt").read_bytes())
        crl.write_bytes(
            next(
                data
                for data in (p.read_bytes() for p in sorted((audited_home / "crl").glob("*.crl")))
                if load_crl(data).issuer != root.subject
            )
        )
        fragment = "is not a CRL of the root given"
    result = run_cli("audit", "verify-export", str(export), "--crl", str(crl))
    assert_user_error(result, fragment)
