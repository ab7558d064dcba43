"""Named issuers (privca/issuers.py): two issuers with disjoint constraints under one root,
each signing only its own names, each with its own CRL; constraints outside the root's,
reserved or hostile names, a disabled issuer and a profile it does not issue are refused
before anything is written; renewal keeps the issuer; rotation keeps the name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca import CertificateAuthority
from privca.errors import AlreadyExists, InputError, NotFound, PolicyError
from privca.issuers import NewIssuer
from privca.x509.encoding import pem_certificate, pem_certificates
from tests.conftest import PASSPHRASE, openssl, tree_snapshot
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture
def corp(make_ca: Callable[..., CertificateAuthority]) -> CertificateAuthority:
    """A CA whose root permits corp.internal and 10.0.0.0/8, with team-a and team-b."""
    ca = make_ca(permitted=["corp.internal", "10.0.0.0/8"])
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal", "10.1.0.0/16"]))
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"], profiles=["server"]))
    return ca


def _strict_verify(ca: CertificateAuthority, leaf: x509.Certificate, tmp: Path) -> str:
    """openssl verify -x509_strict of `leaf` against the root, with its issuing CA."""
    record = ca.certificate_by_serial(leaf.serial_number)
    assert record is not None
    chain = ca.chain_of(record)
    root = tmp / "root.pem"
    root.write_bytes(pem_certificate(chain[-1]))
    untrusted = tmp / "untrusted.pem"
    untrusted.write_bytes(pem_certificates(list(chain[:-1])))
    leaf_file = tmp / "leaf.pem"
    leaf_file.write_bytes(pem_certificate(leaf))
    done = openssl(
        "verify",
        "-x509_strict",
        "-CAfile",
        str(root),
        "-untrusted",
        str(untrusted),
        str(leaf_file),
    )
    return done.stdout + done.stderr


def _issuer_name(ca: CertificateAuthority, certificate: x509.Certificate) -> str | None:
    record = ca.certificate_by_serial(certificate.serial_number)
    assert record is not None
    return ca.registry.issuer_name_of(ca.issuer_of(record))


def test_the_first_issuer_of_a_home_is_main_and_the_default(ca: CertificateAuthority) -> None:
    [main] = ca.issuers()
    assert (main.name, main.default, main.disabled) == ("main", True, False)
    assert ca.registry.issuing_of("main") == ca.registry.issuing
    issued = ca.issue(["svc.example.internal"])
    assert _issuer_name(ca, issued.certificate) == "main"


def test_two_issuers_each_sign_their_own_names_only(
    corp: CertificateAuthority, tmp_path: Path
) -> None:
    a = corp.issue(["web.a.corp.internal", "10.1.2.3"], issuer="team-a")
    b = corp.issue(["web.b.corp.internal"], issuer="team-b", profile="server")
    assert a.certificate.issuer != b.certificate.issuer
    assert (_issuer_name(corp, a.certificate), _issuer_name(corp, b.certificate)) == (
        "team-a",
        "team-b",
    )
    for leaf in (a.certificate, b.certificate):
        assert _strict_verify(corp, leaf, tmp_path).strip().endswith("OK")
    with pytest.raises(PolicyError, match=r"outside the permitted DNS subtrees: a\.corp\.internal"):
        corp.issue(["web.b.corp.internal"], issuer="team-a")
    with pytest.raises(PolicyError, match="outside the permitted"):
        corp.issue(["web.a.corp.internal"], issuer="team-b", profile="server")
    with pytest.raises(PolicyError, match="outside the permitted networks"):
        corp.issue(["web.a.corp.internal", "10.2.0.1"], issuer="team-a")


def test_an_issuers_ca_certificate_carries_its_constraints(corp: CertificateAuthority) -> None:
    issuing = corp.registry.issuing_of("team-b").certificate
    constraints = issuing.extensions.get_extension_for_class(x509.NameConstraints).value
    dns = [g.value for g in constraints.permitted_subtrees or () if isinstance(g, x509.DNSName)]
    assert dns == ["b.corp.internal"]
    # A leaf for another team's name, signed with team-b's key behind privca's back, fails
    # at any client that checks constraints (the certificate, not only privca, binds it).
    assert corp.registry.issuing_of("team-a").certificate.subject != issuing.subject


@pytest.mark.parametrize(
    ("permit", "reason"),
    [
        pytest.param("example.com", "outside the permitted DNS subtrees", id="other-domain"),
        pytest.param("internal", "outside the permitted DNS subtrees", id="parent-domain"),
        pytest.param("11.0.0.0/8", "outside the permitted networks", id="other-network"),
        pytest.param("10.0.0.0/7", "outside the permitted networks", id="wider-network"),
    ],
)
def test_constraints_outside_the_roots_are_refused_and_nothing_is_written(
    corp: CertificateAuthority, permit: str, reason: str
) -> None:
    before = tree_snapshot(corp.home.root)
    authorities = len(corp.registry.authorities)
    with pytest.raises(PolicyError, match=reason) as raised:
        corp.create_issuer(NewIssuer("team-c", permitted=[permit]))
    assert "root's name constraints" in raised.value.message
    corp.refresh()
    assert len(corp.registry.authorities) == authorities
    assert [i.name for i in corp.issuers()] == ["main", "team-a", "team-b"]
    after = tree_snapshot(corp.home.root)
    assert {k for k in after if not k.startswith("privca.db")} == {
        k for k in before if not k.startswith("privca.db")
    }


def test_an_excluded_subtree_of_the_root_stays_out_of_reach(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    ca = make_ca(permitted=["corp.internal"], excluded=["secret.corp.internal"])
    with pytest.raises(PolicyError, match="excluded"):
        ca.create_issuer(NewIssuer("spy", permitted=["x.secret.corp.internal"]))
    ca.create_issuer(NewIssuer("wide", permitted=["corp.internal"]))
    with pytest.raises(PolicyError, match="excluded"):
        ca.issue(["db.secret.corp.internal"], issuer="wide")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("Team-A", "not a lowercase", id="capitals"),
        pytest.param("-a", "not a lowercase", id="leading-hyphen"),
        pytest.param("a" * 64, "not a lowercase", id="too-long"),
        pytest.param("a/../b", "not a lowercase", id="path"),
        pytest.param("a\x1b[31mred", "\\x1b", id="escape-sequence"),
        pytest.param("directory", "reserved", id="acme-path"),
        pytest.param("new-order", "reserved", id="acme-new-order"),
        pytest.param("server", "reserved", id="profile"),
        pytest.param("current", "reserved", id="crl-alias"),
        pytest.param("audit", "reserved", id="ca-file-audit"),
        pytest.param("roots", "reserved", id="ca-file-roots"),
        pytest.param("chain", "reserved", id="ca-file-chain"),
        pytest.param("root", "reserved", id="root-alias"),
        pytest.param("cafe01", "serial number", id="serial-like"),
    ],
)
def test_bad_issuer_names_are_refused(corp: CertificateAuthority, name: str, fragment: str) -> None:
    with pytest.raises(InputError) as raised:
        corp.create_issuer(NewIssuer(name, permitted=["c.corp.internal"]))
    assert fragment in raised.value.message
    assert "\x1b" not in raised.value.message


def test_an_issuer_name_is_taken_once(corp: CertificateAuthority) -> None:
    with pytest.raises(AlreadyExists):
        corp.create_issuer(NewIssuer("team-a"))
    with pytest.raises(NotFound):
        corp.issue(["x.a.corp.internal"], issuer="team-z")


def test_a_disabled_issuer_refuses_new_certificates_but_keeps_its_crl(
    corp: CertificateAuthority,
) -> None:
    issued = corp.issue(["web.a.corp.internal"], issuer="team-a")
    assert corp.disable_issuer("team-a") is True
    assert corp.disable_issuer("team-a") is False
    count = corp.inventory.count()
    with pytest.raises(PolicyError, match="disabled"):
        corp.issue(["web2.a.corp.internal"], issuer="team-a")
    with pytest.raises(PolicyError, match="disabled"):
        corp.renew("web.a.corp.internal")
    assert corp.inventory.count() == count
    corp.revoke(format(issued.serial, "x"), "keyCompromise")
    crl = corp.crl(corp.registry.issuing_of("team-a"))
    assert crl.get_revoked_certificate_by_serial_number(issued.serial) is not None
    assert corp.disable_issuer("team-a", disabled=False) is True
    corp.issue(["web2.a.corp.internal"], issuer="team-a")


def test_the_default_issuer_cannot_be_disabled_and_a_disabled_one_not_made_default(
    corp: CertificateAuthority,
) -> None:
    with pytest.raises(PolicyError, match="default issuer"):
        corp.disable_issuer("main")
    corp.disable_issuer("team-b")
    with pytest.raises(PolicyError, match="disabled"):
        corp.set_default_issuer("team-b")
    corp.set_default_issuer("team-a")
    assert [i.name for i in corp.issuers() if i.default] == ["team-a"]
    issued = corp.issue(["api.a.corp.internal"])
    assert _issuer_name(corp, issued.certificate) == "team-a"
    with pytest.raises(PolicyError, match="outside the permitted"):
        corp.issue(["api.corp.internal"])  # the default's constraints apply


def test_an_issuer_refuses_a_profile_it_does_not_issue(corp: CertificateAuthority) -> None:
    count = corp.inventory.count()
    with pytest.raises(PolicyError, match="does not issue profile 'client'"):
        corp.issue(["c.b.corp.internal"], issuer="team-b", profile="client")
    assert corp.inventory.count() == count


def test_renewal_keeps_the_issuer_even_after_it_rotated(corp: CertificateAuthority) -> None:
    issued = corp.issue(["app.a.corp.internal"], issuer="team-a")
    old_ca = corp.registry.issuing_of("team-a")
    corp.rotate_issuing(issuer="team-a")
    new_ca = corp.registry.issuing_of("team-a")
    assert new_ca.id != old_ca.id and new_ca.issuer == "team-a"
    # The other issuers' CAs stay active: rotation replaces only its own issuer's.
    assert corp.registry.issuing_of("team-b").active
    assert corp.registry.issuing_of("main").active
    renewed = corp.renew(format(issued.serial, "x"))
    assert _issuer_name(corp, renewed.certificate) == "team-a"
    assert renewed.certificate.issuer == new_ca.certificate.subject
    # The old issuing CA still publishes for what it signed.
    assert old_ca.id in {a.id for a in corp.publishing_authorities()}


def test_renew_with_an_issuer_moves_the_certificate(corp: CertificateAuthority) -> None:
    issued = corp.issue(["mv.a.corp.internal"])
    assert _issuer_name(corp, issued.certificate) == "main"
    moved = corp.renew(format(issued.serial, "x"), issuer="team-a")
    assert _issuer_name(corp, moved.certificate) == "team-a"


def test_each_issuer_has_its_own_crl(corp: CertificateAuthority, tmp_path: Path) -> None:
    a = corp.issue(["r.a.corp.internal"], issuer="team-a")
    b = corp.issue(["r.b.corp.internal"], issuer="team-b", profile="server")
    corp.revoke(format(a.serial, "x"), "keyCompromise")
    for name, leaf, listed in (("team-a", a, True), ("team-b", b, False)):
        issuing = corp.registry.issuing_of(name)
        crl = corp.crl(issuing)
        assert crl.issuer == issuing.certificate.subject
        path = tmp_path / f"{name}.crl"
        path.write_bytes(crl.public_bytes(Encoding.PEM))
        ca_file = tmp_path / f"{name}.pem"
        ca_file.write_bytes(pem_certificate(issuing.certificate))
        done = openssl("crl", "-in", str(path), "-CAfile", str(ca_file), "-noout", "-text")
        assert "verify OK" in done.stderr + done.stdout
        assert (format(leaf.serial, "X") in done.stdout.replace(":", "")) is listed


def test_the_registry_selects_an_issuers_ca_by_name(corp: CertificateAuthority) -> None:
    assert corp.authority_by_serial("team-b") == corp.registry.issuing_of("team-b")
    assert corp.authority_by_serial("team-b.crl") == corp.registry.issuing_of("team-b")
    assert corp.authority_by_serial("current") == corp.registry.issuing_of("main")


def test_a_single_tier_homes_main_issuer_is_its_root(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    ca = make_ca(single_tier=True, permitted=["corp.internal"])
    assert ca.registry.issuing_of("main") == ca.registry.root
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
    assert ca.registry.issuing_of("main") == ca.registry.root
    issued = ca.issue(["x.a.corp.internal"], issuer="team-a")
    assert _issuer_name(ca, issued.certificate) == "team-a"


def test_a_root_rollover_gives_each_enabled_issuer_a_new_issuing_ca(
    corp: CertificateAuthority, tmp_path: Path
) -> None:
    old_root = corp.registry.root.certificate
    before = corp.issue(["old.a.corp.internal"], issuer="team-a")
    corp.disable_issuer("team-b")
    old_b = corp.registry.issuing_of("team-b")
    rollover = corp.rollover_root()
    assert dict(rollover.issuers).keys() == {"main", "team-a"}
    new_root = corp.registry.root.certificate
    for team in ("main", "team-a"):
        entry = corp.registry.issuing_of(team)
        assert entry.certificate.issuer == new_root.subject, team
    # The disabled issuer keeps its old CA, which keeps publishing for what it signed.
    assert corp.registry.issuing_of("team-b") == old_b
    # team-a's new CA carries team-a's constraints, not the root's.
    constraints = (
        corp.registry.issuing_of("team-a")
        .certificate.extensions.get_extension_for_class(x509.NameConstraints)
        .value
    )
    assert [
        g.value for g in constraints.permitted_subtrees or () if isinstance(g, x509.DNSName)
    ] == ["a.corp.internal"]
    # A new team-a leaf chains to the new root, and through the cross-certificate to the old.
    issued = corp.issue(["new.a.corp.internal"], issuer="team-a")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(issued.chain_pem())
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.certificate_pem())
    for anchor in (old_root, new_root):
        trusted = tmp_path / "anchor.pem"
        trusted.write_bytes(pem_certificate(anchor))
        done = openssl(
            "verify", "-x509_strict", "-CAfile", str(trusted), "-untrusted", str(chain), str(leaf)
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # rotate status counts what still depends on the old root, per issuer.
    status = corp.rollover_status()
    by_issuer = dict(status.old_leaves_by_issuer)
    assert by_issuer["team-a"] >= 1
    assert sum(by_issuer.values()) == status.old_leaves
    # Renewing a pre-rollover team-a leaf moves it to team-a's new CA.
    renewed = corp.renew(format(before.serial, "x"))
    assert renewed.certificate.issuer == corp.registry.issuing_of("team-a").certificate.subject


@pytest.mark.postgres
def test_the_core_invariants_hold_on_postgresql(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ca = make_ca(store_url=postgres_url, permitted=["corp.internal"])
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"]))
    with pytest.raises(PolicyError, match="root's name constraints"):
        ca.create_issuer(NewIssuer("team-c", permitted=["example.com"]))
    a = ca.issue(["x.a.corp.internal"], issuer="team-a")
    with pytest.raises(PolicyError, match="outside the permitted"):
        ca.issue(["x.b.corp.internal"], issuer="team-a")
    assert _strict_verify(ca, a.certificate, tmp_path).strip().endswith("OK")
    ca.rotate_issuing(issuer="team-a")
    renewed = ca.renew(format(a.serial, "x"))
    assert _issuer_name(ca, renewed.certificate) == "team-a"
    ca.disable_issuer("team-b")
    with pytest.raises(PolicyError, match="disabled"):
        ca.issue(["y.b.corp.internal"], issuer="team-b")
    # Another process sees the same issuers, default and disabled flags.
    reopened = CertificateAuthority.open(ca.home.root, PASSPHRASE)
    try:
        assert [(i.name, i.default, i.disabled) for i in reopened.issuers()] == [
            ("main", True, False),
            ("team-a", False, False),
            ("team-b", False, True),
        ]
    finally:
        reopened.close()


def test_the_home_files_follow_the_default_issuer(corp: CertificateAuthority) -> None:
    """docs/issuers.md: certs/issuing.crt and certs/chain.pem are the default issuer's.
    After `issuer default team-a` they stayed main's, while `export chain` gave team-a's."""
    from cryptography.hazmat.primitives.serialization import Encoding as Enc

    main_issuing = corp.home.issuing_cert.read_bytes()
    corp.set_default_issuer("team-a")
    team_a = corp.registry.issuing
    assert corp.home.issuing_cert.read_bytes() == team_a.certificate.public_bytes(Enc.PEM)
    assert corp.home.issuing_cert.read_bytes() != main_issuing
    assert corp.home.chain.read_bytes() == pem_certificates(list(corp.chain))
    corp.set_default_issuer("main")
    assert corp.home.issuing_cert.read_bytes() == main_issuing
