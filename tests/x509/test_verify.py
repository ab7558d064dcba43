"""`check_certificate` explains a failure in words a reader acts on, never in the
validator's internals ("candidates exhausted", "<Certificate(...)>")."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.keys.types import KeyType
from privca.x509.build import CertificateSpec, Issuer, build_certificate, ca_subject
from privca.x509.names import parse_names
from privca.x509.profiles import CLIENT, SERVER
from privca.x509.verify import check_certificate, name_matches

INTERNALS = ("candidates exhausted", "<Certificate", "encountered processing", "validation failed")

Case = Callable[[CertificateAuthority, CertificateAuthority], tuple[x509.Certificate, dict]]


def _forged_leaf(
    ca: CertificateAuthority, names: tuple[str, ...], **changes: object
) -> x509.Certificate:
    """A leaf built by hand under `ca`'s issuing CA (or another key posing as it)."""
    now = utcnow()
    spec = CertificateSpec(
        subject=ca_subject(names[0]),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        profile=SERVER,
        serial=x509.random_serial_number(),
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=30),
        names=parse_names(names),
    )
    signer_key = changes.pop("signer_key", None)
    spec = dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
    issuer = ca.signer(ca.issuing_record())
    if signer_key is not None:
        issuer = Issuer.from_certificate(ca.issuing, signer_key)
    return build_certificate(spec, issuer)


CASES: list[tuple[str, Callable[..., tuple[x509.Certificate, dict]], list[str]]] = [
    (
        "name-not-in-certificate",
        lambda ca, other: (
            ca.issue(["a.corp.internal", "10.0.0.5"]).certificate,
            {"name": "db.corp.internal"},
        ),
        ["name db.corp.internal is not in the certificate (it has: a.corp.internal, 10.0.0.5)"],
    ),
    (
        "ip-not-in-certificate",
        lambda ca, other: (
            ca.issue(["a.corp.internal", "10.0.0.5"]).certificate,
            {"name": "10.0.0.6"},
        ),
        ["name 10.0.0.6 is not in the certificate (it has: a.corp.internal, 10.0.0.5)"],
    ),
    (
        "another-ca",
        lambda ca, other: (other.issue(["a.corp.internal"]).certificate, {}),
        ["not issued by this CA (issuer: CN=Other CA Issuing CA)"],
    ),
    (
        "forged-signature",
        lambda ca, other: (
            _forged_leaf(ca, ("a.corp.internal",), signer_key=KeyType.EC_P256.generate()),
            {},
        ),
        [
            "the signature does not verify with this CA's key "
            "(issuer: CN=Test Internal CA Issuing CA)"
        ],
    ),
    (
        "expired",
        lambda ca, other: (
            ca.issue(["a.corp.internal"], days=1, now=utcnow() - dt.timedelta(days=3)).certificate,
            {"name": "a.corp.internal"},
        ),
        ["the certificate expired on "],
    ),
    (
        "expired-and-wrong-name",
        lambda ca, other: (
            ca.issue(["a.corp.internal"], days=1, now=utcnow() - dt.timedelta(days=3)).certificate,
            {"name": "b.corp.internal"},
        ),
        ["the certificate expired on ", "name b.corp.internal is not in the certificate"],
    ),
    (
        "not-yet-valid",
        lambda ca, other: (
            _forged_leaf(
                ca,
                ("a.corp.internal",),
                not_before=utcnow() + dt.timedelta(days=2),
            ),
            {},
        ),
        ["the certificate is not valid before "],
    ),
    (
        "client-certificate-as-server",
        lambda ca, other: (
            ca.issue(["a.corp.internal"], profile="client").certificate,
            {"name": "a.corp.internal"},
        ),
        ["the certificate is not for TLS servers (extendedKeyUsage: clientAuth)"],
    ),
    (
        "server-certificate-as-client",
        lambda ca, other: (
            _forged_leaf(ca, ("email:ops@corp.internal",), profile=SERVER),
            {},
        ),
        ["the certificate is not for TLS clients (extendedKeyUsage: serverAuth)"],
    ),
]


@pytest.mark.parametrize(("build", "expected"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_failure_in_words(
    make_ca: Callable[..., CertificateAuthority],
    build: Callable[..., tuple[x509.Certificate, dict]],
    expected: list[str],
) -> None:
    ca = make_ca(now=utcnow() - dt.timedelta(days=10))
    other = make_ca(name="Other CA")
    leaf, options = build(ca, other)
    report = check_certificate(leaf, [ca.root], [ca.issuing], utcnow(), options.get("name"), None)
    assert not report.ok
    assert len(report.problems) == len(expected), report.problems
    for problem, start in zip(report.problems, expected, strict=True):
        assert problem.startswith(start), report.problems
        assert not any(word in problem for word in INTERNALS), problem


def test_client_profile_passes_as_client(make_ca: Callable[..., CertificateAuthority]) -> None:
    ca = make_ca()
    leaf = ca.issue(["email:ops@corp.internal"], profile="client").certificate
    report = check_certificate(leaf, [ca.root], [ca.issuing], utcnow())
    assert report.ok, report.problems
    assert CLIENT.name == "client"


def test_name_constraint_violation_says_so(make_ca: Callable[..., CertificateAuthority]) -> None:
    ca = make_ca(permitted=["corp.internal"])
    leaf = _forged_leaf(ca, ("evil.example.com",))
    report = check_certificate(leaf, [ca.root], [ca.issuing], utcnow())
    assert not report.ok
    (problem,) = report.problems
    assert "name constraint" in problem, problem
    assert not any(word in problem for word in INTERNALS), problem


@pytest.mark.parametrize(
    ("name", "sans", "expected"),
    [
        ("a.corp.internal", ["a.corp.internal"], True),
        ("A.Corp.Internal.", ["a.corp.internal"], True),
        ("a.corp.internal", ["*.corp.internal"], True),
        ("x.a.corp.internal", ["*.corp.internal"], False),
        ("corp.internal", ["*.corp.internal"], False),
        ("10.0.0.5", ["10.0.0.5"], True),
        ("::1", ["::1"], True),
        ("0:0::1", ["::1"], True),
        ("10.0.0.5", ["a.corp.internal"], False),
        ("10.0.0.5", ["10.0.0.6"], False),
    ],
    ids=lambda v: str(v),
)
def test_name_matches(name: str, sans: list[str], expected: bool) -> None:
    assert name_matches(name, parse_names(sans)) is expected


def test_an_expired_issuing_ca_is_named(make_ca: Callable[..., CertificateAuthority]) -> None:
    ca = make_ca(now=utcnow() - dt.timedelta(days=20), issuing_days=10)
    leaf = _forged_leaf(ca, ("a.corp.internal",))
    report = check_certificate(leaf, [ca.root], [ca.issuing], utcnow())
    (problem,) = report.problems
    assert problem.startswith("the CA CN=Test Internal CA Issuing CA expired on "), problem
