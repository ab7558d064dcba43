"""The registry: one immutable snapshot of the CA certificates, parsed once, answering
which CA is active, which chain a leaf needs and which CAs publish."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from privca.errors import NotFound
from privca.registry import CaRole, Registry
from privca.x509.encoding import public_key_der, serial_hex


def test_every_certificate_is_parsed_once(ca: CertificateAuthority) -> None:
    registry = ca.registry
    assert [a.role for a in registry.authorities] == ["root", "issuing"]
    for entry in registry.authorities:
        assert entry.certificate.public_bytes(Encoding.DER) == entry.der
        assert entry.public_key == public_key_der(entry.certificate.public_key())
    assert ca.registry is registry  # the same snapshot until refresh()
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.authorities = ()  # type: ignore[misc]
    ca.refresh()
    assert ca.registry is not registry


def test_chains_follow_the_issuer(ca: CertificateAuthority) -> None:
    first = ca.issuing_record()
    assert ca.chain == (ca.issuing, ca.root)
    new = ca.rotate_issuing()
    registry = ca.registry
    assert registry.issuing.certificate == new
    assert registry.chain == (new, ca.root)
    assert registry.chain_of(registry.by_id(first.id)) == (first.certificate, ca.root)
    reissued = ca.reissue_root(days=4000)
    registry = ca.registry
    # The re-issued root has the old one's subject and key identifier: every issuing CA
    # now chains to it, the active one.
    assert registry.chain == (new, reissued)
    assert registry.chain_of(registry.by_id(first.id))[-1] == reissued
    assert len(registry.by_key_identifier(registry.root.key_identifier)) == 2


def test_a_single_tier_chain_is_the_root_alone(make_ca: Callable[..., CertificateAuthority]):
    ca = make_ca(single_tier=True)
    assert ca.registry.issuing == ca.registry.root
    assert ca.chain == (ca.root,)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("root", "root"),
        ("ROOT", "root"),
        ("issuing", "issuing"),
        ("current", "issuing"),
        ("issuing.crl", "issuing"),
        ("by-serial", "issuing"),
        ("ffff", None),
        ("", None),
    ],
    ids=lambda value: str(value),
)
def test_select_by_alias_or_serial(ca: CertificateAuthority, name: str, expected: str | None):
    if name == "by-serial":
        name = serial_hex(ca.issuing_record().serial)
    found = ca.registry.select(name)
    assert (found.role if found else None) == expected


def test_publishing_cas(make_ca: Callable[..., CertificateAuthority]) -> None:
    single = make_ca(single_tier=True)
    assert [a.role for a in single.publishing_authorities()] == ["root"]
    single.issue(["a.corp.internal"])
    single.rotate_issuing()
    # The root signed a leaf before the rotation: it keeps publishing for it.
    assert [a.role for a in single.publishing_authorities()] == ["root", "issuing"]
    two = make_ca()
    assert [a.role for a in two.publishing_authorities()] == ["issuing"]


def test_lookups(ca: CertificateAuthority) -> None:
    registry = ca.registry
    issuing = ca.issuing_record()
    assert registry.by_serial(issuing.serial) == issuing
    assert registry.by_id(issuing.id) == issuing
    assert registry.by_public_key(public_key_der(ca.issuing.public_key())) == issuing
    assert registry.by_public_key(b"not a key") is None
    assert registry.active(CaRole.ROOT) == registry.root
    assert registry.issuer_of(registry.root) is None
    assert registry.issuer_of(issuing) == registry.root


def test_an_empty_registry_has_no_root() -> None:
    with pytest.raises(NotFound, match="no root CA"):
        _ = Registry().root


def test_a_rollover_with_a_reverse_cross_keeps_each_hierarchy_on_its_own_root(
    ca: CertificateAuthority,
) -> None:
    """The reverse cross-certificate shares the old root's subject and key identifier, as
    the cross-certificate shares the new root's: neither becomes the parent of a chain,
    and /crl/root.crl stays the old root's until the rollover ends."""
    old_root, old_issuing = ca.registry.root, ca.registry.issuing
    rollover = ca.rollover_root(reverse_cross=True)
    registry = ca.registry
    assert [a.role for a in registry.authorities] == [
        "root", "issuing", "root", "cross", "reverse-cross", "issuing",
    ]  # fmt: skip
    assert [c.certificate for c in registry.crosses] == [rollover.cross, rollover.reverse_cross]
    before = registry.by_id(old_issuing.id)
    assert before is not None
    assert registry.chain_of(before) == (old_issuing.certificate, old_root.certificate)
    assert registry.chain[-1] == rollover.root
    previous = registry.previous_root
    assert previous is not None and previous.id == old_root.id
    assert registry.root_crl_alias.id == old_root.id
    assert registry.select("root") == registry.root  # /ca/root.crt: the new root
    ca.retire_old_root(force=True)
    registry = ca.registry
    assert registry.crosses == [] and registry.reverse_cross is None
    assert registry.root_crl_alias == registry.root
