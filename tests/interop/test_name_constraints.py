"""Name constraints bind at the client: a stolen CA key cannot mint names outside them.

A test-only signer loads the CA's signing key straight from private/ (as a thief would) and
builds leaves privca itself would refuse. `openssl verify` and `privca verify` must reject
those outside the permitted subtrees and accept the in-policy ones (the control that shows
the forger builds otherwise-valid certificates).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.errors import PolicyError
from privca.keys.files import read_ca_key
from privca.store.inventory import random_serial
from privca.x509.build import signature_hash_for, subject_key_identifier
from privca.x509.encoding import pem_certificate
from privca.x509.names import parse_names
from tests.conftest import PASSPHRASE, Cli, require_tool, write
from tests.interop.conftest import CORP_PERMITTED, CAPool, PooledCA, openssl_output, openssl_verify

DNS_ONLY = ("corp.internal",)

SHAPES = {
    "two-tier": {"permitted": CORP_PERMITTED},
    "single-tier": {"permitted": CORP_PERMITTED, "single_tier": True},
    "dns-only": {"permitted": DNS_ONLY},
}

# (id, CA shape, SANs of the forged leaf, openssl's complaint or None when it must pass)
CASES = [
    ("in-policy-dns", "two-tier", ("svc.corp.internal",), None),
    ("in-policy-dns-ip", "two-tier", ("svc.corp.internal", "10.1.2.3"), None),
    ("in-policy-single-tier", "single-tier", ("svc.corp.internal", "10.1.2.3"), None),
    ("in-policy-dns-only", "dns-only", ("svc.corp.internal",), None),
    ("outside-dns", "two-tier", ("evil.example.com",), "permitted subtree violation"),
    (
        "outside-dns-beside-good",
        "two-tier",
        ("svc.corp.internal", "evil.example.com"),
        "permitted subtree violation",
    ),
    ("label-suffix", "two-tier", ("evilcorp.internal",), "permitted subtree violation"),
    ("domain-suffix", "two-tier", ("corp.internal.evil.example",), "permitted subtree violation"),
    ("outside-ip", "two-tier", ("svc.corp.internal", "192.168.1.5"), "permitted subtree violation"),
    ("outside-ipv6", "two-tier", ("svc.corp.internal", "fd00::5"), "permitted subtree violation"),
    ("outside-single-tier", "single-tier", ("evil.example.com",), "permitted subtree violation"),
    ("ip-under-dns-only", "dns-only", ("svc.corp.internal", "10.0.0.7"), "excluded subtree"),
    ("ipv6-under-dns-only", "dns-only", ("svc.corp.internal", "::1"), "excluded subtree"),
]


@pytest.fixture(autouse=True)
def _openssl() -> None:
    require_tool("openssl")


def forge_leaf(pooled: PooledCA, names: tuple[str, ...]) -> x509.Certificate:
    """Sign a server leaf with the CA's key read directly from disk, bypassing all policy.

    It carries what a privca leaf carries (CN, SAN, CA:FALSE, key usage, serverAuth, SKI,
    AKI), so the only thing wrong with an out-of-policy one is its names.
    """
    ca = pooled.ca
    role = "root" if pooled.single_tier else "issuing"
    signing_key = read_ca_key(ca.home.key_path(role), PASSPHRASE)
    issuer = ca.issuing
    leaf_key = pooled.leaf("svc.corp.internal").issued.private_key  # any key will do
    general_names = [n.general_name() for n in parse_names(names)]
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier(subject_key_identifier(issuer), None, None),
            critical=False,
        )
    )
    return builder.sign(signing_key, signature_hash_for(signing_key))


def _privca_verify_cli(pooled: PooledCA, path: Path, tmp_path: Path) -> tuple[int, dict]:
    cli = Cli(pooled.ca.home.root, write(tmp_path / "unused-passphrase", b"x\n", 0o600))
    result = cli("verify", str(path), "--json")
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize(
    ("shape", "names", "complaint"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_forged_leaf_is_judged_by_its_names(
    ca_pool: CAPool,
    tmp_path: Path,
    shape: str,
    names: tuple[str, ...],
    complaint: str | None,
) -> None:
    pooled = ca_pool.get(**SHAPES[shape])  # type: ignore[arg-type]
    forged = forge_leaf(pooled, names)
    path = write(tmp_path / "forged.crt", pem_certificate(forged))

    verified = openssl_verify(pooled, path)
    report, status = pooled.ca.verify(forged)
    exit_code, document = _privca_verify_cli(pooled, path, tmp_path)
    assert status == "unknown"  # never recorded: the CA did not issue it

    if complaint is None:
        # Control: the forger makes certificates both judges accept on their chain.
        assert verified.returncode == 0, openssl_output(verified)
        assert report.chain.ok, report.problems
        assert document["chain"] is True, document
        # privca verify still flags it: valid chain but missing from the inventory.
        assert exit_code == 1 and any("inventory" in p for p in document["problems"])
    else:
        assert verified.returncode != 0, openssl_output(verified)
        assert complaint in verified.stderr, openssl_output(verified)
        assert not report.ok and not report.chain.ok, report
        assert "name constraint" in report.chain.reason, report.chain.reason
        assert exit_code == 1, document
        assert document["ok"] is False and document["chain"] is False, document
        assert any("name constraint" in p for p in document["problems"]), document


@pytest.mark.parametrize(
    ("shape", "names"),
    [pytest.param(c[1], c[2], id=c[0]) for c in CASES if c[3] is not None],
)
def test_privca_refuses_to_issue_what_was_forged(
    ca_pool: CAPool, shape: str, names: tuple[str, ...]
) -> None:
    pooled = ca_pool.get(**SHAPES[shape])  # type: ignore[arg-type]
    with pytest.raises(PolicyError):
        pooled.ca.issue(list(names))


@pytest.mark.parametrize(
    ("shape", "names"),
    [
        pytest.param("two-tier", ("svc.corp.internal", "10.0.0.7"), id="two-tier"),
        pytest.param("single-tier", ("svc.corp.internal", "10.0.0.7"), id="single-tier"),
        pytest.param("dns-only", ("svc.corp.internal",), id="dns-only"),
    ],
)
def test_issued_in_policy_leaf_passes_both_judges(
    ca_pool: CAPool, tmp_path: Path, shape: str, names: tuple[str, ...]
) -> None:
    pooled = ca_pool.get(**SHAPES[shape])  # type: ignore[arg-type]
    leaf = pooled.leaf(*names)
    verified = openssl_verify(pooled, leaf.certificate)
    assert verified.returncode == 0, openssl_output(verified)
    report, status = pooled.ca.verify(leaf.issued.certificate)
    assert report.ok and status == "valid", report.problems
    exit_code, document = _privca_verify_cli(pooled, leaf.certificate, tmp_path)
    assert exit_code == 0 and document["ok"] is True, document


def test_dns_only_ca_excludes_every_ip(ca_pool: CAPool) -> None:
    """What makes the IP rejection above work: privca adds excluded 0.0.0.0/0 and ::/0."""
    pooled = ca_pool.get(**SHAPES["dns-only"])  # type: ignore[arg-type]
    for certificate in (pooled.ca.root, pooled.ca.issuing):
        constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints)
        assert constraints.critical
        excluded = {g.value for g in constraints.value.excluded_subtrees or []}
        assert excluded == {
            ipaddress.ip_network("0.0.0.0/0"),
            ipaddress.ip_network("::/0"),
        }
