"""Putting the CA's root into client trust stores, and telling the truth about where it is.

Works on a client machine with no CA: nothing here imports the authority, the inventory,
the policy or the CA keys (an import-linter contract enforces it).
"""

from __future__ import annotations

from pathlib import Path

from privca.home import CAHome, read_input_file
from privca.trust.base import (
    Outcome,
    Presence,
    Result,
    Scope,
    StoreReport,
    TrustAnchor,
    TrustStore,
    build_slug,
    load_anchor,
)
from privca.trust.stores import STORE_NAMES, StoreOptions, build_stores, parse_store_names


def read_anchor(path: Path) -> TrustAnchor:
    """The CA certificate in `path` (PEM or DER); InputError for anything else."""
    data = read_input_file(path, "root certificate")
    return load_anchor(data, f"root certificate '{path}'", path.absolute())


def read_home_anchor(home: Path) -> TrustAnchor:
    """The root of the CA in `home` (certs/root.crt)."""
    from privca.errors import InputError

    root_cert = CAHome(home).root_cert
    if not root_cert.exists():
        raise InputError(
            f"no CA root certificate at '{root_cert}'",
            "pass the root certificate file (privca trust install ROOT.crt) "
            "or --home pointing at a CA made by privca init",
        )
    return read_anchor(root_cert)


def read_home_anchors(home: Path) -> list[TrustAnchor]:
    """Every root of the CA in `home` that clients should trust now, oldest first: during a
    root rollover the old root (certs/previous-root.crt) and the new one (certs/root.crt)."""
    anchors = [read_home_anchor(home)]
    previous = CAHome(home).previous_root_cert
    if previous.exists():
        anchors.insert(0, read_anchor(previous))
    return anchors


__all__ = [
    "STORE_NAMES",
    "Outcome",
    "Presence",
    "Result",
    "Scope",
    "StoreOptions",
    "StoreReport",
    "TrustAnchor",
    "TrustStore",
    "build_slug",
    "build_stores",
    "load_anchor",
    "parse_store_names",
    "read_anchor",
    "read_home_anchor",
    "read_home_anchors",
]
