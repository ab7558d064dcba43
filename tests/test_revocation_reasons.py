"""Revocation reasons only get worse: the attack in which a stolen key's holder revokes
with a mild reason first, so that keyCompromise "changes nothing" and the key stays usable.

Through the CLI and the library: superseded (or a scheduled renewal revocation) then
keyCompromise changes the reason, keeps the first date, bars the key, and the next CRL
(`openssl crl`) and OCSP answer (`openssl ocsp` against a running server) say
keyCompromise. Every other change is refused with one clear line. The same through ACME is
in tests/acme/test_revocation_reasons.py.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import AlreadyExists, PolicyError
from privca.store.records import Revocation, RevocationOutcome
from privca.x509.build import build_csr
from privca.x509.csr import inspect_csr
from privca.x509.encoding import pem_certificate
from privca.x509.names import parse_names
from tests.conftest import Cli, assert_user_error, openssl, require_tool, write
from tests.server.conftest import LiveServer, live_server  # noqa: F401  (fixture)


def _ocsp(ca: CertificateAuthority, server: LiveServer, cert: Path, files: Path) -> str:
    issuer = write(files / "issuing.crt", pem_certificate(ca.issuing))
    root = write(files / "root.crt", pem_certificate(ca.root))
    result = openssl(
        "ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", f"{server.base}/ocsp",
        "-CAfile", str(root), "-timeout", "10",
    )  # fmt: skip
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    return result.stdout


def _crl_text(ca_home: Path, tmp_path: Path, cli: Cli) -> str:
    out = tmp_path / "current.crl"
    result = cli("crl", "--out", str(out), "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 0, result.output
    text = openssl("crl", "-inform", "DER", "-in", str(out), "-noout", "-text")
    assert text.returncode == 0, text.stderr
    return text.stdout


def _revocation_time(ocsp_text: str) -> str:
    match = re.search(r"Revocation Time: (.+)", ocsp_text)
    assert match, ocsp_text
    return match.group(1)


def test_cli_key_compromise_after_superseded(
    run_cli: Cli,
    tmp_path: Path,
    live_server: Callable[..., LiveServer],  # noqa: F811
) -> None:
    require_tool("openssl")
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Reasons CA", *secret).exit_code == 0
    out = tmp_path / "svc"
    issued = run_cli("issue", "db.corp.internal", "--out", str(out), *secret)
    assert issued.exit_code == 0, issued.output
    with CertificateAuthority.open(run_cli.home, b"test passphrase 1") as ca:
        [record] = ca.certificates()
        serial = f"{record.serial:x}"
        server = live_server(ca)
        cert = out / "db.corp.internal.crt"

        first = run_cli("revoke", serial, "--reason", "superseded")
        assert first.exit_code == 0, first.output
        before = _ocsp(ca, server, cert, tmp_path)
        assert "Reason: superseded" in before, before

        # The attack's second step used to print "nothing changed".
        escalated = run_cli("revoke", serial, "--reason", "keyCompromise")
        assert escalated.exit_code == 0, escalated.output
        assert "now revoked for keyCompromise" in escalated.output
        assert "nothing changed" not in escalated.output
        time.sleep(0.05)
        after = _ocsp(ca, server, cert, tmp_path)
        assert "Reason: keyCompromise" in after, after
        assert _revocation_time(after) == _revocation_time(before)

    crl = _crl_text(run_cli.home, tmp_path, run_cli)
    assert "Key Compromise" in crl, crl
    assert "Superseded" not in crl

    # The key is barred: a CSR with it is refused, whatever names it asks for.
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key((out / "db.corp.internal.key").read_bytes(), None)
    csr = build_csr(key, parse_names(["other.corp.internal"]))
    from cryptography.hazmat.primitives.serialization import Encoding

    csr_path = write(tmp_path / "other.csr", csr.public_bytes(Encoding.PEM))
    signed = run_cli("sign", str(csr_path), "--out", str(tmp_path / "o"), *secret)
    assert_user_error(signed, "revoked for keyCompromise")

    # Nothing can make it better again.
    for better in ("superseded", "unspecified", "cessationOfOperation"):
        refused = run_cli("revoke", serial, "--reason", better)
        assert_user_error(refused, "can only change to keyCompromise")
    again = run_cli("revoke", serial, "--reason", "keyCompromise", "--json")
    assert again.exit_code == 0 and '"outcome": "unchanged"' in again.output


def test_cli_has_no_unrevocation(run_cli: Cli) -> None:
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Reasons CA", *secret).exit_code == 0
    for reason in ("removeFromCRL", "certificateHold"):
        assert_user_error(run_cli("revoke", "x", "--reason", reason), "invalid value")


def test_library_transitions_and_renew_revoke_old(ca: CertificateAuthority) -> None:
    old = ca.issue(["svc.corp.internal"])
    renewed = ca.renew(f"{old.serial:x}", revoke_old_after=dt.timedelta(0))
    record = ca.inventory.get(old.serial)
    assert record is not None and record.revocation_reason == "superseded"
    first_date = record.revoked_at

    later = utcnow() + dt.timedelta(hours=1)
    with pytest.raises(PolicyError, match="already revoked \\(superseded\\)"):
        ca.revoke(f"{old.serial:x}", "affiliationChanged", now=later)
    record, outcome = ca.revoke(f"{old.serial:x}", "keyCompromise", now=later)
    assert outcome is RevocationOutcome.REASON_CHANGED
    assert (record.revoked_at, record.revocation_reason) == (first_date, "keyCompromise")

    crl = ca.crl()
    entry = crl.get_revoked_certificate_by_serial_number(old.serial)
    assert entry is not None and entry.revocation_date_utc == first_date
    from cryptography import x509

    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise

    request = inspect_csr(build_csr(old.private_key, parse_names(["svc.corp.internal"])))
    with pytest.raises(PolicyError, match="revoked for keyCompromise"):
        ca.sign_requests([request])
    assert ca.inventory.get(renewed.serial).status == "issued"  # the renewal is not touched


def test_scheduled_revocation_does_not_downgrade(ca: CertificateAuthority) -> None:
    old = ca.issue(["sched.corp.internal"])
    ca.renew(f"{old.serial:x}", revoke_old_after=dt.timedelta(hours=1))
    ca.revoke(f"{old.serial:x}", "keyCompromise")
    applied = ca.apply_scheduled_revocations(utcnow() + dt.timedelta(days=2))
    assert applied == []
    record = ca.inventory.get(old.serial)
    assert record is not None and record.revocation_reason == "keyCompromise"
    crl = ca.crl(now=utcnow() + dt.timedelta(days=2))
    entry = crl.get_revoked_certificate_by_serial_number(old.serial)
    assert entry is not None


def test_a_due_scheduled_revocation_bars_the_key_and_keeps_its_date(
    ca: CertificateAuthority,
) -> None:
    """After the grace of renew --revoke-old-after the old certificate is revoked (OCSP and
    CRLs say so): it is not renewed again (it was, once), its revocation does not move,
    and a revoked certificate's key is never reused."""
    old = ca.issue(["due.corp.internal"])
    ca.renew(f"{old.serial:x}", revoke_old_after=dt.timedelta(hours=1))
    due = ca.inventory.get(old.serial).revoke_after  # type: ignore[union-attr]
    later = utcnow() + dt.timedelta(hours=2)
    for new_key in (False, True):
        with pytest.raises(AlreadyExists, match="was renewed already"):
            ca.renew(f"{old.serial:x}", new_key=new_key, now=later)
    record = ca.inventory.get(old.serial)
    assert record is not None and record.revocation_at(later) == Revocation(due, "superseded")
    revoked = ca.issue(["revoked.corp.internal"])
    ca.revoke(f"{revoked.serial:x}", "superseded")
    with pytest.raises(PolicyError, match="is revoked; its key may not be reused"):
        ca.renew(f"{revoked.serial:x}", new_key=False)


def test_cli_key_compromise_names_and_revokes_the_other_certificates_of_the_key(
    run_cli: Cli, tmp_path: Path
) -> None:
    """Two certificates signed from CSRs of one key: reporting the key through one
    revokes the other, says so, and `privca verify` no longer calls the other OK."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from privca.keys.types import KeyType

    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Same Key CA", *secret).exit_code == 0
    key = KeyType.EC_P256.generate()
    serials = {}
    for name in ("a.corp.internal", "c.corp.internal"):
        csr = write(tmp_path / f"{name}.csr",
                    build_csr(key, parse_names([name])).public_bytes(Encoding.PEM))  # fmt: skip
        signed = run_cli("sign", str(csr), "--out", str(tmp_path / "o"), "--json", *secret)
        assert signed.exit_code == 0, signed.stderr
        serials[name] = re.search(r'"serial": "([0-9a-f]+)"', signed.stdout).group(1)
    revoked = run_cli("revoke", "a.corp.internal", "--reason", "keyCompromise")
    assert revoked.exit_code == 0, revoked.stderr
    assert f"same key: {serials['c.corp.internal']} (c.corp.internal)" in revoked.output
    verified = run_cli("verify", str(tmp_path / "o" / "c.corp.internal.crt"))
    assert verified.exit_code == 1 and "revoked" in verified.output.lower(), verified.output
