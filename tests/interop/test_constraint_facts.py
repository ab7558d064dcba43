"""The facts privca.x509.constraints is built on, pinned, so a new OpenSSL or cryptography
that reads constraints differently fails here first (with the reason), not in the field.

- OpenSSL treats an empty excluded dNSName as "every DNS name"; cryptography calls it a
  malformed constraint: an empty subtree cannot close the DNS type for both.
- OpenSSL treats an empty excluded URI as matching nothing: it does not close the type
  (Go and NSS read it as "everything": clients disagree); OpenSSL reads an empty
  rfc822Name the same way, and cryptography will not even build one.
- Permitting only the reserved `invalid` domain closes every type for both.
- cryptography refuses any URI name under a URI constraint as unsupported.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import openssl, require_tool, write

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _root(constraints: x509.NameConstraints) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Facts Root"))
        .issuer_name(_name("Facts Root"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(constraints, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(root: x509.Certificate, key: ec.EllipticCurvePrivateKey, san: x509.GeneralName):
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(hours=12))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _judges(constraints: x509.NameConstraints, san: x509.GeneralName, tmp: Path) -> tuple[str, str]:
    require_tool("openssl")
    root, key = _root(constraints)
    leaf = _leaf(root, key, san)
    from privca.x509.encoding import pem_certificate

    result = openssl(
        "verify", "-x509_strict", "-CAfile", str(write(tmp / "root.pem", pem_certificate(root))),
        str(write(tmp / "leaf.pem", pem_certificate(leaf))),
    )  # fmt: skip
    said = result.stdout + result.stderr
    by_openssl = "OK" if result.returncode == 0 else said
    try:
        verification.PolicyBuilder().store(verification.Store([root])).time(
            NOW
        ).build_client_verifier().verify(leaf, [])
        by_cryptography = "OK"
    except verification.VerificationError as exc:
        by_cryptography = str(exc)
    return by_openssl, by_cryptography


DNS = x509.DNSName("www.bank.example")
EMAIL = x509.RFC822Name("ceo@bank.example")
URI = x509.UniformResourceIdentifier("spiffe://bank.example/x")


def test_an_empty_dns_exclusion_is_read_two_ways(tmp_path: Path) -> None:
    by_openssl, by_cryptography = _judges(
        x509.NameConstraints(None, [x509.DNSName("")]), DNS, tmp_path
    )
    assert "excluded subtree violation" in by_openssl
    assert "malformed DNS name constraint" in by_cryptography


def test_openssl_reads_an_empty_uri_exclusion_as_nothing(tmp_path: Path) -> None:
    constraints = x509.NameConstraints(None, [x509.UniformResourceIdentifier("")])
    by_openssl, _ = _judges(constraints, URI, tmp_path)
    assert by_openssl == "OK"


def test_an_empty_email_subtree_cannot_even_be_written_with_cryptography() -> None:
    with pytest.raises(ValueError, match="rfc822name"):
        x509.RFC822Name("")


@pytest.mark.parametrize(
    ("constraint", "san", "cryptography_says"),
    [
        (x509.DNSName("invalid"), DNS, "no permitted name constraints matched SAN"),
        (x509.RFC822Name("invalid"), EMAIL, "no permitted name constraints matched SAN"),
        (x509.UniformResourceIdentifier("invalid"), URI, "unsupported name constraint"),
    ],
    ids=["dns", "email", "uri"],
)
def test_permitting_only_invalid_closes_a_type(
    tmp_path: Path, constraint: x509.GeneralName, san: x509.GeneralName, cryptography_says: str
) -> None:
    by_openssl, by_cryptography = _judges(x509.NameConstraints([constraint], None), san, tmp_path)
    assert "permitted subtree violation" in by_openssl
    assert cryptography_says in by_cryptography


def test_excluding_both_address_families_closes_ip(tmp_path: Path) -> None:
    everything = [
        x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
        x509.IPAddress(ipaddress.ip_network("::/0")),
    ]
    for address in ("192.168.1.5", "2001:db8::1"):
        san = x509.IPAddress(ipaddress.ip_address(address))
        by_openssl, by_cryptography = _judges(x509.NameConstraints(None, everything), san, tmp_path)
        assert "excluded subtree violation" in by_openssl
        assert "excluded name constraint" in by_cryptography
