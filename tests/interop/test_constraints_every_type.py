"""Name constraints bind every name type, for every shape of policy, judged by third parties.

For each policy shape a CA is made with `--no-passphrase`; a thief's forger reads its key
straight from private/ and signs leaves privca's policy would refuse, one name type at a
time: DNS, IPv4, IPv6, email (rfc822Name) and URI. Out-of-policy leaves must fail
`openssl verify -x509_strict` (with -verify_hostname/-verify_ip/-verify_email), cryptography's
verifier and `privca verify`; in-policy leaves (the control that shows the forger's
certificates are otherwise valid) must pass all three, except that cryptography cannot
match URI names under URI constraints at all ("unsupported name constraint"), which is the
part `privca verify` checks itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca.authority import CertificateAuthority
from privca.keys.files import read_ca_key
from privca.store.inventory import random_serial
from privca.x509.build import signature_hash_for, subject_key_identifier
from privca.x509.encoding import pem_certificate, pem_certificates
from privca.x509.names import parse_name
from tests.conftest import Cli, openssl, require_tool, write

# shape -> (--permit, --exclude, single tier)
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "dns-only": (("corp.internal",), (), False),
    "ip-only": (("10.0.0.0/8", "fd00::/8"), (), False),
    "dns-and-ipv4": (("corp.internal", "10.0.0.0/8"), (), False),
    "dns-and-ipv4-single-tier": (("corp.internal", "10.0.0.0/8"), (), True),
    "permit-and-exclude": (
        ("corp.internal", "10.0.0.0/8"),
        ("secret.corp.internal", "10.9.0.0/16"),
        False,
    ),
    "exclude-only": ((), ("secret.corp.internal", "10.9.0.0/16"), False),
    "unconstrained": ((), (), False),
}

# name type -> names by the role they play
BANK_DNS = "www.bank.example"
CORP_DNS = "svc.corp.internal"
SECRET_DNS = "db.secret.corp.internal"
CORP_EMAIL = "ops@mail.corp.internal"
BANK_EMAIL = "ceo@bank.example"
SECRET_EMAIL = "ops@secret.corp.internal"
CORP_URI = "spiffe://corp.internal/ns/prod/sa/db"
OTHER_URI = "spiffe://prod.other-domain/ns/prod/sa/db"
SECRET_URI = "spiffe://db.secret.corp.internal/x"

# (shape, type, name, must verify)
IN, OUT = True, False
CASES: list[tuple[str, str, str, bool]] = [
    # DNS-only: email and URI only under the domain, every IP excluded.
    ("dns-only", "dns", CORP_DNS, IN),
    ("dns-only", "dns", BANK_DNS, OUT),
    ("dns-only", "ipv4", "10.1.2.3", OUT),
    ("dns-only", "ipv6", "fd00::5", OUT),
    ("dns-only", "email", CORP_EMAIL, IN),
    ("dns-only", "email", "ops@corp.internal", IN),
    ("dns-only", "email", BANK_EMAIL, OUT),
    ("dns-only", "uri", CORP_URI, IN),
    ("dns-only", "uri", "https://api.corp.internal:8443/v1", IN),
    ("dns-only", "uri", OTHER_URI, OUT),
    ("dns-only", "uri", "https://corp.internal.evil.example/", OUT),
    # IP-only: no DNS name, email or URI at all.
    ("ip-only", "ipv4", "10.1.2.3", IN),
    ("ip-only", "ipv4", "192.168.1.5", OUT),
    ("ip-only", "ipv6", "fd00::5", IN),
    ("ip-only", "ipv6", "2001:db8::1", OUT),
    ("ip-only", "dns", BANK_DNS, OUT),
    ("ip-only", "dns", CORP_DNS, OUT),
    ("ip-only", "email", BANK_EMAIL, OUT),
    ("ip-only", "uri", OTHER_URI, OUT),
    ("ip-only", "uri", "https://10.1.2.3/", OUT),
    # DNS and IPv4: IPv6 is outside too.
    ("dns-and-ipv4", "dns", CORP_DNS, IN),
    ("dns-and-ipv4", "dns", BANK_DNS, OUT),
    ("dns-and-ipv4", "ipv4", "10.1.2.3", IN),
    ("dns-and-ipv4", "ipv4", "192.168.1.5", OUT),
    ("dns-and-ipv4", "ipv6", "fd00::5", OUT),
    ("dns-and-ipv4", "email", CORP_EMAIL, IN),
    ("dns-and-ipv4", "email", BANK_EMAIL, OUT),
    ("dns-and-ipv4", "uri", CORP_URI, IN),
    ("dns-and-ipv4", "uri", OTHER_URI, OUT),
    ("dns-and-ipv4-single-tier", "dns", BANK_DNS, OUT),
    ("dns-and-ipv4-single-tier", "email", BANK_EMAIL, OUT),
    ("dns-and-ipv4-single-tier", "uri", OTHER_URI, OUT),
    ("dns-and-ipv4-single-tier", "uri", CORP_URI, IN),
    ("dns-and-ipv4-single-tier", "email", CORP_EMAIL, IN),
    # Exclusions bind every type as well.
    ("permit-and-exclude", "dns", CORP_DNS, IN),
    ("permit-and-exclude", "dns", SECRET_DNS, OUT),
    ("permit-and-exclude", "ipv4", "10.1.2.3", IN),
    ("permit-and-exclude", "ipv4", "10.9.1.1", OUT),
    ("permit-and-exclude", "email", CORP_EMAIL, IN),
    ("permit-and-exclude", "email", SECRET_EMAIL, OUT),
    ("permit-and-exclude", "email", "ops@db.secret.corp.internal", OUT),
    ("permit-and-exclude", "uri", CORP_URI, IN),
    ("permit-and-exclude", "uri", SECRET_URI, OUT),
    # No --permit: unconstrained but for the exclusions.
    ("exclude-only", "dns", BANK_DNS, IN),
    ("exclude-only", "dns", SECRET_DNS, OUT),
    ("exclude-only", "ipv4", "192.168.1.5", IN),
    ("exclude-only", "ipv4", "10.9.1.1", OUT),
    ("exclude-only", "ipv6", "2001:db8::1", IN),
    ("exclude-only", "email", BANK_EMAIL, IN),
    ("exclude-only", "email", SECRET_EMAIL, OUT),
    ("exclude-only", "uri", OTHER_URI, IN),
    ("exclude-only", "uri", SECRET_URI, OUT),
    ("unconstrained", "dns", BANK_DNS, IN),
    ("unconstrained", "ipv4", "192.168.1.5", IN),
    ("unconstrained", "ipv6", "2001:db8::1", IN),
    ("unconstrained", "email", BANK_EMAIL, IN),
    ("unconstrained", "uri", OTHER_URI, IN),
]


@dataclass
class ShapedCA:
    ca: CertificateAuthority
    root: Path
    untrusted: Path | None
    signing_key: object
    has_uri_constraints: bool


@pytest.fixture(scope="module")
def shaped_cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ShapedCA]]:
    require_tool("openssl")
    base = tmp_path_factory.mktemp("constraint-shapes")
    made: dict[str, ShapedCA] = {}
    for label, (permitted, excluded, single_tier) in SHAPES.items():
        home = base / label
        ca = CertificateAuthority.init(
            home,
            f"Shape {label}",
            permitted=permitted,
            excluded=excluded,
            single_tier=single_tier,
            passphrase=None,  # a --no-passphrase home: the key is one read away
        )
        role = "root" if single_tier else "issuing"
        untrusted = (
            None
            if single_tier
            else write(base / f"{label}-issuing.pem", pem_certificate(ca.issuing))
        )
        made[label] = ShapedCA(
            ca=ca,
            root=ca.home.root_cert,
            untrusted=untrusted,
            signing_key=read_ca_key(ca.home.key_path(role), None),
            has_uri_constraints=bool(permitted or excluded),
        )
    yield made
    for shaped in made.values():
        shaped.ca.close()


def forge(shaped: ShapedCA, name: str) -> x509.Certificate:
    """A leaf signed with the CA's own key for exactly one name, bypassing every policy.

    Empty subject and a critical SAN, so no client can fall back to a CN; otherwise what a
    privca leaf carries (CA:FALSE, key usage, server+client EKU, SKI, AKI)."""
    issuer = shaped.ca.issuing
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([_general_name(name)]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(subject_key_identifier(issuer), None, None),
            critical=False,
        )
    )
    return builder.sign(shaped.signing_key, signature_hash_for(shaped.signing_key))  # type: ignore[arg-type]


def _general_name(name: str) -> x509.GeneralName:
    # Built directly, not through privca's parser: a thief uses no policy.
    if "://" in name:
        return x509.UniformResourceIdentifier(name)
    if "@" in name:
        return x509.RFC822Name(name)
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


NAME_FLAGS = {"dns": "-verify_hostname", "ipv4": "-verify_ip", "ipv6": "-verify_ip"}


def judge_openssl(shaped: ShapedCA, leaf: Path, kind: str, name: str) -> tuple[bool, str]:
    flag = {**NAME_FLAGS, "email": "-verify_email"}.get(kind)
    untrusted = ["-untrusted", str(shaped.untrusted)] if shaped.untrusted else []
    result = openssl(
        "verify",
        "-x509_strict",
        "-CAfile",
        str(shaped.root),
        *untrusted,
        *([flag, name] if flag else []),
        str(leaf),
    )
    return result.returncode == 0, result.stdout + result.stderr


def judge_cryptography(shaped: ShapedCA, leaf: x509.Certificate, kind: str, name: str) -> str:
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store([shaped.ca.root]))
        .time(dt.datetime.now(dt.UTC))
    )
    intermediates = [shaped.ca.issuing] if shaped.untrusted else []
    try:
        if kind in NAME_FLAGS:
            builder.build_server_verifier(_general_name(name)).verify(leaf, intermediates)  # type: ignore[arg-type]
        else:
            builder.build_client_verifier().verify(leaf, intermediates)
    except verification.VerificationError as exc:
        return str(exc)
    return "OK"


def judge_privca(shaped: ShapedCA, leaf: Path, kind: str, name: str, tmp_path: Path) -> dict:
    cli = Cli(shaped.ca.home.root, write(tmp_path / "unused", b"x\n", 0o600))
    result = cli("verify", str(leaf), *(["--name", name] if kind in NAME_FLAGS else []), "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    ("shape", "kind", "name", "inside"),
    [
        pytest.param(*case, id=f"{case[0]}-{case[1]}-{'in' if case[3] else 'out'}-{case[2]}")
        for case in CASES
    ],
)
def test_forged_leaf_is_judged_by_its_name(
    shaped_cas: dict[str, ShapedCA],
    tmp_path: Path,
    shape: str,
    kind: str,
    name: str,
    inside: bool,
) -> None:
    shaped = shaped_cas[shape]
    leaf = forge(shaped, name)
    path = write(tmp_path / "forged.crt", pem_certificate(leaf))

    openssl_ok, openssl_says = judge_openssl(shaped, path, kind, name)
    cryptography_says = judge_cryptography(shaped, leaf, kind, name)
    document = judge_privca(shaped, path, kind, name, tmp_path)

    if inside:
        assert openssl_ok, openssl_says
        if kind == "uri" and shaped.has_uri_constraints:
            # cryptography's known gap: it refuses every URI name under URI constraints.
            assert "unsupported name constraint" in cryptography_says
        else:
            assert cryptography_says == "OK", cryptography_says
        assert document["chain"] is True, document
    else:
        assert not openssl_ok, openssl_says
        assert "subtree violation" in openssl_says, openssl_says
        assert cryptography_says != "OK"
        assert document["chain"] is False, document
        assert document["ok"] is False
        assert any("name constraint" in p for p in document["problems"]), document


@pytest.mark.parametrize(
    ("shape", "names"),
    [
        ("dns-only", [CORP_DNS, CORP_EMAIL, CORP_URI]),
        ("dns-and-ipv4", [CORP_DNS, "10.1.2.3", "email:ops@corp.internal", CORP_URI]),
        ("dns-and-ipv4-single-tier", [CORP_DNS, CORP_URI]),
        ("permit-and-exclude", [CORP_DNS, CORP_URI]),
        ("ip-only", ["10.1.2.3", "fd00::5"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_issued_leaves_of_every_type_pass_openssl_and_privca_verify(
    shaped_cas: dict[str, ShapedCA], tmp_path: Path, shape: str, names: list[str]
) -> None:
    shaped = shaped_cas[shape]
    issued = shaped.ca.issue(names)
    path = write(tmp_path / "leaf.crt", issued.certificate_pem())
    chain = write(tmp_path / "chain.pem", pem_certificates(list(issued.chain)))
    first = parse_name(names[0]).value
    flag = "-verify_ip" if names[0][0].isdigit() else "-verify_hostname"
    result = openssl(
        "verify", "-x509_strict", "-CAfile", str(shaped.root), "-untrusted", str(chain),
        flag, first, str(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report, status = shaped.ca.verify(issued.certificate, name=first)
    assert report.ok and status == "valid", report.problems
    document = judge_privca(shaped, path, "dns", first, tmp_path)
    assert document["ok"] is True, document


@pytest.mark.parametrize(
    ("shape", "name"),
    [(c[0], c[2]) for c in CASES if not c[3]],
    ids=lambda v: v,
)
def test_privca_refuses_to_issue_every_forged_name(
    shaped_cas: dict[str, ShapedCA], shape: str, name: str
) -> None:
    from privca.errors import PolicyError

    text = f"email:{name}" if "@" in name and "://" not in name else name
    with pytest.raises(PolicyError):
        shaped_cas[shape].ca.issue([text])


def test_a_forged_uri_with_a_confusable_host_fails_privca_verify(
    shaped_cas: dict[str, ShapedCA], tmp_path: Path
) -> None:
    """A URI privca's strict parser refuses cannot be shown to be inside any URI subtree."""
    shaped = shaped_cas["dns-only"]
    leaf = forge(shaped, "https://evil.example\\@corp.internal/")
    path = write(tmp_path / "forged.crt", pem_certificate(leaf))
    document = judge_privca(shaped, path, "uri", "", tmp_path)
    assert document["chain"] is False, document
    assert any("URI name constraints" in p for p in document["problems"]), document
