"""x509/build.py on its own: what each profile writes, key identifiers, subjects, CSRs.

Judged by OpenSSL (`verify -x509_strict`, `x509 -text`, `req -verify`) and by pkilint's
RFC 5280 linter, not only by re-reading the certificate with the library that wrote it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from privca.keys.types import KeyType
from privca.x509.build import (
    CertificateSpec,
    Issuer,
    build_certificate,
    build_csr,
    ca_subject,
    leaf_subject,
    self_issuer,
    signature_hash_for,
    subject_key_identifier,
)
from privca.x509.names import parse_names
from privca.x509.profiles import (
    CLIENT,
    ISSUING,
    OCSP_RESPONDER,
    ROOT,
    SERVER,
    SERVER_CLIENT,
    Profile,
)
from tests.conftest import require_tool
from tests.x509.pki import (
    CA_ISSUERS_URL,
    CRL_URL,
    NOW,
    OCSP_URL,
    judge_chain,
    key,
    leaf_spec,
    make_pki,
    openssl_text,
)

KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def _has(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    try:
        _ext(cert, kind)
    except x509.ExtensionNotFound:
        return False
    return True


def _key_usage(cert: x509.Certificate) -> set[str]:
    usage = _ext(cert, x509.KeyUsage).value
    return {bit for bit in KEY_USAGE_BITS if getattr(usage, bit)}


# profile, key type -> key usage bits, basicConstraints (ca, pathlen), EKU OIDs
PROFILE_CASES = {
    "root-ec": (ROOT, KeyType.EC_P384, {"digital_signature", "key_cert_sign", "crl_sign"},
                (True, None), ()),
    "issuing-rsa": (ISSUING, KeyType.RSA_2048, {"digital_signature", "key_cert_sign", "crl_sign"},
                    (True, 0), ()),
    "server-ec": (SERVER, KeyType.EC_P256, {"digital_signature"}, (False, None),
                  ("serverAuth",)),
    # RSA key exchange (TLS 1.2 static RSA) needs keyEncipherment; EC and EdDSA never do.
    "server-rsa": (SERVER, KeyType.RSA_2048, {"digital_signature", "key_encipherment"},
                   (False, None), ("serverAuth",)),
    "server-ed25519": (SERVER, KeyType.ED25519, {"digital_signature"}, (False, None),
                       ("serverAuth",)),
    "client-rsa": (CLIENT, KeyType.RSA_2048, {"digital_signature", "key_encipherment"},
                   (False, None), ("clientAuth",)),
    "server-client-ec": (SERVER_CLIENT, KeyType.EC_P256, {"digital_signature"}, (False, None),
                         ("serverAuth", "clientAuth")),
    # An OCSP responder only signs, whatever its key.
    "ocsp-responder-rsa": (OCSP_RESPONDER, KeyType.RSA_2048, {"digital_signature"},
                           (False, None), ("OCSPSigning",)),
}  # fmt: skip
EKU_NAMES = {
    "serverAuth": x509.ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": x509.ExtendedKeyUsageOID.CLIENT_AUTH,
    "OCSPSigning": x509.ExtendedKeyUsageOID.OCSP_SIGNING,
}


@pytest.mark.parametrize(
    ("profile", "key_type", "usages", "constraints", "ekus"),
    PROFILE_CASES.values(),
    ids=list(PROFILE_CASES),
)
def test_extensions_follow_the_profile(
    profile: Profile,
    key_type: KeyType,
    usages: set[str],
    constraints: tuple[bool, int | None],
    ekus: tuple[str, ...],
) -> None:
    pki = make_pki()
    cert = build_certificate(
        leaf_spec(["svc.corp.internal"], profile=profile, key_type=key_type), pki.issuing_issuer
    )
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical and (basic.value.ca, basic.value.path_length) == constraints
    assert _ext(cert, x509.KeyUsage).critical
    assert _key_usage(cert) == usages
    if ekus:
        eku = _ext(cert, x509.ExtendedKeyUsage)
        assert not eku.critical
        assert list(eku.value) == [EKU_NAMES[name] for name in ekus]
    else:
        assert not _has(cert, x509.ExtendedKeyUsage)


def test_ocsp_responder_is_never_checked_for_revocation() -> None:
    """RFC 6960 4.2.2.2.1: id-pkix-ocsp-nocheck, and no CRL or OCSP pointer to loop on;
    caIssuers stays so a client can still build the path."""
    pki = make_pki()
    cert = build_certificate(leaf_spec(["ocsp.corp.internal"], profile=OCSP_RESPONDER),
                             pki.issuing_issuer)  # fmt: skip
    assert _has(cert, x509.OCSPNoCheck)
    assert not _has(cert, x509.CRLDistributionPoints)
    access = _ext(cert, x509.AuthorityInformationAccess).value
    assert [a.access_method for a in access] == [AuthorityInformationAccessOID.CA_ISSUERS]


def test_leaf_points_at_crl_ocsp_and_issuer() -> None:
    pki = make_pki()
    cert = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    points = _ext(cert, x509.CRLDistributionPoints).value
    assert [name.value for point in points for name in point.full_name] == [CRL_URL]
    access = {a.access_method: a.access_location.value for a in
              _ext(cert, x509.AuthorityInformationAccess).value}  # fmt: skip
    assert access == {
        AuthorityInformationAccessOID.OCSP: OCSP_URL,
        AuthorityInformationAccessOID.CA_ISSUERS: CA_ISSUERS_URL,
    }


def test_no_urls_no_pointers() -> None:
    pki = make_pki()
    spec = leaf_spec(["svc.corp.internal"], crl_url=None, ocsp_url=None, ca_issuers_url=None)
    cert = build_certificate(spec, pki.issuing_issuer)
    assert not _has(cert, x509.CRLDistributionPoints)
    assert not _has(cert, x509.AuthorityInformationAccess)


def test_extension_order_is_stable() -> None:
    """The same spec gives the same extensions in the same order (diffable certificates)."""
    pki = make_pki(permitted=["corp.internal"])
    cert = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    assert [e.oid for e in cert.extensions] == [
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ]
    constrained = [e for e in pki.issuing.extensions if e.oid == ExtensionOID.NAME_CONSTRAINTS]
    assert len(constrained) == 1 and constrained[0].critical


SIGNATURE_HASHES = {
    "ec-p256": (KeyType.EC_P256, hashes.SHA256),
    "ec-p384": (KeyType.EC_P384, hashes.SHA384),
    "rsa-2048": (KeyType.RSA_2048, hashes.SHA256),
    "rsa-3072": (KeyType.RSA_3072, hashes.SHA256),
    "ed25519": (KeyType.ED25519, type(None)),
}


@pytest.mark.parametrize(
    ("key_type", "expected"), SIGNATURE_HASHES.values(), ids=list(SIGNATURE_HASHES)
)
def test_signature_hash_matches_the_key(key_type: KeyType, expected: type) -> None:
    assert isinstance(signature_hash_for(key(key_type)), expected)
    pki = make_pki(issuing_type=key_type)
    cert = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    assert isinstance(cert.signature_hash_algorithm, expected)


def test_key_identifiers_link_the_chain() -> None:
    pki = make_pki()
    leaf = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    root_ski = _ext(pki.root, x509.SubjectKeyIdentifier).value.digest
    assert _ext(pki.root, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert self_issuer(pki.root.subject, key(KeyType.EC_P384, "root")).key_identifier == root_ski
    issuing_ski = subject_key_identifier(pki.issuing)
    assert _ext(pki.issuing, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == issuing_ski
    assert not _ext(leaf, x509.AuthorityKeyIdentifier).critical


def test_a_reissued_ca_keeps_its_key_identifier() -> None:
    pki = make_pki()
    kept = b"\x01" * 20
    cert = build_certificate(leaf_spec(["svc.corp.internal"], profile=ISSUING,
                                       subject_key_identifier=kept), pki.root_issuer)  # fmt: skip
    assert subject_key_identifier(cert) == kept


def test_key_identifier_of_a_certificate_without_one() -> None:
    """Hand-made CAs may lack the extension: RFC 5280 method 1 (SHA-1 of the key bits)."""
    signer = key(KeyType.EC_P256, "bare")
    name = ca_subject("Bare CA")
    bare = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(signer.public_key()).serial_number(7)
        .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )  # fmt: skip
    expected = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
    assert subject_key_identifier(bare) == expected
    assert Issuer.from_certificate(bare, signer).key_identifier == expected


LEAF_SUBJECTS = {
    "first-dns-name": (["db.corp.internal", "10.0.0.5"], None, "CN=db.corp.internal"),
    "ip-first-dns-later": (["10.0.0.5", "db.corp.internal"], None, "CN=db.corp.internal"),
    "only-ip": (["10.0.0.5"], None, ""),
    "only-email": (["email:ops@corp.internal"], None, ""),
    "only-uri": (["uri:spiffe://corp.internal/db"], None, ""),
    "long-dns-skipped": ([("a" * 60) + ".corp.internal", "b.corp.internal"], None,
                         "CN=b.corp.internal"),
    "wildcard": (["*.corp.internal"], None, "CN=*.corp.internal"),
    "operator-cn": (["db.corp.internal"], "alice", "CN=alice"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("names", "common_name", "subject"), LEAF_SUBJECTS.values(), ids=list(LEAF_SUBJECTS)
)
def test_leaf_subject(names: list[str], common_name: str | None, subject: str) -> None:
    assert leaf_subject(parse_names(names), common_name).rfc4514_string() == subject


@pytest.mark.parametrize(
    ("names", "critical"),
    [(["db.corp.internal"], False), (["10.0.0.5"], True), (["email:a@corp.internal"], True)],
    ids=["with-cn", "ip-only", "email-only"],
)
def test_san_is_critical_exactly_when_the_subject_is_empty(
    names: list[str], critical: bool
) -> None:
    """RFC 5280 4.2.1.6: with an empty subject the SAN MUST be critical."""
    pki = make_pki()
    cert = build_certificate(leaf_spec(names), pki.issuing_issuer)
    assert _ext(cert, x509.SubjectAlternativeName).critical is critical
    assert (len(cert.subject) == 0) is critical


def test_ca_subject_is_cut_to_64_characters() -> None:
    """ub-common-name is 64: a longer CA name would make an invalid certificate."""
    name = ca_subject("N" * 100)
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "N" * 64


def test_not_before_or() -> None:
    pki = make_pki()
    assert pki.issuing_issuer.not_before_or(NOW) == pki.issuing.not_valid_before_utc
    bare = self_issuer(ca_subject("x"), key(KeyType.EC_P256, "root"))
    assert bare.not_before_or(NOW) == NOW


# Third parties: OpenSSL verifies the chain, pkilint lints each certificate.

CHAIN_SHAPES = {
    "p384-p256-p256": (KeyType.EC_P384, KeyType.EC_P256, KeyType.EC_P256),
    "rsa3072-rsa2048-rsa2048": (KeyType.RSA_3072, KeyType.RSA_2048, KeyType.RSA_2048),
    "ed25519-ed25519-ed25519": (KeyType.ED25519, KeyType.ED25519, KeyType.ED25519),
    "p384-rsa2048-ed25519": (KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519),
}


@pytest.mark.parametrize(("root", "issuing", "leaf"), CHAIN_SHAPES.values(), ids=list(CHAIN_SHAPES))
def test_openssl_verifies_the_chain(
    tmp_path: Path, root: KeyType, issuing: KeyType, leaf: KeyType
) -> None:
    require_tool("openssl")
    pki = make_pki(root, issuing, permitted=["corp.internal", "10.0.0.0/8"])
    cert = build_certificate(
        leaf_spec(["svc.corp.internal", "10.1.2.3"], key_type=leaf), pki.issuing_issuer
    )
    done = judge_chain(tmp_path, cert, pki, "-purpose", "sslserver")
    assert done.returncode == 0, done.stdout + done.stderr


def test_openssl_refuses_a_leaf_outside_its_validity(tmp_path: Path) -> None:
    """The times written are the times OpenSSL reads: an hour after not_after it fails."""
    require_tool("openssl")
    pki = make_pki()
    cert = build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer)
    late = cert.not_valid_after_utc + dt.timedelta(hours=1)
    done = judge_chain(tmp_path, cert, pki, at=late)
    assert done.returncode != 0 and "certificate has expired" in done.stdout + done.stderr


def test_openssl_reads_what_was_written(tmp_path: Path) -> None:
    require_tool("openssl")
    pki = make_pki(permitted=["corp.internal"])
    text = openssl_text(tmp_path, pki.issuing)
    assert "CA:TRUE, pathlen:0" in text
    assert "X509v3 Name Constraints: critical" in text
    assert "DNS:corp.internal" in text and "IP:0.0.0.0/0.0.0.0" in text
    leaf_text = openssl_text(
        tmp_path, build_certificate(leaf_spec(["10.0.0.5"]), pki.issuing_issuer)
    )
    assert "X509v3 Subject Alternative Name: critical" in leaf_text
    assert "IP Address:10.0.0.5" in leaf_text


LINTED = {
    "root": lambda pki: pki.root,
    "issuing-constrained": lambda pki: pki.issuing,
    "server": lambda pki: build_certificate(leaf_spec(["svc.corp.internal"]), pki.issuing_issuer),
    "empty-subject": lambda pki: build_certificate(
        leaf_spec(["10.0.0.5", "email:ops@corp.internal"]), pki.issuing_issuer
    ),
    "idn": lambda pki: build_certificate(leaf_spec(["bücher.corp.internal"]), pki.issuing_issuer),
    "rsa-client": lambda pki: build_certificate(
        leaf_spec(["alice.corp.internal"], profile=CLIENT, key_type=KeyType.RSA_2048),
        pki.issuing_issuer,
    ),
    "ocsp-responder": lambda pki: build_certificate(
        leaf_spec(["ocsp.corp.internal"], profile=OCSP_RESPONDER), pki.issuing_issuer
    ),
}


@pytest.mark.parametrize("case", LINTED.values(), ids=list(LINTED))
def test_pkilint_finds_nothing(case) -> None:
    pytest.importorskip("pkilint")
    from tests.interop._pkilint import WARNING_OR_WORSE, lint_certificate

    pki = make_pki(permitted=["corp.internal", "10.0.0.0/8"])
    findings = [str(f) for f in lint_certificate(case(pki)) if f.severity in WARNING_OR_WORSE]
    assert findings == []


# CSRs


CSR_CASES = {
    "dns": (["svc.corp.internal", "10.0.0.5"], None, "CN=svc.corp.internal", False),
    "ip-only": (["10.0.0.5"], None, "", True),
    "operator-cn": (["svc.corp.internal"], "svc.corp.internal", "CN=svc.corp.internal", False),
}


@pytest.mark.parametrize(
    ("names", "common_name", "subject", "critical"), CSR_CASES.values(), ids=list(CSR_CASES)
)
def test_csr_carries_the_names_and_nothing_else(
    tmp_path: Path, names: list[str], common_name: str | None, subject: str, critical: bool
) -> None:
    parsed = parse_names(names)
    csr = build_csr(key(KeyType.EC_P256, "csr"), parsed, common_name)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == subject
    assert [e.oid for e in csr.extensions] == [ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is critical
    assert list(san.value) == [n.general_name() for n in parsed]
    require_tool("openssl")
    path = tmp_path / "req.pem"
    path.write_bytes(csr.public_bytes(Encoding.PEM))
    done = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-text", "-in", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "verify OK" in done.stdout + done.stderr


def test_spec_defaults_are_empty() -> None:
    spec = CertificateSpec(
        subject=ca_subject("x"),
        public_key=key(KeyType.EC_P256).public_key(),
        profile=SERVER,
        serial=1,
        not_before=NOW,
        not_after=NOW,
    )
    assert (spec.names, spec.permitted, spec.excluded) == ((), (), ())
    assert (spec.crl_url, spec.ocsp_url, spec.ca_issuers_url) == (None, None, None)
