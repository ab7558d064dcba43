"""Third parties judge what the server publishes: the openssl CLI as OCSP client, CRL
verifier and path validator, and pkilint's CRL and OCSP response linters."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from tests.conftest import openssl, require_tool, write
from tests.server.conftest import LiveServer, ServedCA
from tests.server.test_app import ocsp_request, serial_request

# pkilint findings at WARNING or worse that we accept, each with the reason. Empty: the
# CRLs and OCSP responses lint clean (INFO included, as of pkilint 0.13).
WAIVED: frozenset[str] = frozenset()


@pytest.fixture(autouse=True)
def _openssl() -> None:
    require_tool("openssl")


def openssl_ocsp(served: ServedCA, server: LiveServer, *target: str) -> subprocess.CompletedProcess:
    return openssl(
        "ocsp",
        "-issuer",
        served.path("issuing.crt"),
        *target,
        "-url",
        f"{server.base}/ocsp",
        "-CAfile",
        served.path("root.crt"),
        "-timeout",
        "10",
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (("-cert", "good.crt"), "good.crt: good"),
        (("-cert", "revoked.crt"), "revoked.crt: revoked"),
        (("-serial", "0x1234"), "0x1234: unknown"),
    ],
    ids=["good", "revoked", "unknown"],
)
def test_openssl_ocsp_client(shared_ca: ServedCA, shared_server: LiveServer, target, expected):
    option, value = target
    argument = shared_ca.path(value) if option == "-cert" else value
    result = openssl_ocsp(shared_ca, shared_server, option, argument)
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert expected.split(": ")[1] in result.stdout.split(":", 1)[1].splitlines()[0]
    if "revoked" in expected:
        assert "Reason: keyCompromise" in result.stdout


def test_openssl_ocsp_trusting_the_responder_directly(
    shared_ca: ServedCA, shared_server: LiveServer, tmp_path: Path
) -> None:
    """-VAfile: the client pins the responder certificate instead of chaining it."""
    der = ocsp_request(shared_ca.good.certificate, shared_ca.ca.issuing)
    responder = ocsp.load_der_ocsp_response(shared_server.post_ocsp(der).body).certificates[0]
    va = write(tmp_path / "responder.pem", responder.public_bytes(Encoding.PEM))
    result = openssl(
        "ocsp",
        "-issuer",
        shared_ca.path("issuing.crt"),
        "-cert",
        shared_ca.path("good.crt"),
        "-url",
        f"{shared_server.base}/ocsp",
        "-VAfile",
        str(va),
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert ": good" in result.stdout


def test_openssl_sees_a_revocation_in_the_next_answer(served_ca: ServedCA, live_server) -> None:
    server = live_server(served_ca.ca)
    before = openssl_ocsp(served_ca, server, "-cert", served_ca.path("good.crt"))
    assert ": good" in before.stdout, before.stderr
    served_ca.ca.revoke(format(served_ca.good.serial, "x"), "cessationOfOperation")
    after = openssl_ocsp(served_ca, server, "-cert", served_ca.path("good.crt"))
    assert "Response verify OK" in after.stderr
    assert ": revoked" in after.stdout
    assert "Reason: cessationOfOperation" in after.stdout


def fetch_crl(server: LiveServer, served: ServedCA, name: str) -> tuple[Path, Path]:
    der = server.get(f"/crl/{name}.crl").body
    pem = server.get(f"/crl/{name}.pem").body
    assert x509.load_der_x509_crl(der) == x509.load_pem_x509_crl(pem)
    return write(served.files / f"{name}.crl", der), write(served.files / f"{name}.crl.pem", pem)


@pytest.mark.parametrize("name", ["issuing", "root"])
def test_openssl_verifies_the_crl(shared_ca: ServedCA, shared_server: LiveServer, name) -> None:
    der_path, _pem = fetch_crl(shared_server, shared_ca, name)
    result = openssl(
        "crl", "-in", str(der_path), "-inform", "DER", "-CAfile", shared_ca.path("chain.pem")
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("leaf", "ok"), [("good.crt", True), ("revoked.crt", False)], ids=["good", "revoked"]
)
def test_openssl_path_validation_with_the_crl(
    shared_ca: ServedCA, shared_server: LiveServer, leaf: str, ok: bool
) -> None:
    _der, pem_path = fetch_crl(shared_server, shared_ca, "issuing")
    result = openssl(
        "verify",
        "-crl_check",
        "-CRLfile",
        str(pem_path),
        "-CAfile",
        shared_ca.path("root.crt"),
        "-untrusted",
        shared_ca.path("issuing.crt"),
        shared_ca.path(leaf),
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    if not ok:
        assert "certificate revoked" in result.stdout + result.stderr


def pkilint(tool: str, *args: str) -> list[str]:
    require_tool(tool)
    result = subprocess.run(
        [tool, "lint", *args, "-s", "WARNING"], capture_output=True, text=True, timeout=60
    )
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    # Its exit code counts findings; a non-zero code with none printed is a load failure.
    assert findings or result.returncode == 0, result.stderr
    return [f for f in findings if not any(code in f for code in WAIVED)]


@pytest.mark.parametrize("name", ["issuing", "root"])
def test_pkilint_crl(shared_ca: ServedCA, shared_server: LiveServer, name: str) -> None:
    der_path, _pem = fetch_crl(shared_server, shared_ca, name)
    assert pkilint("lint_crl", "-t", "CRL", "-p", "PKIX", str(der_path)) == []


@pytest.mark.parametrize("kind", ["good", "revoked", "unknown", "malformed", "unauthorized"])
def test_pkilint_ocsp_response(
    shared_ca: ServedCA, shared_server: LiveServer, make_ca, tmp_path: Path, kind: str
) -> None:
    issuer = shared_ca.ca.issuing
    if kind in ("good", "revoked"):
        leaf = shared_ca.good if kind == "good" else shared_ca.revoked
        body = ocsp_request(leaf.certificate, issuer, nonce=b"n" * 16)
    elif kind == "unknown":
        body = serial_request(issuer, 0x1234)
    elif kind == "malformed":
        body = b"garbage"
    else:
        other = make_ca(name="Other CA")
        body = ocsp_request(other.issue(["o.example"]).certificate, other.issuing)
    path = write(tmp_path / f"{kind}.ocsp", shared_server.post_ocsp(body).body)
    assert pkilint("lint_ocsp_response", str(path)) == []
