"""pkilint (RFC 5280 profile) finds nothing at WARNING or above in what privca issues.

Root, issuing CA and leaves for every CA key type and both shapes; leaf variants (empty
subject, IDN, client names, RSA keys, CRL/AIA URLs); and the signer/signee chain linter for
root -> issuing and issuing -> leaf. Anything tolerated is listed in WAIVERS with its reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from cryptography import x509

from privca.keys.types import KeyType
from tests.conftest import require_tool
from tests.interop._pkilint import WARNING_OR_WORSE, Finding, lint_certificate, lint_chain
from tests.interop.conftest import CORP_PERMITTED, CAPool, PooledCA

pytest.importorskip("pkilint")

# Findings tolerated, by (case id, finding code). Keep this short and justified; never waive
# a genuine RFC 5280 defect here: fix src instead.
WAIVERS: dict[tuple[str, str], str] = {
    # RFC 5280 4.2.1.6 leaves wildcard dNSNames undefined ("not addressed by this
    # specification") and pkilint's PKIX profile applies the strict preferred-name syntax
    # of RFC 1034, so '*.corp.internal' is an ERROR to it. Wildcards are defined by
    # RFC 6125 6.4.3 / RFC 9525 and CA/B Forum BR 7.1.4.2.1, and pkilint's own CA/B
    # serverauth linter accepts them; privca allows them on request (policy
    # allow_wildcards).
    ("leaf-wildcard", "pkix.invalid_domain_name_syntax"): "wildcard SAN, RFC 6125",
}

CA_SHAPES = [
    pytest.param(key_type, single_tier, id=f"{key_type.value}-{'single' if single_tier else 'two'}")
    for key_type in KeyType
    for single_tier in (False, True)
]


def _unwaived(case: str, findings: list[Finding]) -> list[str]:
    return [
        str(f) for f in findings if f.severity in WARNING_OR_WORSE and (case, f.code) not in WAIVERS
    ]


def _constrained(ca_pool: CAPool, key_type: KeyType, single_tier: bool) -> PooledCA:
    return ca_pool.get(key_type, single_tier=single_tier, permitted=CORP_PERMITTED)


@pytest.mark.parametrize(("key_type", "single_tier"), CA_SHAPES)
def test_ca_certificates_lint_clean(ca_pool: CAPool, key_type: KeyType, single_tier: bool) -> None:
    pooled = _constrained(ca_pool, key_type, single_tier)
    certificates = {"root": pooled.ca.root}
    if not single_tier:
        certificates["issuing"] = pooled.ca.issuing
    for role, certificate in certificates.items():
        assert _unwaived(role, lint_certificate(certificate)) == [], role


@pytest.mark.parametrize(("key_type", "single_tier"), CA_SHAPES)
def test_leaf_lints_clean_under_every_ca(
    ca_pool: CAPool, key_type: KeyType, single_tier: bool
) -> None:
    pooled = _constrained(ca_pool, key_type, single_tier)
    leaf = pooled.leaf("svc.corp.internal", "10.0.0.7").issued.certificate
    assert _unwaived("leaf", lint_certificate(leaf)) == []


@pytest.mark.parametrize(("key_type", "single_tier"), CA_SHAPES)
def test_chain_links_lint_clean(ca_pool: CAPool, key_type: KeyType, single_tier: bool) -> None:
    """lint_pkix_signer_signee_cert_chain: names, key identifiers and signatures link up."""
    pooled = _constrained(ca_pool, key_type, single_tier)
    ca = pooled.ca
    leaf = pooled.leaf("svc.corp.internal", "10.0.0.7").issued.certificate
    links = {"issuing->leaf": (ca.issuing, leaf)}
    if not single_tier:
        links["root->issuing"] = (ca.root, ca.issuing)
    links["root->root"] = (ca.root, ca.root)  # a self-signed anchor is its own signer
    for link, (issuer, subject) in links.items():
        assert _unwaived(link, lint_chain(issuer, subject)) == [], link


def test_chain_linter_catches_a_broken_link(ca_pool: CAPool) -> None:
    """Control: the chain linter is awake; a leaf is not signed by another CA's issuing CA."""
    leaf = ca_pool.get(permitted=CORP_PERMITTED).leaf("svc.corp.internal").issued.certificate
    stranger = ca_pool.get(name="Stranger CA").ca.issuing
    codes = {f.code for f in lint_chain(stranger, leaf) if f.severity in WARNING_OR_WORSE}
    assert "pkix.signature_verification_failed" in codes
    assert "pkix.issuer_and_subject_key_identifier_not_equal" in codes


# (case id, CA shape, names, issue keyword arguments)
LEAF_CASES: list[tuple[str, dict[str, object], tuple[str, ...], dict[str, object]]] = [
    ("leaf", {}, ("svc.corp.internal", "10.0.0.7"), {}),
    ("leaf-server-profile", {}, ("svc.corp.internal",), {"profile": "server"}),
    ("leaf-ip-only-empty-subject", {}, ("10.0.0.9", "fd00::9"), {}),
    ("leaf-long-name-empty-subject", {}, ("a" * 60 + ".svc.corp.internal",), {}),
    ("leaf-idn", {}, ("bücher.corp.internal",), {}),
    ("leaf-wildcard", {}, ("*.apps.corp.internal",), {}),
    (
        "leaf-client-email-uri",
        {},
        ("ops.corp.internal", "email:ops@corp.internal", "uri:https://ops.corp.internal/id"),
        {"profile": "client"},
    ),
    ("leaf-rsa-2048", {}, ("svc.corp.internal",), {"key_type": KeyType.RSA_2048}),
    ("leaf-ec-p384", {}, ("svc.corp.internal",), {"key_type": KeyType.EC_P384}),
    (
        "leaf-crl-ocsp-aia",
        {"base_url": "http://ca.corp.internal:8443"},
        ("svc.corp.internal",),
        {},
    ),
]


@pytest.mark.parametrize(
    ("case", "shape", "names", "options"), [pytest.param(*c, id=c[0]) for c in LEAF_CASES]
)
def test_leaf_variants_lint_clean(
    ca_pool: CAPool,
    case: str,
    shape: dict[str, object],
    names: tuple[str, ...],
    options: dict[str, object],
) -> None:
    pooled = ca_pool.get(**shape)  # type: ignore[arg-type]
    certificate = pooled.leaf(*names, **options).issued.certificate  # type: ignore[arg-type]
    assert _unwaived(case, lint_certificate(certificate)) == []
    assert _unwaived(f"{case}-link", lint_chain(pooled.ca.issuing, certificate)) == []


def test_ca_with_urls_lints_clean(ca_pool: CAPool) -> None:
    pooled = ca_pool.get(base_url="http://ca.corp.internal:8443")
    issuing = pooled.ca.issuing
    assert issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert _unwaived("issuing", lint_certificate(issuing)) == []


def test_waivers_are_still_needed(ca_pool: CAPool) -> None:
    """A waiver pkilint no longer needs is deleted, not left to hide a future finding."""
    cases = {c[0]: c for c in LEAF_CASES}
    for case, code in WAIVERS:
        _, shape, names, options = cases[case]
        pooled = ca_pool.get(**shape)  # type: ignore[arg-type]
        certificate = pooled.leaf(*names, **options).issued.certificate  # type: ignore[arg-type]
        assert code in {f.code for f in lint_certificate(certificate)}, (case, code)


CONSOLE_SCRIPTS: list[tuple[str, Callable[[PooledCA], list[str]]]] = [
    ("lint_pkix_cert", lambda p: [str(p.root_crt)]),
    ("lint_pkix_cert", lambda p: [str(p.issuing_crt)]),
    ("lint_pkix_cert", lambda p: [str(p.leaf("svc.corp.internal", "10.0.0.7").certificate)]),
    (
        "lint_pkix_signer_signee_cert_chain",
        lambda p: [str(p.root_crt), str(p.issuing_crt)],
    ),
    (
        "lint_pkix_signer_signee_cert_chain",
        lambda p: [str(p.issuing_crt), str(p.leaf("svc.corp.internal", "10.0.0.7").certificate)],
    ),
]


@pytest.mark.parametrize(
    ("script", "files"),
    [
        pytest.param(*entry, id=id_)
        for entry, id_ in zip(
            CONSOLE_SCRIPTS,
            ["cert-root", "cert-issuing", "cert-leaf", "chain-root-issuing", "chain-issuing-leaf"],
            strict=True,
        )
    ],
)
def test_pkilint_console_scripts_agree(
    ca_pool: CAPool, script: str, files: Callable[[PooledCA], list[str]]
) -> None:
    """The installed console scripts, run as a user would, on the files privca wrote."""
    executable = require_tool(script)
    pooled = ca_pool.get(permitted=CORP_PERMITTED)
    result = subprocess.run(
        [executable, "lint", "--severity", "WARNING", *files(pooled)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout, result.stderr, sys.executable)
    assert result.stdout.strip() == "", result.stdout
