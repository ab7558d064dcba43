"""`privca inspect FILE`: what a certificate, chain, CSR or CRL says, PEM or DER, text or
--json, without a CA home; files that hold none of those are one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from tests.conftest import Cli, assert_user_error, openssl, write


@pytest.fixture
def files(ca: CertificateAuthority, tmp_path: Path) -> dict[str, Path]:
    issued = ca.issue(["db.corp.internal", "10.0.0.5"])
    ca.revoke(format(issued.serial, "x"), "keyCompromise")
    crl = ca.crl()
    csr_key = tmp_path / "k.pem"
    assert openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                   "-out", str(csr_key)).returncode == 0  # fmt: skip
    csr = tmp_path / "r.csr"
    made = openssl(
        "req", "-new", "-key", str(csr_key), "-subj", "/CN=mail.corp.internal",
        "-addext", "subjectAltName=DNS:mail.corp.internal", "-out", str(csr),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return {
        "cert": write(tmp_path / "db.crt", issued.certificate_pem()),
        "chain": write(
            tmp_path / "db.chain.pem", issued.chain_pem() + ca.root.public_bytes(Encoding.PEM)
        ),
        "der": write(tmp_path / "db.der", issued.certificate.public_bytes(Encoding.DER)),
        "csr": csr,
        "crl": write(tmp_path / "ca.crl", crl.public_bytes(Encoding.DER)),
        "crl-pem": write(tmp_path / "ca.crl.pem", crl.public_bytes(Encoding.PEM)),
        "key": csr_key,
        "cert-and-key": write(
            tmp_path / "both.pem", csr_key.read_bytes() + issued.certificate_pem()
        ),
    }


def _json(cli: Cli, path: Path) -> list[dict]:
    result = cli("inspect", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_certificate(run_cli: Cli, files: dict[str, Path]) -> None:
    (document,) = _json(run_cli, files["cert"])
    cert = x509.load_pem_x509_certificate(files["cert"].read_bytes())
    assert document["kind"] == "certificate"
    assert document["subject"] == "CN=db.corp.internal"
    assert document["names"] == ["db.corp.internal", "10.0.0.5"]
    assert document["serial"] == format(cert.serial_number, "x")
    assert document["key"]["type"] == "EC P-256"
    assert document["days_left"] == 730
    assert document["fingerprints"]["sha256"] == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    extensions = {e["name"]: e for e in document["extensions"]}
    assert extensions["basicConstraints"] == {
        "name": "basicConstraints", "oid": "2.5.29.19", "critical": True, "value": "CA:FALSE"
    }  # fmt: skip
    assert extensions["extendedKeyUsage"]["value"] == ["serverAuth", "clientAuth"]
    text = run_cli("inspect", str(files["cert"])).stdout
    expected = (
        "Subject:", "CN=db.corp.internal", "10.0.0.5", "730 days left", "EC P-256",
        "basicConstraints (critical): CA:FALSE", "SHA-256 fingerprint:",
    )  # fmt: skip
    for fragment in expected:
        assert fragment in text, fragment
    assert _json(run_cli, files["der"]) == [document]  # DER says the same


def test_chain_says_who_signed_whom(run_cli: Cli, files: dict[str, Path]) -> None:
    documents = _json(run_cli, files["chain"])
    assert [d["kind"] for d in documents] == ["certificate"] * 3
    assert [d.get("signed_by_next") for d in documents] == [True, True, None]
    assert documents[2]["self_signed"] is True
    text = run_cli("inspect", str(files["chain"])).stdout
    assert "Certificate (1 of 3)" in text and "signed by the next certificate" in text


def test_csr(run_cli: Cli, files: dict[str, Path]) -> None:
    (document,) = _json(run_cli, files["csr"])
    assert document["kind"] == "csr"
    assert document["names"] == ["mail.corp.internal"]
    assert document["signature_valid"] is True


@pytest.mark.parametrize("name", ["crl", "crl-pem"])
def test_crl(run_cli: Cli, files: dict[str, Path], name: str) -> None:
    (document,) = _json(run_cli, files[name])
    assert document["kind"] == "crl"
    assert [e["reason"] for e in document["entries"]] == ["keyCompromise"]
    assert document["current"] is True
    assert "1 certificate(s)" in run_cli("inspect", str(files[name])).stdout


def test_private_keys_are_never_shown(run_cli: Cli, files: dict[str, Path]) -> None:
    result = run_cli("inspect", str(files["key"]))
    assert_user_error(result, "holds no certificate, CSR or CRL (found PEM PRIVATE KEY)")
    assert "PRIVATE KEY-----" not in result.stdout
    both = run_cli("inspect", str(files["cert-and-key"]))
    assert both.exit_code == 0
    assert "PRIVATE" not in both.stdout and "Certificate" in both.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "an empty file"),
        (b"hello", "neither PEM nor DER"),
        (b"\x30\x03\x02\x01\x01", "DER of another kind"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be read"),
    ],
    ids=["empty", "text", "other-der", "broken-pem"],
)
def test_not_inspectable(run_cli: Cli, tmp_path: Path, content: bytes, fragment: str) -> None:
    assert_user_error(run_cli("inspect", str(write(tmp_path / "f", content))), fragment)


def test_stdin_in_a_real_process(files: dict[str, Path]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "privca", "inspect", "-", "--json"],
        input=files["cert"].read_bytes(), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["names"] == ["db.corp.internal", "10.0.0.5"]
