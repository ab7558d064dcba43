"""`check_certificate` explains a failure in words a reader acts on, never in the
validator's internals ("candidates exhausted", "<Certificate(...)>")."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import InputError
from privca.keys.types import KeyType
from privca.x509.build import CertificateSpec, Issuer, build_certificate, ca_subject
from privca.x509.encoding import public_key_der
from privca.x509.names import parse_names
from privca.x509.profiles import CLIENT, SERVER
from privca.x509.verify import (
    UntrustedRoot,
    check_certificate,
    default_subject_name,
    name_matches,
    verify_chain,
)
from tests.conftest import require_tool
from tests.x509 import pki

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


# privca's verdict and OpenSSL's agree, chain by chain (pure chains from tests/x509/pki.py).

PKI_CHAINS = {
    "good": (dict(), dict(), "svc.corp.internal", True, ""),
    "good-ip": (dict(), dict(), "10.1.2.3", True, ""),
    "expired-leaf": (dict(), dict(at=pki.NOW - dt.timedelta(days=200)), None, False,
                     "leaf-validity"),
    "outside-constraints": (dict(permitted=["lab.example"]), dict(), None, False, "constraints"),
    "excluded-subtree": (dict(permitted=["corp.internal", "10.0.0.0/8"],
                              excluded=["svc.corp.internal"]), dict(), None, False, "constraints"),
    "wrong-host": (dict(), dict(), "other.corp.internal", False, "name"),
    "client-only-as-server": (dict(), dict(profile=CLIENT), "svc.corp.internal", False, "usage"),
    "impostor-issuer": (dict(label="impostor"), dict(), None, False, "issuer"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("pki_options", "leaf_options", "host", "valid", "kind"),
    PKI_CHAINS.values(),
    ids=list(PKI_CHAINS),
)
def test_verdicts_agree_with_openssl(
    tmp_path: Path, pki_options: dict, leaf_options: dict, host: str | None, valid: bool,
    kind: str,
) -> None:  # fmt: skip
    require_tool("openssl")
    trusted = pki.make_pki(permitted=["corp.internal", "10.0.0.0/8"])
    signer = pki.make_pki(**pki_options) if pki_options else trusted
    leaf = build_certificate(
        pki.leaf_spec(["svc.corp.internal", "10.1.2.3"], **leaf_options), signer.issuing_issuer
    )
    chain = pki.Pki(trusted.root, trusted.root_issuer, signer.issuing, signer.issuing_issuer)
    result = verify_chain(leaf, [trusted.root], [signer.issuing], pki.NOW, host)
    assert (result.ok, result.kind) == (valid, kind), result.reason
    assert not any(word in result.reason for word in INTERNALS), result.reason
    host_args = []
    if host is not None:
        host_args = ["-verify_ip" if host[0].isdigit() else "-verify_hostname", host]
    purpose = "sslclient" if leaf_options.get("profile") is CLIENT and host is None else "sslserver"
    judged = pki.judge_chain(tmp_path, leaf, chain, "-purpose", purpose, *host_args)
    assert (judged.returncode == 0) is valid, judged.stdout + judged.stderr
    if valid:
        assert [c.subject for c in result.chain] == [leaf.subject, signer.issuing.subject,
                                                     trusted.root.subject]  # fmt: skip


def test_a_key_that_does_not_belong_is_reported() -> None:
    trusted = pki.make_pki()
    leaf = build_certificate(pki.leaf_spec(["svc.corp.internal"]), trusted.issuing_issuer)
    other_key = pki.key(KeyType.EC_P256, "not-the-leaf").public_key()
    report = check_certificate(
        leaf, [trusted.root], [trusted.issuing], pki.NOW, "svc.corp.internal",
        public_key_der(other_key),
    )  # fmt: skip
    assert report.key_matches is False
    assert report.problems == ("the private key does not belong to this certificate",)
    matching = check_certificate(
        leaf, [trusted.root], [trusted.issuing], pki.NOW, None,
        public_key_der(leaf.public_key()),
    )  # fmt: skip
    assert matching.ok and matching.key_matches is True and matching.days_left == 90


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["*.corp.internal", "svc.corp.internal"], "svc.corp.internal"),
        (["email:ops@corp.internal", "10.0.0.5"], "10.0.0.5"),
        (["email:ops@corp.internal"], None),
    ],
    ids=["skips-wildcards", "ip", "none"],
)
def test_default_subject_name(names: list[str], expected: str | None) -> None:
    trusted = pki.make_pki()
    leaf = build_certificate(pki.leaf_spec(names, profile=CLIENT), trusted.issuing_issuer)
    assert default_subject_name(leaf) == expected


def test_a_zone_id_is_refused_before_the_validator_sees_it() -> None:
    trusted = pki.make_pki()
    leaf = build_certificate(pki.leaf_spec(["fe80::1"]), trusted.issuing_issuer)
    with pytest.raises(InputError, match="zone id"):
        verify_chain(leaf, [trusted.root], [trusted.issuing], pki.NOW, "fe80::1%eth0")


RETIRED = (
    "issued by CN=Test x509 Issuing CA under the retired root CN=Test x509 Root: not trusted "
    "since the root rollover ended; renew it (privca renew; privca issue if the inventory "
    "does not hold it)"
)
FORGED = (
    "the signature does not verify with this CA's key (issuer: CN=Test x509 Issuing CA): "
    "a forged or damaged certificate"
)


def test_a_leaf_of_a_retired_root_is_not_taken_for_a_forgery(tmp_path: Path) -> None:
    """A CA whose new hierarchy has the names of the old one and other keys: a leaf of the
    old one names the current issuing CA, but its signature verifies with the retired
    issuing CA, under the retired root. Said so; "forged" stays for a signature no known
    CA key made. openssl agrees: the new root refuses both, the old root accepts the
    genuine leaf and refuses the forged one on its signature."""
    require_tool("openssl")
    old, new = pki.make_pki(label="-old"), pki.make_pki()
    assert old.issuing.subject == new.issuing.subject and old.root.subject == new.root.subject
    # The forger copies the old issuing CA's name and key identifier, not its key.
    forger = dataclasses.replace(
        pki.make_pki(label="-forger").issuing_issuer,
        key_identifier=old.issuing_issuer.key_identifier,
    )
    spec = pki.leaf_spec(["svc.corp.internal"])
    genuine = build_certificate(spec, old.issuing_issuer)
    forged = build_certificate(spec, forger)
    intermediates = [new.issuing, old.issuing]
    retired = [UntrustedRoot(old.root, "retired")]

    def problems(leaf: x509.Certificate, untrusted: list[UntrustedRoot]) -> tuple[str, ...]:
        report = check_certificate(leaf, [new.root], intermediates, pki.NOW, untrusted=untrusted)
        assert report.chain.kind == "issuer"
        return report.problems

    assert problems(genuine, retired) == (RETIRED,)
    assert problems(forged, retired) == (FORGED,)
    # Without the retired root known, the name of a known CA without its key is all there is.
    assert problems(genuine, []) == (FORGED,)
    for leaf in (genuine, forged):
        assert pki.judge_chain(tmp_path, leaf, new).returncode != 0
    assert pki.judge_chain(tmp_path, genuine, old).returncode == 0
    refused = pki.judge_chain(tmp_path, forged, old)
    assert refused.returncode != 0 and "signature failure" in refused.stdout + refused.stderr


def test_a_root_left_out_of_the_roots_given_is_named() -> None:
    """`verify --ca-file` without the root a leaf chains to: the rollover's old root, or
    the current one, named for what it is."""
    old, new = pki.make_pki(label="-old"), pki.make_pki()
    other = pki.make_pki(label="-other")
    leaf = build_certificate(pki.leaf_spec(["svc.corp.internal"]), old.issuing_issuer)
    for because, expected in (
        ("transition", "issued by CN=Test x509 Issuing CA under the old root CN=Test x509 Root "
         "of the root rollover under way: trusted until the rollover ends, but not by the "
         "roots given"),
        ("not-given", "issued by CN=Test x509 Issuing CA under this CA's root CN=Test x509 "
         "Root, which is not among the roots given"),
    ):  # fmt: skip
        report = check_certificate(
            leaf, [other.root], [new.issuing, old.issuing], pki.NOW,
            untrusted=[UntrustedRoot(new.root, "not-given"), UntrustedRoot(old.root, because)],
        )  # fmt: skip
        assert report.problems == (expected,)
