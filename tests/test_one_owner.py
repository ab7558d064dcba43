"""Rules with one owner each, checked on the source: the store is the authority layer's,
token references are custody's, certificate status is store/status.py's.

(The import side of "the store is private" is an import-linter contract in
pyproject.toml, run by tests/test_codebase.py; this file covers what imports cannot show.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "privca"
AUTHORITY_LAYER = {
    "authority.py",
    "authority_core.py",
    "authority_records.py",
    "establishment.py",
    "issuance.py",
    "rotation.py",
    "publication.py",
    "registry.py",
}


def _modules(*, outside: set[str] = frozenset(), skip_packages: tuple[str, ...] = ()):
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative in outside or relative.startswith(skip_packages):
            continue
        yield relative, ast.parse(path.read_text(encoding="utf-8"))


def test_nothing_outside_the_authority_layer_reaches_a_cas_store() -> None:
    """`ca.store`, `authority.store`, `self._ca.store`: the back door is closed. (acme/ may
    not import privca.store or privca.authority at all: its own import contract.)"""
    found = []
    for relative, tree in _modules(outside=AUTHORITY_LAYER, skip_packages=("store/", "acme/")):
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr in ("store", "_store")):
                continue
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in ("ca", "_ca", "authority", "_authority"):
                found.append(f"{relative}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize("literal", ["pkcs11:"], ids=["token-reference"])
def test_token_references_are_tested_by_custody_alone(literal: str) -> None:
    """One place tells a key on a token from a key file: keys/custody.py (and the
    PKCS#11 module that writes the URIs)."""
    found = []
    owners = {"keys/custody.py", "keys/pkcs11.py"}
    for relative, tree in _modules(outside=owners):
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and text.startswith(literal):
                found.append(f"{relative}:{node.lineno}")
    assert found == []


def test_statuses_are_not_spelled_out_as_lists_elsewhere() -> None:
    """A list of certificate statuses written out by hand is a second owner of status."""
    statuses = {"valid", "superseded", "revoked", "expired"}
    found = []
    for relative, tree in _modules(skip_packages=("store/status.py", "acme/")):
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple | ast.Set):
                values = {
                    e.value
                    for e in node.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                }
                if len(values & statuses) >= 3:
                    found.append(f"{relative}:{node.lineno}")
    assert found == []


def test_the_audit_encoding_has_one_owner() -> None:
    """store/auditlog.py alone encodes and hashes audit entries: no other module spells
    the hash's domain string or the entry's field set out again."""
    found = []
    for relative, tree in _modules(outside={"store/auditlog.py"}):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
                value = node.value
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                if "privca-audit-v1" in text:
                    found.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"prev", "seq", "actor", "action"} <= keys:
                    found.append(f"{relative}:{node.lineno}")
    assert found == []
