"""The Windows certificate store's Trusted Root Certification Authorities, through certutil.exe.

Machine scope (Local Machine, every user) needs an elevated prompt; user scope (Current
User) does not, but Windows shows the user a confirmation dialog. The argv builders are
pure so they can be tested anywhere; the store runs them on Windows. For fleets, GPO or
Intune import the .cer from `privca trust bundle --format windows`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from privca.trust.base import (
    Outcome,
    Presence,
    Result,
    Scope,
    StoreReport,
    TrustAnchor,
    carry_out,
)
from privca.trust.commands import command_step, file_command_step, run

STORE = "system"
CERTUTIL = "certutil.exe"
ROOT_STORE = "Root"
SCOPE_LABELS = {
    Scope.MACHINE: r"Local Machine\Trusted Root Certification Authorities (all users)",
    Scope.USER: r"Current User\Trusted Root Certification Authorities (this user only)",
}
ELEVATION_HINT = (
    "machine scope needs an elevated prompt (Run as administrator), or use --scope user"
)


def _scope_flag(scope: Scope) -> list[str]:
    return ["-user"] if scope is Scope.USER else []


def build_add_argv(cert_file: str, scope: Scope) -> list[str]:
    return [CERTUTIL, *_scope_flag(scope), "-addstore", "-f", ROOT_STORE, cert_file]


def build_find_argv(anchor: TrustAnchor, scope: Scope) -> list[str]:
    """certutil -store exits 0 only if a certificate with this SHA-1 hash is in Root."""
    return [CERTUTIL, *_scope_flag(scope), "-store", ROOT_STORE, anchor.sha1.hex()]


def build_delete_argv(anchor: TrustAnchor, scope: Scope) -> list[str]:
    return [CERTUTIL, *_scope_flag(scope), "-delstore", ROOT_STORE, anchor.sha1.hex()]


def build_gpo_instructions(cer_name: str) -> list[str]:
    """What an administrator runs or clicks to distribute the .cer to machines."""
    return [
        f"certutil -addstore -f Root {cer_name}    (this machine, elevated prompt)",
        f"certutil -user -addstore Root {cer_name}    (current user only)",
        f"Import-Certificate -FilePath {cer_name} -CertStoreLocation Cert:\\LocalMachine\\Root"
        "    (PowerShell, elevated)",
        "GPO: Computer Configuration > Policies > Windows Settings > Security Settings > "
        f"Public Key Policies > Trusted Root Certification Authorities > Import... {cer_name}",
    ]


@dataclass(frozen=True)
class WindowsSystemStore:
    scope: Scope = Scope.MACHINE
    name: str = STORE

    def available(self) -> bool:
        return sys.platform == "win32"

    def _location(self) -> str:
        return SCOPE_LABELS[self.scope]

    def _holds(self, anchor: TrustAnchor) -> bool:
        return run(build_find_argv(anchor, self.scope), check=False).returncode == 0

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        if not self.available():
            return [StoreReport(STORE, "Windows Root store", Presence.NOT_HERE, "not Windows")]
        presence = Presence.PRESENT if self._holds(anchor) else Presence.ABSENT
        probe = "certutil -store Root <SHA-1 hash>"
        return [StoreReport(STORE, self._location(), presence, probe)]

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        if self._holds(anchor):
            return [Outcome(STORE, self._location(), Result.ALREADY_INSTALLED)]
        step = file_command_step(
            anchor.der,
            f"{anchor.slug}.cer",
            lambda path: build_add_argv(str(path), self.scope),
            hint=ELEVATION_HINT,
        )
        return [carry_out(STORE, self._location(), [step], Result.INSTALLED, dry_run=dry_run)]

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        if not self._holds(anchor):
            return [Outcome(STORE, self._location(), Result.NOT_INSTALLED)]
        step = command_step(build_delete_argv(anchor, self.scope), hint=ELEVATION_HINT)
        return [carry_out(STORE, self._location(), [step], Result.REMOVED, dry_run=dry_run)]
