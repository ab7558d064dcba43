"""x509/ocsp.py on its own: request parsing (fuzzed), GET decoding, issuer hashes, signing."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
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
from privca.x509.ocsp import (
    MALFORMED_REQUEST,
    UNAUTHORIZED,
    CertStatus,
    Responder,
    build_response,
    decode_get_path,
    issuer_keys,
    load_request,
)

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


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


@pytest.fixture
def pair(ca):
    return ca.issue(["codec.example"]).certificate, ca.issuing


@pytest.mark.parametrize(
    "algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()], ids=str
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
def test_signed_response_answers_the_request(ca, pair, status, expected) -> None:
    leaf, issuer = pair
    responder_cert, key = ca.issue_ocsp_responder(ca.publishing_authorities()[0])
    responder = Responder(responder_cert, key, delegated=True)
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
        == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    )
    key.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


def test_unsuccessful_responses_are_constants() -> None:
    assert (
        ocsp.load_der_ocsp_response(MALFORMED_REQUEST).response_status
        == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    assert (
        ocsp.load_der_ocsp_response(UNAUTHORIZED).response_status
        == ocsp.OCSPResponseStatus.UNAUTHORIZED
    )


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
