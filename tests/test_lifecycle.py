"""Revocation, CRLs, renewal, rotation and expiry tracking, judged by openssl where it can."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import NotFound, PolicyError
from privca.store.records import RevocationOutcome
from privca.x509.build import build_csr
from privca.x509.csr import inspect_csr
from privca.x509.encoding import pem_private_key_unencrypted
from privca.x509.names import parse_names
from tests.conftest import PASSPHRASE, Cli, openssl, write
from tests.tls_server import serve_tls


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_revoke_twice_keeps_first_date_and_only_worsens_the_reason(
    ca: CertificateAuthority,
) -> None:
    issued = ca.issue(["db.corp.internal"])
    first, outcome = ca.revoke(format(issued.serial, "x"), "cessationOfOperation")
    assert outcome is RevocationOutcome.REVOKED and first.status == "revoked"
    later = utcnow() + dt.timedelta(hours=3)
    with pytest.raises(PolicyError, match="can only change to keyCompromise"):
        ca.revoke("db.corp.internal", "superseded", now=later)
    _, outcome = ca.revoke("db.corp.internal", "cessationOfOperation", now=later)
    assert outcome is RevocationOutcome.UNCHANGED
    second, outcome = ca.revoke("db.corp.internal", "keyCompromise", now=later)
    assert outcome is RevocationOutcome.REASON_CHANGED
    assert second.revoked_at == first.revoked_at
    assert second.revocation_reason == "keyCompromise"


def test_revoke_unknown_serial_is_input_error(ca: CertificateAuthority) -> None:
    with pytest.raises(NotFound):
        ca.revoke("0123456789abcdef")


def test_key_compromise_blocks_the_key(ca: CertificateAuthority) -> None:
    issued = ca.issue(["db.corp.internal"])
    ca.revoke(format(issued.serial, "x"), "keyCompromise")
    csr = inspect_csr(build_csr(issued.private_key, parse_names(["other.corp.internal"])))
    with pytest.raises(PolicyError, match="revoked for keyCompromise"):
        ca.sign_requests([csr])
    with pytest.raises(PolicyError):
        ca.renew(format(issued.serial, "x"), new_key=False)


def test_key_compromise_revokes_every_certificate_of_the_key(ca: CertificateAuthority) -> None:
    """The key is compromised whichever certificate it was reported through: the others
    that carry it used to stay valid in the CRL, OCSP and verify (only new issuance was
    barred). A milder earlier revocation is made worse, its date kept; others stay."""
    from privca.audit.verify import verify_audit
    from privca.keys.types import KeyType

    key = KeyType.EC_P256.generate()
    a, b, c = (
        ca.sign_requests([inspect_csr(build_csr(key, parse_names([f"{n}.corp.internal"])))])[0]
        for n in "abc"
    )
    other = ca.issue(["other.corp.internal"])
    first, _ = ca.revoke(format(b.serial, "x"), "superseded")
    ca.revoke(format(a.serial, "x"), "keyCompromise")
    records = {r: ca.inventory.get(r.serial) for r in (a, b, c, other)}
    assert [records[x].revocation_reason for x in (a, b, c)] == ["keyCompromise"] * 3
    assert records[b].revoked_at == first.revoked_at
    assert records[other].revocation_reason is None
    crl = ca.crl()
    listed = {entry.serial_number for entry in crl}
    assert listed == {a.serial, b.serial, c.serial}
    assert verify_audit(ca).intact, verify_audit(ca).problem


def test_a_certificate_put_back_with_a_barred_key_comes_back_revoked(
    ca: CertificateAuthority,
) -> None:
    """`privca import` of a certificate our CA signed, whose key a keyCompromise barred:
    it was recorded valid, undoing the bar for that certificate."""
    from privca.adopt.lost import read_lost
    from privca.audit.verify import verify_audit
    from privca.x509.build import CertificateSpec, build_certificate
    from privca.x509.profiles import leaf_profile

    reported = ca.issue(["reported.corp.internal"])
    ca.revoke(format(reported.serial, "x"), "keyCompromise")
    signer = ca.signer(ca.registry.issuing)  # what a thief with the CA key could sign
    now = utcnow()
    stray = build_certificate(
        CertificateSpec(
            subject=x509.Name([]),
            public_key=reported.private_key.public_key(),
            profile=leaf_profile("server"),
            serial=x509.random_serial_number(),
            not_before=now,
            not_after=now + dt.timedelta(days=30),
            names=parse_names(["stray.corp.internal"]),
        ),
        signer,
    )
    path = ca.home.root / "stray.crt"
    path.write_bytes(stray.public_bytes(Encoding.PEM))
    added, _known = ca.import_lost(read_lost([path]))
    assert added == [stray.serial_number]
    record = ca.inventory.get(stray.serial_number)
    assert record is not None and record.revocation_reason == "keyCompromise"
    assert stray.serial_number in {entry.serial_number for entry in ca.crl()}
    assert verify_audit(ca).intact, verify_audit(ca).problem


def test_crl_is_judged_by_openssl(ca: CertificateAuthority, tmp_path: Path) -> None:
    revoked = ca.issue(["revoked.corp.internal"])
    good = ca.issue(["good.corp.internal"])
    ca.revoke(format(revoked.serial, "x"), "keyCompromise")
    crl = ca.crl()
    assert [entry.serial_number for entry in crl] == [revoked.serial]
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=7)
    crl_pem = write(tmp_path / "crl.pem", crl.public_bytes(Encoding.PEM))
    checked = openssl("crl", "-in", str(crl_pem), "-noout", "-CAfile", str(ca.home.issuing_cert))
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout
    root, issuing = str(ca.home.root_cert), str(ca.home.issuing_cert)
    for issued, expect_ok in ((revoked, False), (good, True)):
        leaf = write(tmp_path / f"{issued.serial:x}.crt", issued.certificate_pem())
        result = openssl(
            "verify",
            "-crl_check",
            "-CRLfile",
            str(crl_pem),
            "-CAfile",
            root,
            "-untrusted",
            issuing,
            str(leaf),
        )
        assert (result.returncode == 0) is expect_ok, result.stdout + result.stderr
        if not expect_ok:
            assert "certificate revoked" in result.stdout + result.stderr


def test_crl_number_only_grows(ca: CertificateAuthority, run_cli: Cli) -> None:
    numbers = [_crl_number(ca.crl()) for _ in range(3)]
    # A clock set back must not make the number go back.
    numbers.append(_crl_number(ca.crl(now=utcnow() - dt.timedelta(days=30))))
    reopened = CertificateAuthority.open(ca.home.root, PASSPHRASE)  # a "restart"
    numbers.append(_crl_number(reopened.crl()))
    reopened.close()
    # Two processes at once.
    passfile = write(ca.home.root.parent / "pass.txt", PASSPHRASE + b"\n", 0o600)
    command = [
        sys.executable,
        "-m",
        "privca",
        "--home",
        str(ca.home.root),
        "crl",
        "--json",
        "--passphrase-file",
        str(passfile),
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    concurrent = sorted(int(re.search(rb'"number": (\d+)', out).group(1)) for out, _ in outputs)
    numbers += concurrent
    # Strictly increasing, none shared (the values follow the time floor: authorities.py).
    assert numbers == sorted(set(numbers)), numbers


def test_renew_keeps_names_and_profile(ca: CertificateAuthority) -> None:
    old = ca.issue(["db.corp.internal", "10.0.0.5"], profile="server")
    renewed = ca.renew("db.corp.internal")
    assert renewed.serial != old.serial
    assert [str(n) for n in renewed.names] == ["db.corp.internal", "10.0.0.5"]
    assert renewed.profile == "server"
    assert renewed.private_key is not None
    assert ca.lookup(format(old.serial, "x")).status_at(utcnow()) == "superseded"
    assert ca.lookup("db.corp.internal").serial == renewed.serial
    again = ca.renew("db.corp.internal", new_key=False)
    assert again.certificate.public_key() == renewed.certificate.public_key()
    assert again.private_key is None


def test_rotation_keeps_root_and_old_crl(ca: CertificateAuthority, tmp_path: Path) -> None:
    root_before = ca.home.root_cert.read_bytes()
    old_issuing = ca.issuing
    old = ca.issue(["old.corp.internal"])
    ca.revoke(format(old.serial, "x"))
    new_issuing = ca.rotate_issuing()
    new = ca.issue(["new.corp.internal"])
    assert new.certificate.issuer == new_issuing.subject != old_issuing.subject
    assert ca.home.root_cert.read_bytes() == root_before
    chain = ca.home.chain.read_bytes()
    assert chain.count(b"BEGIN CERTIFICATE") == 2
    for issued, issuing in ((old, old_issuing), (new, new_issuing)):
        leaf = write(tmp_path / f"{issued.serial:x}.pem", issued.certificate_pem())
        inter = write(tmp_path / f"{issued.serial:x}-ca.pem", issuing.public_bytes(Encoding.PEM))
        result = openssl(
            "verify",
            "-x509_strict",
            "-CAfile",
            str(ca.home.root_cert),
            "-untrusted",
            str(inter),
            str(leaf),
        )
        assert result.returncode == 0, result.stderr
    old_record = next(a for a in ca.authorities() if a.serial == old_issuing.serial_number)
    old_crl = ca.crl(old_record)
    assert old_crl.issuer == old_issuing.subject
    assert [e.serial_number for e in old_crl] == [old.serial]
    assert list(ca.crl()) == []


def test_single_tier_rotation_becomes_two_tier(make_ca) -> None:
    ca = make_ca(single_tier=True)
    before = ca.issue(["a.corp.internal"])
    assert before.certificate.issuer == ca.root.subject
    ca.rotate_issuing()
    after = ca.issue(["b.corp.internal"])
    assert after.certificate.issuer == ca.issuing.subject != ca.root.subject
    assert not CertificateAuthority.open(ca.home.root, PASSPHRASE).settings.single_tier


# --- expiry tracking -------------------------------------------------------------------------


@pytest.fixture
def aging_ca(make_ca) -> CertificateAuthority:
    """Certificates expired (5 days ago), expiring in 5 days, in 20 days and in a year;
    issued 90 days ago, so --warn and --crit decide, not a third or a sixth of a short
    lifetime."""
    now = utcnow()
    ca = make_ca(now=now - dt.timedelta(days=200))
    # The root CRL init published 200 days ago has expired; renew it as `privca crl` would.
    ca.crl(next(a for a in ca.authorities() if a.role == "root"), now, days=180)
    ca.issue(["expired.corp.internal"], days=95, now=now - dt.timedelta(days=100))
    ca.issue(["five.corp.internal"], days=95, now=now - dt.timedelta(days=90))
    ca.issue(["twenty.corp.internal"], days=110, now=now - dt.timedelta(days=90))
    ca.issue(["year.corp.internal"], days=365)
    return ca


@pytest.mark.parametrize(
    ("fmt", "code"), [("text", 1), ("json", 1), ("nagios", 2), ("prometheus", 0)]
)
def test_check_formats_and_exit_codes(aging_ca: CertificateAuthority, run_cli: Cli, fmt, code):
    result = run_cli("check", "--format", fmt, home=aging_ca.home.root)
    assert result.exit_code == code, result.output + result.stderr
    if fmt == "nagios":
        status, perfdata = result.output.strip().split(" | ")
        assert status.startswith("PRIVCA CRITICAL - ")
        pairs = dict(item.split("=", 1) for item in perfdata.split())
        assert all(re.fullmatch(r"-?\d+(\.\d+)?;[^;]*;[^;]*;[^;]*", v) for v in pairs.values())
        assert pairs["critical"].split(";")[0] == "2"  # expired + 5 days
        assert pairs["warning"].split(";")[0] == "1"  # 20 days
    if fmt == "json":
        import json

        doc = json.loads(result.output)
        severity = {i["label"]: i["severity"] for i in doc["items"] if i["kind"] == "certificate"}
        assert severity == {  # only what is inside the window is listed ...
            "expired.corp.internal": "critical",
            "five.corp.internal": "critical",
            "twenty.corp.internal": "warning",
        }
        # ... the rest is counted (year.corp.internal)
        assert doc["certificates"] == {"total": 4, "ok": 1, "warning": 1, "critical": 2}
    if fmt == "prometheus":
        lines = [line for line in result.output.splitlines() if line and not line.startswith("#")]
        for line in lines:
            assert re.fullmatch(r"[a-z_]+(\{[^}]*\})? \d+", line), line
        listed = {
            re.search(r'name="([^"]+)"', line)[1]
            for line in lines
            if line.startswith("privca_certificate_not_after_timestamp_seconds{")
        }
        assert listed == {"five.corp.internal", "twenty.corp.internal"}  # within --warn 30d
        assert any(line.startswith("privca_certificates_issued_total") for line in lines)


def test_check_is_ok_when_nothing_is_near(ca: CertificateAuthority, run_cli: Cli) -> None:
    ca.issue(["year.corp.internal"], days=365)
    for fmt in ("text", "json", "nagios"):
        result = run_cli("check", "--format", fmt, home=ca.home.root)
        assert result.exit_code == 0, (fmt, result.output)
    assert run_cli("check", "--format", "nagios", home=ca.home.root).output.startswith("PRIVCA OK")


def test_check_nagios_unknown_when_no_ca(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("check", "--format", "nagios", home=tmp_path / "nothing")
    assert result.exit_code == 3 and result.output.startswith("PRIVCA UNKNOWN")


def test_check_prometheus_textfile(
    aging_ca: CertificateAuthority, run_cli: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "privca.prom"
    result = run_cli(
        "check", "--format", "prometheus", "--out", str(target), home=aging_ca.home.root
    )
    assert result.exit_code == 0 and "# TYPE" in target.read_text()


@pytest.mark.parametrize(
    ("days_left", "args", "code"),
    [
        (31, ["--within", "30d"], 1),
        (29, ["--within", "30d"], 0),
        (45, ["--within", "6w"], 1),
        (41, ["--within", "6w"], 0),
    ],
)
def test_needs_renewal_within(ca, run_cli: Cli, tmp_path: Path, days_left, args, code) -> None:
    cert = write(
        tmp_path / "c.pem", ca.issue(["a.corp.internal"], days=days_left).certificate_pem()
    )
    assert run_cli("needs-renewal", str(cert), *args, home=tmp_path / "no-ca").exit_code == code


@pytest.mark.parametrize(("age_days", "code"), [(59, 1), (61, 0)])
def test_needs_renewal_fraction(make_ca, run_cli: Cli, tmp_path: Path, age_days, code) -> None:
    """A 90-day certificate is due once less than a third (30 days) is left."""
    now = utcnow()
    ca = make_ca(now=now - dt.timedelta(days=100))
    issued = ca.issue(["a.corp.internal"], days=90, now=now - dt.timedelta(days=age_days))
    cert = write(tmp_path / "c.pem", issued.certificate_pem())
    assert run_cli("needs-renewal", str(cert), home=tmp_path / "x").exit_code == code
    assert (
        run_cli("needs-renewal", str(cert), "--fraction", "1/3", home=tmp_path / "x").exit_code
        == code
    )


def test_needs_renewal_json(ca, run_cli: Cli, tmp_path: Path) -> None:
    import json

    cert = write(tmp_path / "c.pem", ca.issue(["a.corp.internal"], days=10).certificate_pem())
    result = run_cli(
        "needs-renewal", str(cert), "--within", "30d", "--json", home=tmp_path / "no-ca"
    )
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["due"] is True and 9 < doc["days_left"] <= 10


def test_needs_renewal_bad_input(run_cli: Cli, tmp_path: Path) -> None:
    garbage = write(tmp_path / "g.pem", "nope")
    assert run_cli("needs-renewal", str(garbage)).exit_code == 2
    assert run_cli("needs-renewal", str(tmp_path / "missing.pem")).exit_code == 2


# --- scan ------------------------------------------------------------------------------------


def _scan(run_cli: Cli, home: Path, port: int, name: str) -> dict:
    import json

    result = run_cli("scan", f"127.0.0.1:{port}", "--name", name, "--json", home=home)
    (doc,) = json.loads(result.output)
    doc["exit_code"] = result.exit_code
    return doc


def test_scan_tells_what_is_served(
    ca: CertificateAuthority, make_ca, run_cli: Cli, tmp_path: Path
) -> None:
    home = ca.home.root
    current = ca.issue(["svc.corp.internal"])
    key = pem_private_key_unencrypted(current.private_key)
    with serve_tls(current.chain_pem(), key, tmp_path / "a") as port:
        doc = _scan(run_cli, home, port, "svc.corp.internal")
    assert doc["ok"] and doc["status"] == "valid" and doc["chain_complete"], doc
    assert doc["exit_code"] == 0

    with serve_tls(current.certificate_pem(), key, tmp_path / "b") as port:
        doc = _scan(run_cli, home, port, "svc.corp.internal")
    assert doc["ours"] and not doc["chain_complete"] and doc["exit_code"] == 1

    renewed = ca.renew(format(current.serial, "x"), new_key=False)
    with serve_tls(current.chain_pem(), key, tmp_path / "c") as port:
        doc = _scan(run_cli, home, port, "svc.corp.internal")
    assert doc["status"] == "superseded" and format(renewed.serial, "x") in doc["findings"][0]

    ca.revoke(format(renewed.serial, "x"))
    with serve_tls(renewed.chain_pem(), key, tmp_path / "d") as port:
        doc = _scan(run_cli, home, port, "svc.corp.internal")
    assert doc["status"] == "revoked" and not doc["ok"]

    foreign = make_ca(name="Foreign CA").issue(["svc.corp.internal"])
    with serve_tls(
        foreign.chain_pem(), pem_private_key_unencrypted(foreign.private_key), tmp_path / "e"
    ) as port:
        doc = _scan(run_cli, home, port, "svc.corp.internal")
    assert not doc["ours"] and "not issued by this CA" in doc["findings"][0]


def test_scan_unreachable(run_cli: Cli, ca: CertificateAuthority) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("scan", f"127.0.0.1:{port}", home=ca.home.root)
    assert result.exit_code == 1 and "UNREACHABLE" in result.output


def test_check_ignores_what_privca_renews_by_itself(ca: CertificateAuthority, run_cli: Cli):
    """The server's own 30-day TLS certificate and OCSP responder certificates renew
    themselves; they must not keep `check` in a warning state."""
    ca.issue(["ca.corp.internal"], profile="privca-server", days=30)
    ca.issue_ocsp_responder(ca.issuing_record(), days=5)
    assert run_cli("check", home=ca.home.root).exit_code == 0
    metrics = run_cli("check", "--format", "prometheus", home=ca.home.root).output
    assert "ca.corp.internal" not in metrics


def test_renew_revokes_the_old_certificate_after_the_grace_period(
    ca: CertificateAuthority, run_cli: Cli, tmp_path: Path
) -> None:
    old = ca.issue(["db.corp.internal"])
    now = utcnow()
    ca.renew("db.corp.internal", revoke_old_after=dt.timedelta(hours=1), now=now)
    assert ca.lookup(format(old.serial, "x")).status_at(now) == "superseded"
    assert list(ca.crl(now=now)) == []  # still in its grace period
    later = now + dt.timedelta(hours=2)
    crl = ca.crl(now=later)
    entry = crl.get_revoked_certificate_by_serial_number(old.serial)
    assert entry is not None
    assert entry.revocation_date_utc == now + dt.timedelta(hours=1)  # the scheduled time
    record = ca.lookup(format(old.serial, "x"))
    assert record.status == "revoked" and record.revocation_reason == "superseded"

    again = ca.issue(["web.corp.internal"])
    result = run_cli(
        "renew",
        "web.corp.internal",
        "--revoke-old-after",
        "0s",
        "--out",
        str(tmp_path / "out"),
        "--passphrase-file",
        str(run_cli.passphrase_file),
        home=ca.home.root,
    )
    assert result.exit_code == 0, result.stderr
    assert ca.inventory.get(again.serial).status == "revoked"
    both = run_cli(
        "renew", "web.corp.internal", "--revoke-old", "--revoke-old-after", "1d", home=ca.home.root
    )
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_audit_verify_checks_a_scheduled_revocation_against_its_schedule(
    ca: CertificateAuthority,
) -> None:
    """renew --revoke-old-after schedules a revocation (an audit entry with its time).
    Moving it later in the store, pending or carried out, kept a certificate good longer
    than the log said, and audit verify called the log intact."""
    import sqlite3

    from privca.audit.verify import verify_audit

    old = ca.issue(["sched.corp.internal"])
    ca.renew(format(old.serial, "x"), revoke_old_after=dt.timedelta(days=2))
    assert verify_audit(ca).intact, verify_audit(ca).problem
    digits = format(old.serial, "x")
    stored = f"X'{digits.zfill(len(digits) + len(digits) % 2)}'"  # HexBytes: whole bytes

    def shift(column: str, days: int) -> None:
        """Move `column` of the old certificate's row by `days` (Instant: microseconds)."""
        with sqlite3.connect(ca.home.database) as connection:
            connection.execute(
                f"UPDATE certificates SET {column} = {column} + {days * 86400 * 1_000_000} "
                f"WHERE serial = {stored}"
            )
        connection.close()

    shift("revoke_after", 30)
    verdict = verify_audit(ca)
    assert not verdict.intact and "has its revocation scheduled for" in (verdict.problem or "")
    shift("revoke_after", -30)
    assert verify_audit(ca).intact
    # Carried out (its time come): the revocation's date is the schedule's.
    ca.apply_scheduled_revocations(utcnow() + dt.timedelta(days=3))
    assert verify_audit(ca).intact, verify_audit(ca).problem
    shift("revoked_at", 30)
    verdict = verify_audit(ca)
    assert not verdict.intact and "is revoked as of" in (verdict.problem or "")
