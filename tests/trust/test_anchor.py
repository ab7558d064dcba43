"""Loading the root to distribute and naming it in every store."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from privca.errors import InputError
from privca.trust import build_slug, load_anchor, read_anchor
from tests.trust.support import TestCA, build_root


@pytest.mark.parametrize(
    ("common_name", "expected_prefix"),
    [
        ("Example Internal CA", "privca-example-internal-ca-"),
        ("privca Root CA", "privca-root-ca-"),
        ("Ünïcode & spaces / slashes", "privca-n-code-spaces-slashes-"),
        ("!!!", "privca-root-"),
        ("x" * 64, "privca-" + "x" * 40 + "-"),
    ],
    ids=["plain", "no-double-prefix", "punctuation", "nothing-left", "truncated"],
)
def test_slug_is_a_safe_file_and_alias_name(common_name: str, expected_prefix: str) -> None:
    cert, _ = build_root(common_name)
    slug = build_slug(cert)
    assert slug.startswith(expected_prefix)
    assert slug.endswith(f"{cert.serial_number:x}"[:8])
    assert slug == slug.lower() and all(c.isalnum() or c == "-" for c in slug)


def test_two_cas_with_the_same_name_get_different_slugs() -> None:
    first, _ = build_root("Same Name CA")
    second, _ = build_root("Same Name CA")
    assert build_slug(first) != build_slug(second)


def test_pem_and_der_give_the_same_anchor(root_ca: TestCA, tmp_path: Path) -> None:
    der_file = tmp_path / "root.der"
    der_file.write_bytes(root_ca.certificate.public_bytes(serialization.Encoding.DER))
    assert read_anchor(der_file).sha256 == read_anchor(root_ca.path).sha256


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no certificate|not a certificate"),
        (b"garbage\x00\x01", "not a certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "holds no cert"),
        ("leaf", "is not a CA certificate"),
        ("two", "holds 2 certificates"),
    ],
    ids=["empty", "binary-garbage", "a-key", "leaf-not-ca", "chain-not-root"],
)
def test_bad_root_files_are_input_errors(
    root_ca: TestCA, other_ca: TestCA, content: bytes | str, message: str
) -> None:
    if content == "leaf":
        content = root_ca.leaf_pem
    elif content == "two":
        content = root_ca.pem + other_ca.pem
    assert isinstance(content, bytes)
    with pytest.raises(InputError, match=message):
        load_anchor(content, "root.crt")


def test_missing_root_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as caught:
        read_anchor(tmp_path / "nope.crt")
    assert caught.value.exit_code == 2
