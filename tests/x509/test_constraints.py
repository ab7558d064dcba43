"""x509/constraints.py on its own: the subtrees written for each policy, which name types a
chain binds, and the URI check privca makes where cryptography cannot.

The URI verdicts are compared with OpenSSL's own name-constraint check on the same chain,
so privca refuses exactly what a client that checks URI constraints would refuse.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification

from privca.x509.build import build_certificate
from privca.x509.constraints import (
    NOWHERE,
    Coverage,
    build_name_constraints,
    coverage,
    has_uri_names,
    uri_violation,
    verify_uri_constrained,
    without_uri_subtrees,
)
from privca.x509.profiles import CLIENT, SERVER
from tests.conftest import require_tool
from tests.x509.pki import NOW, judge_chain, leaf_spec, make_pki, subtrees

URI = x509.UniformResourceIdentifier
EMAIL = x509.RFC822Name
ALL_V4 = x509.IPAddress(ipaddress.ip_network("0.0.0.0/0"))
ALL_V6 = x509.IPAddress(ipaddress.ip_network("::/0"))


def _ip(network: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_network(network))


def _domain(domain: str) -> list[x509.GeneralName]:
    """What one permitted or excluded domain becomes: every name type below it."""
    return [
        x509.DNSName(domain), EMAIL(domain), EMAIL("." + domain), URI(domain), URI("." + domain)
    ]  # fmt: skip


# (permitted, excluded) -> (permitted subtrees, excluded subtrees), order as written
POLICIES = {
    "dns-only-closes-ip": (
        ["corp.internal"], [],
        _domain("corp.internal"), [ALL_V4, ALL_V6],
    ),
    "ip-only-closes-names": (
        ["10.0.0.0/8"], [],
        [*_domain(NOWHERE), _ip("10.0.0.0/8")], [],
    ),
    "both": (
        ["corp.internal", "lab.example", "fd00::/8"], [],
        [x509.DNSName("corp.internal"), x509.DNSName("lab.example"),
         *_domain("corp.internal")[1:], *_domain("lab.example")[1:], _ip("fd00::/8")],
        [],
    ),
    "excluded-only": (
        [], ["secret.corp.internal", "10.9.0.0/16"],
        None, [*_domain("secret.corp.internal"), _ip("10.9.0.0/16")],
    ),
    "permitted-and-excluded": (
        ["corp.internal"], ["secret.corp.internal"],
        _domain("corp.internal"), [ALL_V4, ALL_V6, *_domain("secret.corp.internal")],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("permitted", "excluded", "expected_permitted", "expected_excluded"),
    POLICIES.values(),
    ids=list(POLICIES),
)
def test_every_name_type_is_bound(
    permitted: list[str], excluded: list[str],
    expected_permitted: list[x509.GeneralName] | None,
    expected_excluded: list[x509.GeneralName],
) -> None:  # fmt: skip
    built = build_name_constraints(subtrees(*permitted), subtrees(*excluded))
    assert built is not None
    assert built.permitted_subtrees == expected_permitted
    assert list(built.excluded_subtrees or []) == expected_excluded
    if permitted:
        assert coverage([built]) == Coverage(True, ())


def test_no_subtrees_no_constraints() -> None:
    assert build_name_constraints((), ()) is None


def _dns_only(domain: str) -> x509.NameConstraints:
    """How most CAs made by hand constrain: DNS only, every other type left open."""
    return x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None)


COVERAGE = {
    "unconstrained": ([None, None], Coverage(False, ())),
    "dns-only-by-hand": ([_dns_only("corp.internal")], Coverage(True, ("IP", "email", "URI"))),
    "privca-policy": (
        [build_name_constraints(subtrees("corp.internal"), ())], Coverage(True, ()),
    ),
    "intersected-down-the-chain": (
        [_dns_only("corp.internal"),
         x509.NameConstraints(permitted_subtrees=[URI(".corp.internal"), EMAIL("corp.internal")],
                              excluded_subtrees=[ALL_V4, ALL_V6])],
        Coverage(True, ()),
    ),
    "one-ip-family-only": (
        [x509.NameConstraints(permitted_subtrees=[x509.DNSName("corp.internal")],
                              excluded_subtrees=[ALL_V4])],
        Coverage(True, ("IP", "email", "URI")),
    ),
    "only-exclusions": (
        [x509.NameConstraints(permitted_subtrees=None, excluded_subtrees=[ALL_V4, ALL_V6])],
        Coverage(False, ()),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("chain", "expected"), COVERAGE.values(), ids=list(COVERAGE))
def test_coverage(chain: list[x509.NameConstraints | None], expected: Coverage) -> None:
    assert coverage(chain) == expected


PRIVCA_URIS = build_name_constraints(subtrees("corp.internal"), subtrees("secret.corp.internal"))
EXACT_HOST = x509.NameConstraints(permitted_subtrees=[URI("api.corp.internal")],
                                  excluded_subtrees=None)  # fmt: skip
VERDICTS = {
    "inside": ("spiffe://db.corp.internal/ns/x", PRIVCA_URIS, None),
    "the-domain-itself": ("https://corp.internal/", PRIVCA_URIS, None),
    "upper-case-host": ("https://DB.CORP.INTERNAL/", PRIVCA_URIS, None),
    "with-port": ("https://db.corp.internal:8443/", PRIVCA_URIS, None),
    "outside": ("https://db.example.com/", PRIVCA_URIS, "matches no permitted"),
    "suffix-trick": ("https://evilcorp.internal/", PRIVCA_URIS, "matches no permitted"),
    "excluded": ("https://a.secret.corp.internal/", PRIVCA_URIS, "excluded"),
    "ip-host": ("https://10.0.0.5/", PRIVCA_URIS, "IP address host"),
    "userinfo": ("https://db.corp.internal@evil.example/", PRIVCA_URIS, "cannot be matched"),
    "backslash": ("https://evil.example\\.corp.internal/", PRIVCA_URIS, "cannot be matched"),
    "exact-host": ("https://api.corp.internal/v1", EXACT_HOST, None),
    "exact-host-below": ("https://x.api.corp.internal/", EXACT_HOST, "matches no permitted"),
    "no-uri-subtrees": ("https://anything.example/", _dns_only("corp.internal"), None),
}


@pytest.mark.parametrize(("uri", "nc", "fragment"), VERDICTS.values(), ids=list(VERDICTS))
def test_uri_violation(uri: str, nc: x509.NameConstraints | None, fragment: str | None) -> None:
    assert nc is not None
    verdict = uri_violation(uri, nc)
    if fragment is None:
        assert verdict is None
    else:
        assert verdict is not None and fragment in verdict


def test_uri_violation_escapes_what_it_quotes() -> None:
    assert PRIVCA_URIS is not None
    verdict = uri_violation("https://db.example.com/\x1b[2J", PRIVCA_URIS)
    assert verdict is not None and "\x1b" not in verdict and "\\x1b" in verdict


def test_without_uri_subtrees() -> None:
    assert PRIVCA_URIS is not None
    stripped = without_uri_subtrees(PRIVCA_URIS)
    assert stripped is not None
    everything = [*(stripped.permitted_subtrees or []), *(stripped.excluded_subtrees or [])]
    assert everything and not any(isinstance(g, URI) for g in everything)
    assert len(stripped.permitted_subtrees or []) == 3  # DNS + two email subtrees
    only_uris = x509.NameConstraints(permitted_subtrees=[URI(".corp.internal")],
                                     excluded_subtrees=None)  # fmt: skip
    assert without_uri_subtrees(only_uris) is None


# URI names under URI constraints: privca and OpenSSL agree on the verdict.

URI_LEAVES = {
    "inside": (["uri:spiffe://db.corp.internal/ns/x", "db.corp.internal"], True),
    "outside": (["uri:spiffe://db.example.com/ns/x", "db.corp.internal"], False),
    "excluded": (["uri:https://a.secret.corp.internal/", "db.corp.internal"], False),
    "only-uri-inside": (["uri:spiffe://corp.internal/svc"], True),
}


@pytest.mark.parametrize(("names", "valid"), URI_LEAVES.values(), ids=list(URI_LEAVES))
def test_uri_verdicts_agree_with_openssl(tmp_path: Path, names: list[str], valid: bool) -> None:
    require_tool("openssl")
    pki = make_pki(permitted=["corp.internal", "10.0.0.0/8"], excluded=["secret.corp.internal"])
    # A leaf without a DNS name is validated as a TLS client (as verify_chain does).
    profile = SERVER if "db.corp.internal" in names else CLIENT
    leaf = build_certificate(leaf_spec(names, profile=profile), pki.issuing_issuer)
    assert has_uri_names(leaf)
    subject = (
        x509.DNSName("db.corp.internal") if "db.corp.internal" in names else None
    )  # a server name when the leaf has one, else validated as a client
    if valid:
        path = verify_uri_constrained(leaf, [pki.root], [pki.issuing], NOW, subject)
        assert path == (leaf, pki.issuing, pki.root)
    else:
        with pytest.raises(verification.VerificationError):
            verify_uri_constrained(leaf, [pki.root], [pki.issuing], NOW, subject)
    done = judge_chain(tmp_path, leaf, pki)
    assert (done.returncode == 0) is valid, done.stdout + done.stderr
    if not valid:
        assert "subtree violation" in done.stdout + done.stderr


def test_uri_check_still_needs_a_real_issuer() -> None:
    """The stand-in anchor keeps the real issuer's key: a leaf signed by anyone else fails."""
    pki = make_pki(permitted=["corp.internal"])
    impostor = make_pki(permitted=["corp.internal"], label="impostor")
    spec = leaf_spec(["uri:spiffe://corp.internal/x"], profile=CLIENT)
    leaf = build_certificate(spec, impostor.issuing_issuer)
    with pytest.raises(verification.VerificationError, match="no CA certificate"):
        verify_uri_constrained(leaf, [pki.root], [pki.issuing], NOW, None)
