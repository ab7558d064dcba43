"""x509/describe.py: what a certificate, CSR or CRL says, as plain data for `privca inspect`.

Fingerprints, serials and names are checked against what `openssl x509` prints; every
extension privca knows has a readable form; hostile text is returned as it is (the CLI
escapes it where it prints).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.keys.types import KeyType
from privca.x509.build import build_certificate, build_csr
from privca.x509.crl import Revocation, build_crl
from privca.x509.describe import (
    describe_certificate,
    describe_crl,
    describe_csr,
    describe_objects,
    describe_public_key,
    oid_name,
)
from privca.x509.names import parse_names
from tests.conftest import require_tool
from tests.x509.pki import NOW, key, leaf_spec, make_pki, write_pem


@pytest.fixture(scope="module")
def chain() -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    pki = make_pki()
    leaf = build_certificate(leaf_spec(["svc.corp.internal", "10.0.0.5"]), pki.issuing_issuer)
    return leaf, pki.issuing, pki.root


def _openssl_x509(directory: Path, cert: x509.Certificate, *args: str) -> str:
    require_tool("openssl")
    path = write_pem(directory / "c.pem", cert)
    done = subprocess.run(["openssl", "x509", "-noout", "-in", str(path), *args],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def test_certificate_as_openssl_reads_it(tmp_path: Path, chain) -> None:
    leaf, _issuing, _root = chain
    document = describe_certificate(leaf, NOW)
    sha256 = _openssl_x509(tmp_path, leaf, "-fingerprint", "-sha256").split("=", 1)[1]
    sha1 = _openssl_x509(tmp_path, leaf, "-fingerprint", "-sha1").split("=", 1)[1]
    serial = _openssl_x509(tmp_path, leaf, "-serial").split("=", 1)[1]
    assert document["fingerprints"] == {"sha256": sha256, "sha1": sha1}
    assert int(document["serial"], 16) == int(serial, 16)
    assert document["serial"] == document["serial"].lower().lstrip("0")
    assert document["subject"] == "CN=svc.corp.internal"
    assert document["issuer"] == "CN=Test x509 Issuing CA"
    assert document["names"] == ["svc.corp.internal", "10.0.0.5"]
    assert document["key"]["type"] == "EC P-256"
    assert document["signature_algorithm"] == "ecdsa-with-SHA256"
    assert document["version"] == "v3"
    assert document["self_signed"] is False
    assert document["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_key_digest_is_the_spki_sha256(tmp_path: Path, chain) -> None:
    """What `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum` gives."""
    leaf, *_ = chain
    pubkey = _openssl_x509(tmp_path, leaf, "-pubkey")
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey.encode(),
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert describe_certificate(leaf, NOW)["key"]["spki_sha256"] == digest.finalize().hex()


@pytest.mark.parametrize(
    ("shift", "validity", "days_left"),
    [
        (dt.timedelta(0), "valid", 90),
        (dt.timedelta(days=-1), "not yet valid", 91),
        (dt.timedelta(days=90, seconds=1), "expired", 0),
        (dt.timedelta(days=89, hours=23), "valid", 1),
    ],
    ids=["now", "before-not-before", "after-not-after", "last-day"],
)
def test_validity_at_a_given_time(
    chain, shift: dt.timedelta, validity: str, days_left: int
) -> None:
    leaf, *_ = chain
    document = describe_certificate(leaf, NOW + shift)
    assert (document["validity"], document["days_left"]) == (validity, days_left)


def _rsa_exponent_3() -> PublicKeyTypes:
    return rsa.generate_private_key(public_exponent=3, key_size=2048).public_key()


PUBLIC_KEYS = {
    "ec-p256": (lambda: key(KeyType.EC_P256).public_key(), "EC P-256"),
    "ec-p384": (lambda: key(KeyType.EC_P384).public_key(), "EC P-384"),
    "ec-p521": (lambda: ec.generate_private_key(ec.SECP521R1()).public_key(), "EC P-521"),
    "ec-secp256k1": (lambda: ec.generate_private_key(ec.SECP256K1()).public_key(),
                     "EC secp256k1"),
    "rsa-2048": (lambda: key(KeyType.RSA_2048).public_key(), "RSA 2048 bits"),
    "rsa-exponent-3": (_rsa_exponent_3, "RSA 2048 bits, exponent 3"),
    "ed25519": (lambda: key(KeyType.ED25519).public_key(), "Ed25519"),
    "ed448": (lambda: ed448.Ed448PrivateKey.generate().public_key(), "Ed448"),
    "dsa-2048": (lambda: dsa.generate_private_key(2048).public_key(), "DSA 2048 bits"),
}  # fmt: skip


@pytest.mark.parametrize(("make", "text"), PUBLIC_KEYS.values(), ids=list(PUBLIC_KEYS))
def test_public_key_description(make, text: str) -> None:
    assert describe_public_key(make()) == text


def _with_extensions(
    extensions: list[tuple[x509.ExtensionType, bool]], subject: x509.Name | None = None
) -> x509.Certificate:
    signer = key(KeyType.EC_P256, "describe")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    builder = (
        x509.CertificateBuilder().subject_name(subject or name).issuer_name(name)
        .public_key(signer.public_key()).serial_number(0x0ABC)
        .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
    )  # fmt: skip
    for value, critical in extensions:
        builder = builder.add_extension(value, critical)
    return builder.sign(signer, hashes.SHA256())


URI = x509.UniformResourceIdentifier
EXTENSIONS = {
    "ca-pathlen": (x509.BasicConstraints(ca=True, path_length=2), "CA:TRUE, pathlen:2"),
    "not-ca": (x509.BasicConstraints(ca=False, path_length=None), "CA:FALSE"),
    "key-usage-all": (
        x509.KeyUsage(True, True, True, True, True, True, True, True, False),
        ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
         "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly"],
    ),
    "eku-with-unknown": (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                               x509.ObjectIdentifier("1.3.6.1.4.1.99999.5")]),
        ["serverAuth", "1.3.6.1.4.1.99999.5"],
    ),
    "every-general-name": (
        x509.SubjectAlternativeName([
            x509.DNSName("a.corp.internal"),
            x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
            x509.RFC822Name("ops@corp.internal"),
            URI("spiffe://corp.internal/db"),
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])),
            x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")),
            x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x01a"),
        ]),
        ["a.corp.internal", "10.0.0.5", "email:ops@corp.internal",
         "uri:spiffe://corp.internal/db", "dirname:O=Acme", "rid:1.2.3.4",
         "othername:1.3.6.1.4.1.311.20.2.3"],
    ),
    "name-constraints": (
        x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("corp.internal"),
                                x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
            excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("0.0.0.0/0"))],
        ),
        {"permitted": ["corp.internal", "10.0.0.0/8"], "excluded": ["0.0.0.0/0"]},
    ),
    "crl-distribution": (
        x509.CRLDistributionPoints([x509.DistributionPoint(
            [URI("http://pki.corp.internal/a.crl")], None, None, None)]),
        ["uri:http://pki.corp.internal/a.crl"],
    ),
    "authority-access": (
        x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.AuthorityInformationAccessOID.OCSP, URI("http://pki.corp.internal/ocsp"))]),
        ["OCSP: uri:http://pki.corp.internal/ocsp"],
    ),
    "policies": (
        x509.CertificatePolicies([x509.PolicyInformation(
            x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
        ["2.23.140.1.2.1"],
    ),
    "ocsp-no-check": (x509.OCSPNoCheck(), "present"),
    "tls-feature": (x509.TLSFeature([x509.TLSFeatureType.status_request]), ["status_request"]),
    "authority-key-id": (
        x509.AuthorityKeyIdentifier(b"\x01\xab", None, None), "01:AB"),
    "unrecognised": (
        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.9"), b"\x05\x00"),
        "2 bytes, not decoded",
    ),
    "no-readable-form": (x509.InhibitAnyPolicy(0), "InhibitAnyPolicy"),
}  # fmt: skip


@pytest.mark.parametrize(("extension", "shown"), EXTENSIONS.values(), ids=list(EXTENSIONS))
def test_extension_values(extension: x509.ExtensionType, shown: object) -> None:
    document = describe_certificate(_with_extensions([(extension, False)]), NOW)
    (described,) = document["extensions"]
    assert described["value"] == shown
    assert described["oid"] == extension.oid.dotted_string
    assert described["critical"] is False


def test_hostile_text_is_returned_as_it_is() -> None:
    """describe() is pure data; the CLI escapes what it prints (tests/cli)."""
    hostile = "evil\x1b]52;c;aGk=\x07\r\n"
    san = x509.SubjectAlternativeName([URI(f"https://a.corp.internal/{hostile}")])
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "\u202eAcme")])
    cert = _with_extensions([(san, False)])
    document = describe_certificate(cert, NOW)
    assert document["names"] == [f"uri:https://a.corp.internal/{hostile}"]
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    assert describe_certificate(_with_extensions([], subject), NOW)["subject"] == "O=\u202eAcme"
    assert issuer_name.rfc4514_string() == document["issuer"]


def test_csr_document(tmp_path: Path) -> None:
    csr = build_csr(key(KeyType.EC_P256, "csr"), parse_names(["svc.corp.internal", "10.0.0.5"]))
    document = describe_csr(csr)
    assert document["kind"] == "csr" and document["signature_valid"] is True
    assert document["names"] == ["svc.corp.internal", "10.0.0.5"]
    assert [e["name"] for e in document["extensions"]] == ["subjectAltName"]
    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(csr.public_bytes(Encoding.DER))
    index = der.find(b"svc.corp.internal")
    der[index] = ord("e")
    assert describe_csr(x509.load_der_x509_csr(bytes(der)))["signature_valid"] is False


def test_crl_document() -> None:
    pki = make_pki()
    entries = [Revocation(0xA, NOW, "keyCompromise"), Revocation(0xB, NOW, None)]
    crl = build_crl(pki.issuing_issuer, entries, 5, NOW, NOW + dt.timedelta(days=7))
    document = describe_crl(crl, NOW)
    assert document["entries"] == [
        {
            "serial": "a",
            "revoked_at": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": "keyCompromise",
        },
        {"serial": "b", "revoked_at": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": None},
    ]
    assert document["current"] is True
    assert describe_crl(crl, NOW + dt.timedelta(days=8))["current"] is False
    numbers = [e["value"] for e in document["extensions"] if e["name"] == "cRLNumber"]
    assert numbers == [5]


def test_objects_link_a_chain(chain) -> None:
    leaf, issuing, root = chain
    documents = describe_objects([leaf, issuing, root], NOW)
    assert [d.get("signed_by_next") for d in documents] == [True, True, None]
    assert documents[2]["self_signed"] is True
    wrong_order = describe_objects([leaf, root], NOW)
    assert wrong_order[0]["signed_by_next"] is False


def test_objects_keep_kinds_in_order(chain) -> None:
    leaf, issuing, _root = chain
    pki = make_pki()
    crl = build_crl(pki.issuing_issuer, [], 1, NOW, NOW + dt.timedelta(days=1))
    csr = build_csr(key(KeyType.EC_P256, "csr"), parse_names(["svc.corp.internal"]))
    kinds = [d["kind"] for d in describe_objects([crl, leaf, csr, issuing], NOW)]
    assert kinds == ["crl", "certificate", "csr", "certificate"]


@pytest.mark.parametrize(
    ("oid", "name"),
    [
        (x509.ObjectIdentifier("2.5.29.17"), "subjectAltName"),
        (x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), "1.3.6.1.4.1.99999.1"),
    ],
    ids=["known", "unknown"],
)
def test_oid_name(oid: x509.ObjectIdentifier, name: str) -> None:
    assert oid_name(oid) == name
