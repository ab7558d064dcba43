"""x509/crl.py: CRLs that OpenSSL verifies and reads, and pkilint finds nothing in.

Every reason privca accepts is written as RFC 5280 5.3.1 asks ('unspecified' by leaving
the reason out), for every CA key type, from an empty list to a large one.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.keys.types import KeyType
from privca.x509.build import subject_key_identifier
from privca.x509.crl import REASONS, Revocation, build_crl, reason_flag
from tests.conftest import require_tool
from tests.x509.pki import NOW, make_pki, write_pem

NEXT = NOW + dt.timedelta(days=7)


def _openssl_crl(directory: Path, crl: x509.CertificateRevocationList, *args: str) -> str:
    require_tool("openssl")
    path = directory / "ca.crl"
    path.write_bytes(crl.public_bytes(Encoding.DER))
    done = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("reason", sorted(REASONS), ids=str)
def test_every_reason_is_written_as_rfc_5280_asks(tmp_path: Path, reason: str) -> None:
    pki = make_pki()
    entry = Revocation(0xABCDEF, NOW - dt.timedelta(hours=1), reason)
    crl = build_crl(pki.issuing_issuer, [entry], 7, NOW, NEXT)
    (revoked,) = list(crl)
    assert revoked.serial_number == 0xABCDEF
    assert revoked.revocation_date_utc == entry.revoked_at
    if reason == "unspecified":
        assert len(revoked.extensions) == 0
    else:
        assert (
            revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
            is (REASONS[reason])
        )
    text = _openssl_crl(tmp_path, crl, "-text")
    assert "Serial Number: ABCDEF" in text
    assert ("CRL Reason Code" in text) is (reason != "unspecified")


@pytest.mark.parametrize(
    ("reason", "flag"),
    [(None, None), ("unspecified", None), ("keyCompromise", x509.ReasonFlags.key_compromise),
     ("superseded", x509.ReasonFlags.superseded)],
    ids=["none", "unspecified", "keyCompromise", "superseded"],
)  # fmt: skip
def test_reason_flag(reason: str | None, flag: x509.ReasonFlags | None) -> None:
    assert reason_flag(reason) is flag


def test_an_unknown_reason_is_a_programming_error() -> None:
    """Reasons are checked where they come in (CLI, ACME); here an unknown one is a bug."""
    with pytest.raises(KeyError):
        reason_flag("removeFromCRL")


@pytest.mark.parametrize(
    "issuing_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519],
    ids=str,
)  # fmt: skip
def test_openssl_verifies_the_signature(tmp_path: Path, issuing_type: KeyType) -> None:
    pki = make_pki(issuing_type=issuing_type)
    entries = [Revocation(n, NOW - dt.timedelta(days=n), "keyCompromise") for n in (1, 2, 3)]
    crl = build_crl(pki.issuing_issuer, entries, 42, NOW, NEXT)
    issuing = write_pem(tmp_path / "issuing.pem", pki.issuing)
    text = _openssl_crl(tmp_path, crl, "-CAfile", str(issuing), "-text")
    assert "verify OK" in text
    assert "X509v3 CRL Number: \n                42" in text
    impostor = make_pki(issuing_type=issuing_type, label="impostor").issuing
    assert impostor.subject == pki.issuing.subject
    wrong = write_pem(tmp_path / "impostor.pem", impostor)
    path = tmp_path / "ca.crl"
    done = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-noout", "-CAfile", str(wrong)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "verify OK" not in done.stdout + done.stderr


def test_issuer_number_and_times(tmp_path: Path) -> None:
    pki = make_pki()
    crl = build_crl(pki.issuing_issuer, [], 123456789, NOW, NEXT)
    assert crl.issuer == pki.issuing.subject
    assert crl.last_update_utc == NOW and crl.next_update_utc == NEXT
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 123456789
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == subject_key_identifier(pki.issuing)
    assert not aki.critical
    assert [e.oid for e in crl.extensions] == [
        x509.ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        x509.ExtensionOID.CRL_NUMBER,
    ]
    assert crl.is_signature_valid(pki.issuing.public_key())
    assert len(crl) == 0


def test_a_large_list_keeps_every_entry() -> None:
    """Built in one constructor call: 20,000 entries, each exactly once, in order."""
    pki = make_pki()
    entries = [Revocation(n + 1, NOW, "superseded" if n % 2 else None) for n in range(20_000)]
    crl = build_crl(pki.issuing_issuer, entries, 1, NOW, NEXT)
    serials = [revoked.serial_number for revoked in crl]
    assert serials == [e.serial for e in entries]
    assert crl.get_revoked_certificate_by_serial_number(19_999) is not None
    assert crl.get_revoked_certificate_by_serial_number(20_001) is None


@pytest.mark.parametrize("entries", [0, 3], ids=["empty", "three"])
def test_pkilint_finds_nothing(tmp_path: Path, entries: int) -> None:
    """pkilint's `lint_crl -t CRL -p PKIX`: nothing at all, INFO included."""
    pytest.importorskip("pkilint")
    pki = make_pki()
    revoked = [Revocation(n + 1, NOW, "keyCompromise") for n in range(entries)]
    crl = build_crl(pki.issuing_issuer, revoked, 9, NOW, NEXT)
    path = tmp_path / "ca.crl"
    path.write_bytes(crl.public_bytes(Encoding.DER))
    done = subprocess.run(
        [sys.executable, "-m", "pkilint.bin.lint_crl", "lint", "-t", "CRL", "-p", "PKIX",
         "-s", "INFO", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
