"""x509/ocsp.py on its own: request parsing (fuzzed), GET decoding, issuer hashes, signing.

Requests come from cryptography and from the real `openssl ocsp`; responses are judged by
`openssl ocsp -respin` (signature, responder authorisation, nonce) and by pkilint.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from privca.errors import InputError
from privca.keys.types import KeyType
from privca.x509.build import build_certificate
from privca.x509.ocsp import (
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    TRY_LATER,
    UNAUTHORIZED,
    CertStatus,
    Responder,
    build_response,
    decode_get_path,
    issuer_keys,
    load_request,
)
from privca.x509.profiles import OCSP_RESPONDER
from tests.conftest import require_tool
from tests.x509.pki import Pki, key, leaf_spec, make_pki, write_pem

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
YESTERDAY = NOW - dt.timedelta(days=1)


def _request(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def pair(pki: Pki) -> tuple[x509.Certificate, x509.Certificate]:
    return build_certificate(leaf_spec(["codec.example"]), pki.issuing_issuer), pki.issuing


def _delegated(pki: Pki, key_type: KeyType = KeyType.EC_P256) -> Responder:
    """A responder certificate with OCSPSigning, issued by the CA it answers for."""
    spec = leaf_spec(["ocsp.corp.internal"], profile=OCSP_RESPONDER, key_type=key_type)
    certificate = build_certificate(spec, pki.issuing_issuer)
    return Responder(certificate, key(key_type, "leaf"), delegated=True)


@pytest.mark.parametrize(
    "algorithm",
    [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()],
    ids=lambda algorithm: algorithm.name,
)
def test_issuer_keys_match_what_clients_compute(pair, algorithm) -> None:
    leaf, issuer = pair
    query = load_request(_request(leaf, issuer, algorithm))
    assert query.cert_id.serial == leaf.serial_number
    assert query.cert_id.issuer_key in issuer_keys(issuer)


def test_nonce_is_read(pair) -> None:
    query = load_request(_request(*pair, nonce=b"\x01" * 16))
    assert query.nonce == b"\x01" * 16


def test_overlong_nonce_is_malformed(pair) -> None:
    with pytest.raises(InputError, match="nonce"):
        load_request(_request(*pair, nonce=b"\x01" * 64))


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30" * 100, b"\x00" * 20000],
    ids=["empty", "text", "wrong-structure", "nested-sequences", "too-large"],
)
def test_malformed_requests_raise_input_error(data: bytes) -> None:
    with pytest.raises(InputError):
        load_request(data)


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (base64.b64encode(b"\x30\x01\xff").decode(), b"\x30\x01\xff"),
        (quote(base64.b64encode(b"\xfb\xff\xfe").decode(), safe=""), b"\xfb\xff\xfe"),
        ("-__-", base64.b64decode("+//+")),  # base64url alphabet
        ("MAE", b"\x30\x01"),  # padding left out
    ],
    ids=["plain", "url-encoded", "base64url", "unpadded"],
)
def test_get_paths_decode(encoded: str, expected: bytes) -> None:
    assert decode_get_path(encoded) == expected


@pytest.mark.parametrize("encoded", ["", "%%%", "a!b@", "====", "ab cd"], ids=repr)
def test_bad_get_paths_raise_input_error(encoded: str) -> None:
    with pytest.raises(InputError):
        decode_get_path(encoded)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CertStatus("good"), ocsp.OCSPCertStatus.GOOD),
        (CertStatus("revoked", NOW - dt.timedelta(days=1), "keyCompromise"), "revoked"),
        (CertStatus("unknown"), ocsp.OCSPCertStatus.UNKNOWN),
    ],
    ids=["good", "revoked", "unknown"],
)
def test_signed_response_answers_the_request(pki, pair, status, expected) -> None:
    leaf, issuer = pair
    responder = _delegated(pki)
    responder_cert, signing_key = responder.certificate, responder.private_key
    query = load_request(_request(leaf, issuer, nonce=b"n" * 8))
    der = build_response(
        query.cert_id, status, responder, NOW, NOW + dt.timedelta(days=1), query.nonce
    )
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == leaf.serial_number
    if expected == "revoked":
        assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason == x509.ReasonFlags.key_compromise
    else:
        assert response.certificate_status == expected
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 8
    assert response.this_update_utc == NOW
    assert response.certificates == [responder_cert]
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(signing_key.public_key()).digest
    )
    signing_key.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


@pytest.mark.parametrize(
    ("der", "status"),
    [
        (MALFORMED_REQUEST, ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        (UNAUTHORIZED, ocsp.OCSPResponseStatus.UNAUTHORIZED),
        (INTERNAL_ERROR, ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        (TRY_LATER, ocsp.OCSPResponseStatus.TRY_LATER),
    ],
    ids=["malformed", "unauthorized", "internal-error", "try-later"],
)
def test_unsuccessful_responses_are_constants(der: bytes, status) -> None:
    assert ocsp.load_der_ocsp_response(der).response_status == status
    assert der == bytes([0x30, 0x03, 0x0A, 0x01, status.value])  # nothing signed, no body


# Requests as clients send them, and the ones RFC 5019 or RFC 8954 refuse


def _with_extension(
    pair: tuple[x509.Certificate, x509.Certificate], extension: x509.ExtensionType, critical: bool
) -> bytes:
    leaf, issuer = pair
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    return builder.add_extension(extension, critical).build().public_bytes(Encoding.DER)


def _two_certificates(pair: tuple[x509.Certificate, x509.Certificate]) -> bytes:
    """cryptography builds one CertID only: the second is spliced in by hand (the
    requestList is a SEQUENCE OF Request, so the one Request is repeated)."""
    one = _request(*pair)
    # OCSPRequest -> TBSRequest -> requestList (SEQUENCE OF Request): all short-form here.
    assert one[0] == 0x30 and one[2] == 0x30 and one[4] == 0x30
    request = one[6 : 6 + one[7] + 2]
    request_list = bytes([0x30, 2 * len(request)]) + request * 2
    tbs = bytes([0x30, len(request_list)]) + request_list
    return bytes([0x30, len(tbs)]) + tbs


REFUSED_REQUESTS = {
    "two-certificates": (_two_certificates, "malformed"),
    "unknown-critical-extension": (
        lambda pair: _with_extension(
            pair,
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            True,
        ),
        "unknown critical",
    ),
    "empty-nonce": (lambda pair: _with_extension(pair, x509.OCSPNonce(b""), False), "0 bytes"),
    "35-byte-nonce": (
        lambda pair: _with_extension(pair, x509.OCSPNonce(b"n" * 35), False),
        "35 bytes",
    ),
}


@pytest.mark.parametrize(
    ("make", "fragment"), REFUSED_REQUESTS.values(), ids=list(REFUSED_REQUESTS)
)
def test_refused_requests_are_input_errors(pair, make, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        load_request(make(pair))


def test_an_unknown_non_critical_extension_is_ignored(pair) -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    query = load_request(_with_extension(pair, unknown, False))
    assert query.cert_id.serial == pair[0].serial_number and query.nonce is None


def test_the_longest_nonce_openssl_may_send_is_accepted(pair) -> None:
    query = load_request(_with_extension(pair, x509.OCSPNonce(b"n" * 34), False))
    assert query.nonce == b"n" * 34


@pytest.fixture
def on_disk(tmp_path: Path, pki: Pki, pair) -> Path:
    require_tool("openssl")
    leaf, _issuer = pair
    write_pem(tmp_path / "root.pem", pki.root)
    write_pem(tmp_path / "issuing.pem", pki.issuing)
    write_pem(tmp_path / "leaf.pem", leaf)
    return tmp_path


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def _openssl_request(directory: Path, *options: str) -> bytes:
    """The request `openssl ocsp` sends for leaf.pem (with a nonce, as it does by default)."""
    request = directory / "req.der"
    made = _openssl("ocsp", "-issuer", str(directory / "issuing.pem"), *options,
                    "-cert", str(directory / "leaf.pem"), "-reqout", str(request))  # fmt: skip
    assert made.returncode == 0, made.stderr
    return request.read_bytes()


@pytest.mark.parametrize("digest", ["-md5", "-sha3-256"])
def test_cert_id_hashes_cryptography_cannot_read_are_malformed(on_disk: Path, digest: str) -> None:
    with pytest.raises(InputError, match="malformed"):
        load_request(_openssl_request(on_disk, digest))


@pytest.mark.parametrize("digest", ["-sha1", "-sha256", "-sha384"])
def test_openssl_requests_are_read(on_disk: Path, pair, digest: str) -> None:
    leaf, issuer = pair
    der = _openssl_request(on_disk, digest)
    query = load_request(der)
    assert query.cert_id.hash_name == digest[1:]
    assert query.cert_id.serial == leaf.serial_number
    assert query.cert_id.issuer_key in issuer_keys(issuer)
    assert query.nonce is not None and len(query.nonce) == 16  # OpenSSL's random bytes
    # The same request as a GET path (RFC 6960 A.1.1), with and without URL-encoding.
    encoded = base64.b64encode(der).decode()
    assert load_request(decode_get_path(quote(encoded, safe=""))) == query
    assert load_request(decode_get_path(encoded)) == query


RESPONDERS = {
    "delegated-ec": (KeyType.EC_P256, True),
    "delegated-rsa": (KeyType.RSA_2048, True),
    "delegated-ed25519": (KeyType.ED25519, True),
    "ca-itself": (KeyType.EC_P256, False),
}


@pytest.mark.parametrize(("key_type", "delegated"), RESPONDERS.values(), ids=list(RESPONDERS))
@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (CertStatus("good"), "Cert Status: good"),
        (
            CertStatus("revoked", NOW - dt.timedelta(days=1), "keyCompromise"),
            "Reason: keyCompromise",
        ),
        (CertStatus("revoked", NOW - dt.timedelta(days=1), "unspecified"), "Cert Status: revoked"),
        (CertStatus("unknown"), "Cert Status: unknown"),
    ],
    ids=["good", "revoked", "revoked-unspecified", "unknown"],
)
def test_openssl_verifies_the_response(
    on_disk: Path, pki: Pki, key_type: KeyType, delegated: bool, status: CertStatus, shown: str
) -> None:
    """`openssl ocsp -reqin -respin`: signature, the responder's authority (delegated
    OCSPSigning or the CA itself) and the nonce, which must echo the request's."""
    query = load_request(_openssl_request(on_disk))
    if delegated:
        responder = _delegated(pki, key_type)
    else:
        responder = Responder(pki.issuing, pki.issuing_issuer.private_key, delegated=False)
    der = build_response(
        query.cert_id, status, responder, NOW, NOW + dt.timedelta(days=1), query.nonce
    )
    (on_disk / "resp.der").write_bytes(der)
    judged = _openssl("ocsp", "-reqin", str(on_disk / "req.der"), "-respin",
                      str(on_disk / "resp.der"), "-CAfile", str(on_disk / "root.pem"),
                      "-verify_other", str(on_disk / "issuing.pem"), "-resp_text")  # fmt: skip
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "Response verify OK" in judged.stderr
    assert "Nonce Verify error" not in judged.stderr and "no nonce" not in judged.stderr
    assert shown in judged.stdout
    if status.reason == "unspecified":
        assert "Reason:" not in judged.stdout  # RFC 5280 5.3.1: left out, not written
    if not delegated:
        assert "Certificate:" not in judged.stdout  # the CA's own certificate is not embedded


def test_a_response_signed_by_an_impostor_fails_openssl(on_disk: Path, pki: Pki) -> None:
    query = load_request(_openssl_request(on_disk))
    impostor = make_pki(label="impostor")
    responder = Responder(impostor.issuing, impostor.issuing_issuer.private_key, delegated=True)
    der = build_response(
        query.cert_id, CertStatus("good"), responder, NOW, NOW + dt.timedelta(days=1), query.nonce
    )
    (on_disk / "resp.der").write_bytes(der)
    judged = _openssl("ocsp", "-reqin", str(on_disk / "req.der"), "-respin",
                      str(on_disk / "resp.der"), "-CAfile", str(on_disk / "root.pem"),
                      "-verify_other", str(on_disk / "issuing.pem"))  # fmt: skip
    assert "Response verify OK" not in judged.stderr


@pytest.mark.parametrize("nonce", [None, b"n" * 16], ids=["cached", "with-nonce"])
def test_pkilint_finds_nothing(tmp_path: Path, pki: Pki, pair, nonce: bytes | None) -> None:
    pytest.importorskip("pkilint")
    query = load_request(_request(*pair, nonce=nonce))
    revoked = CertStatus("revoked", NOW - dt.timedelta(days=1), "keyCompromise")
    der = build_response(query.cert_id, revoked, _delegated(pki), NOW,
                         NOW + dt.timedelta(days=1), query.nonce)  # fmt: skip
    path = tmp_path / "resp.der"
    path.write_bytes(der)
    done = subprocess.run(
        [sys.executable, "-m", "pkilint.bin.lint_ocsp_response", "lint", "-s", "INFO", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


# Fuzzing: whatever arrives, the parsers either answer or raise InputError.


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(InputError):
        load_request(data)


@pytest.fixture(scope="module")
def valid_request() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "fuzz")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(12345)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA1())
    return (
        builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), False)
        .build()
        .public_bytes(Encoding.DER)
    )


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_fuzz_mutated_valid_requests(valid_request: bytes, data: st.DataObject) -> None:
    mutated = bytearray(valid_request)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    with contextlib.suppress(InputError):
        load_request(bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_get_paths(text: str) -> None:
    with contextlib.suppress(InputError):
        load_request(decode_get_path(text))
