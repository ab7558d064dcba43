"""The macOS keychains, through `security`.

The argv builders are pure so they can be tested anywhere; the store runs them on macOS.
Changing trust settings needs an administrator's password typed interactively (macOS 11+
refuses it even to root over SSH), so fleets should push the .mobileconfig from
`privca trust bundle --format mobileconfig` through their MDM instead.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from privca.trust.base import (
    Outcome,
    Presence,
    Result,
    Scope,
    Step,
    StoreReport,
    TrustAnchor,
    carry_out,
)
from privca.trust.commands import command_step, file_command_step, run, with_sudo

STORE = "system"
SECURITY = "/usr/bin/security"
SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
ADMIN_NOTE = (
    "macOS asks for an administrator's password to change trust settings; on managed Macs "
    "deploy `privca trust bundle --format mobileconfig` through MDM instead"
)
_HASH_LINE = re.compile(r"^SHA-(?:1|256) hash: ([0-9A-Fa-f]+)\s*$", re.MULTILINE)


def keychain(scope: Scope, home: Path) -> str:
    if scope is Scope.MACHINE:
        return SYSTEM_KEYCHAIN
    return str(home / "Library/Keychains/login.keychain-db")


def build_add_argv(cert_file: Path, scope: Scope, home: Path) -> list[str]:
    """Trust as a root for every purpose; -d writes the admin (machine-wide) trust domain."""
    domain = ["-d"] if scope is Scope.MACHINE else []
    return [
        SECURITY,
        "add-trusted-cert",
        *domain,
        "-r",
        "trustRoot",
        "-k",
        keychain(scope, home),
        str(cert_file),
    ]


def build_find_argv(scope: Scope, home: Path) -> list[str]:
    return [SECURITY, "find-certificate", "-a", "-Z", keychain(scope, home)]


def build_remove_trust_argv(cert_file: Path, scope: Scope) -> list[str]:
    domain = ["-d"] if scope is Scope.MACHINE else []
    return [SECURITY, "remove-trusted-cert", *domain, str(cert_file)]


def build_delete_argv(anchor: TrustAnchor, scope: Scope, home: Path) -> list[str]:
    return [SECURITY, "delete-certificate", "-Z", anchor.sha1.hex().upper(), keychain(scope, home)]


def keychain_holds(find_output: str, anchor: TrustAnchor) -> bool:
    hashes = {h.lower() for h in _HASH_LINE.findall(find_output)}
    return anchor.sha1.hex() in hashes or anchor.sha256.hex() in hashes


@dataclass(frozen=True)
class MacSystemStore:
    scope: Scope = Scope.MACHINE
    home: Path = field(default_factory=Path.home)
    name: str = STORE

    def available(self) -> bool:
        return sys.platform == "darwin" and Path(SECURITY).exists()

    def _location(self) -> str:
        return f"{keychain(self.scope, self.home)} ({self.scope.value})"

    def _holds(self, anchor: TrustAnchor) -> bool:
        completed = run(build_find_argv(self.scope, self.home))
        return keychain_holds(completed.stdout.decode("utf-8", "replace"), anchor)

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        if not self.available():
            return [StoreReport(STORE, "macOS keychain", Presence.NOT_HERE, "not macOS")]
        presence = Presence.PRESENT if self._holds(anchor) else Presence.ABSENT
        probe = "security find-certificate -a -Z, compared the SHA-1/SHA-256 hashes"
        return [StoreReport(STORE, self._location(), presence, probe)]

    def _file_step(self, anchor: TrustAnchor, build: Callable[[Path], list[str]]) -> Step:
        return file_command_step(
            anchor.der,
            f"{anchor.slug}.cer",
            build,
            privileged=self.scope is Scope.MACHINE,
            hint="run it in a local Terminal session as an administrator",
        )

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        if self._holds(anchor):
            return [Outcome(STORE, self._location(), Result.ALREADY_INSTALLED)]
        step = self._file_step(anchor, lambda p: build_add_argv(p, self.scope, self.home))
        return [
            carry_out(
                STORE, self._location(), [step], Result.INSTALLED, dry_run=dry_run, note=ADMIN_NOTE
            )
        ]

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        if not self._holds(anchor):
            return [Outcome(STORE, self._location(), Result.NOT_INSTALLED)]
        delete = build_delete_argv(anchor, self.scope, self.home)
        steps = [
            self._file_step(anchor, lambda p: build_remove_trust_argv(p, self.scope)),
            command_step(with_sudo(delete, self.scope is Scope.MACHINE)),
        ]
        return [carry_out(STORE, self._location(), steps, Result.REMOVED, dry_run=dry_run)]
