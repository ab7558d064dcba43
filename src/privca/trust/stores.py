"""Choosing the stores an install, uninstall or status works on."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from privca.errors import InputError
from privca.trust.base import Scope, TrustStore

STORE_NAMES = ("system", "nss", "java")


@dataclass(frozen=True)
class StoreOptions:
    """Where each store lives, when not where this machine keeps it."""

    system_root: Path = Path("/")
    nss_databases: tuple[Path, ...] = ()
    java_truststores: tuple[Path, ...] = ()
    scope: Scope = Scope.MACHINE
    home: Path = field(default_factory=Path.home)


def parse_store_names(text: str) -> tuple[str, ...]:
    """'system,nss' -> ('system', 'nss'), in the order given, refusing unknown names."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in STORE_NAMES]
    if unknown or not names:
        raise InputError(
            f"unknown trust store {', '.join(repr(n) for n in unknown) or repr(text)}",
            f"choose from: {','.join(STORE_NAMES)}",
        )
    return names


def system_store(options: StoreOptions, platform: str = sys.platform) -> TrustStore:
    if platform == "darwin":
        from privca.trust.macos import MacSystemStore

        return MacSystemStore(options.scope, options.home)
    if platform == "win32":
        from privca.trust.windows import WindowsSystemStore

        return WindowsSystemStore(options.scope)
    if options.scope is Scope.USER:
        raise InputError(
            "--scope user applies to macOS and Windows; Linux has only a machine-wide store",
            "drop --scope user, or use --stores nss for a user's browsers",
        )
    from privca.trust.linux import LinuxSystemStore

    return LinuxSystemStore(options.system_root)


def build_stores(names: Sequence[str], options: StoreOptions) -> list[TrustStore]:
    stores: list[TrustStore] = []
    for name in names:
        if name == "system":
            stores.append(system_store(options))
        elif name == "nss":
            from privca.trust.nss import NssStore

            stores.append(NssStore(options.nss_databases, options.home))
        elif name == "java":
            from privca.trust.java import JavaStore

            stores.append(JavaStore(options.java_truststores))
    return stores
