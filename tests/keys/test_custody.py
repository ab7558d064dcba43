"""Key custody: keys generated, kept, loaded and checked in one place; secrets asked for
when a key is unlocked and kept by nobody afterwards."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from privca.authority import CertificateAuthority
from privca.errors import KeyUnavailable, WrongPassphrase
from privca.home import CAHome, make_private_directory
from privca.keys.custody import FileCustody, HomeCustody, check_key_matches
from privca.keys.types import KeyType
from tests.conftest import PASSPHRASE


def _objects(root: object, depth: int = 4) -> Iterator[object]:
    """`root` and what its attributes hold, a few levels down (not into functions)."""
    seen: set[int] = set()
    stack = [(root, 0)]
    while stack:
        item, level = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if level >= depth or (callable(item) and not hasattr(item, "__dict__")):
            continue
        children: list[object] = []
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            children = list(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            children = list(vars(item).values())
        stack += [(child, level + 1) for child in children]


def test_a_passphrase_is_asked_per_unlock_and_kept_by_nobody(ca: CertificateAuthority) -> None:
    """What `privca serve` relies on: after start-up it holds unlocked signers; the
    passphrase was asked for (file or environment read again) and dropped."""
    asked: list[int] = []

    def source() -> bytes:
        asked.append(1)
        return PASSPHRASE

    opened = CertificateAuthority.open(ca.home.root, source)
    assert asked == []
    opened.issue(["a.corp.internal"])
    opened.issue(["b.corp.internal"])  # the issuing CA's signer is held: not asked again
    assert asked == [1]
    opened.sign_crl(opened.registry.root)
    assert asked == [1, 1]  # the root key, unlocked when it was needed
    held = [o for o in _objects(opened) if isinstance(o, bytes | bytearray) and o == PASSPHRASE]
    assert held == []
    opened.close()


def test_rotation_writes_the_new_key_with_the_passphrase_asked_again(
    ca: CertificateAuthority,
) -> None:
    asked: list[int] = []

    def source() -> bytes:
        asked.append(1)
        return PASSPHRASE

    opened = CertificateAuthority.open(ca.home.root, source)
    new = opened.rotate_issuing()
    assert len(asked) == 2  # the root key to sign, then the new key file to encrypt
    key_file = opened.key_file(opened.issuing_record())
    assert key_file is not None and stat.S_IMODE(key_file.stat().st_mode) == 0o400
    reopened = CertificateAuthority.open(ca.home.root, PASSPHRASE)
    assert reopened.signer(reopened.issuing_record()).certificate == new
    reopened.close()
    opened.close()


def test_a_key_that_does_not_match_its_certificate_is_refused(
    make_ca: Callable[..., CertificateAuthority],
) -> None:
    first, second = make_ca(), make_ca()
    foreign = second.key_file(second.issuing_record())
    own = first.key_file(first.issuing_record())
    assert foreign is not None and own is not None
    os.chmod(own, 0o600)
    own.write_bytes(foreign.read_bytes())
    os.chmod(own, 0o400)
    reopened = CertificateAuthority.open(first.home.root, PASSPHRASE)
    with pytest.raises(KeyUnavailable, match="does not match the issuing certificate"):
        reopened.issue(["a.corp.internal"])
    assert reopened.inventory.count() == 0
    reopened.close()


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_file_custody_keeps_what_it_generates(tmp_path: Path, key_type: KeyType) -> None:
    home = CAHome(tmp_path / "home")
    home.root.mkdir(mode=0o700)
    make_private_directory(home.private)
    custody = FileCustody(home, PASSPHRASE, encrypted=True)
    generated = custody.generate(key_type, "issuing", "issuing-test")
    assert generated.key_ref == "private/issuing-test.key"
    path = custody.keep(generated)
    assert path == home.root / generated.key_ref
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    loaded = custody.load(generated.key_ref)
    assert loaded.public_key() == generated.private_key.public_key()
    with pytest.raises(WrongPassphrase):
        FileCustody(home, b"not the passphrase", encrypted=True).load(generated.key_ref)


def test_the_custody_of_a_reference_is_decided_in_one_place(tmp_path: Path) -> None:
    """A pkcs11: URI goes to the token custody (which needs a module), anything else is a
    file under the home; only the home's custody decides."""
    custody = HomeCustody(CAHome(tmp_path / "home"), passphrase=PASSPHRASE)
    assert custody.key_file("private/root.key") == tmp_path / "home" / "private" / "root.key"
    assert custody.key_file("pkcs11:token=t;object=privca-root-1") is None
    assert custody.is_present("pkcs11:token=t;object=privca-root-1")
    assert not custody.is_present("private/root.key")
    with pytest.raises(KeyUnavailable, match="names no hsm_module"):
        custody.load("pkcs11:token=t;object=privca-root-1")


def test_the_match_check_compares_public_keys(ca: CertificateAuthority) -> None:
    root = ca.registry.root
    issuing = ca.issuing_record()
    key = ca.signer(issuing).private_key
    check_key_matches(key, issuing.certificate, issuing.key_ref, "issuing")
    with pytest.raises(KeyUnavailable, match="root certificate"):
        check_key_matches(key, root.certificate, root.key_ref, "root")
    assert isinstance(issuing.certificate, x509.Certificate)
