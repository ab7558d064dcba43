"""NSS databases (Firefox and Thunderbird profiles, Chromium's ~/.pki/nssdb), through certutil.

Firefox and Chromium on Linux do not read the system bundle, so each user's databases get
their own copy, under a nickname named after the CA. "Present" means the nickname holds a
certificate with the root's SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from privca.errors import EnvironmentRefused, ToolMissing
from privca.trust.base import Outcome, Presence, Result, StoreReport, TrustAnchor, carry_out
from privca.trust.commands import (
    NSS_CERTUTIL,
    check_not_open_to_others,
    command_step,
    find_tool,
    run,
)
from privca.x509.encoding import pem_certificate_ders

STORE = "nss"
DATABASES_ENV = "PRIVCA_TRUST_NSS_DBS"
# "C,," = a trusted CA for TLS servers, nothing for S/MIME or code signing.
TRUST_FLAGS = "C,,"
PROFILE_GLOBS = (
    ".mozilla/firefox/*",
    "snap/firefox/common/.mozilla/firefox/*",
    ".var/app/org.mozilla.firefox/.mozilla/firefox/*",
    ".thunderbird/*",
    ".pki/nssdb",
)


def discover_databases(home: Path) -> list[Path]:
    """Every directory under `home` that holds an NSS sql database (cert9.db)."""
    found: list[Path] = []
    for pattern in PROFILE_GLOBS:
        for directory in sorted(home.glob(pattern)):
            if (directory / "cert9.db").is_file() and directory not in found:
                found.append(directory)
    return found


def databases_from_env(value: str | None) -> tuple[Path, ...]:
    return tuple(Path(part) for part in (value or "").split(os.pathsep) if part)


def build_list_argv(certutil: str, database: Path, nickname: str) -> list[str]:
    return [certutil, "-L", "-d", f"sql:{database}", "-n", nickname, "-a"]


def build_add_argv(certutil: str, database: Path, nickname: str) -> list[str]:
    """certutil reads the PEM certificate from stdin (-a)."""
    return [certutil, "-A", "-n", nickname, "-t", TRUST_FLAGS, "-a", "-d", f"sql:{database}"]


def build_delete_argv(certutil: str, database: Path, nickname: str) -> list[str]:
    return [certutil, "-D", "-n", nickname, "-d", f"sql:{database}"]


def check_database(database: Path) -> None:
    """Refuse a database others can write: they could add their own trusted CA to it."""
    check_not_open_to_others(database, "NSS database")
    for name in ("cert9.db", "key4.db", "pkcs11.txt"):
        check_not_open_to_others(database / name, "NSS database file")


def nickname_digests(certutil: str, database: Path, nickname: str) -> list[bytes]:
    """SHA-256 of each certificate under `nickname`; [] when the nickname is unknown."""
    completed = run(build_list_argv(certutil, database, nickname), check=False)
    if completed.returncode != 0:
        return []
    return [hashlib.sha256(der).digest() for der in pem_certificate_ders(completed.stdout)]


@dataclass(frozen=True)
class NssStore:
    """The NSS databases of the current user, or the ones named explicitly."""

    databases: tuple[Path, ...] = ()
    home: Path = field(default_factory=Path.home)
    name: str = STORE

    def locations(self) -> list[Path]:
        return list(self.databases) or discover_databases(self.home)

    def available(self) -> bool:
        return bool(self.locations())

    def _not_here(self) -> str:
        return f"no NSS database (cert9.db) in {', '.join(self._looked_in())}"

    def _looked_in(self) -> Iterable[str]:
        return (str(self.home / pattern) for pattern in PROFILE_GLOBS)

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        databases = self.locations()
        if not databases:
            return [StoreReport(STORE, "-", Presence.NOT_HERE, self._not_here())]
        try:
            certutil = find_tool(NSS_CERTUTIL)
        except ToolMissing as exc:
            return [
                StoreReport(STORE, str(db), Presence.UNKNOWN, f"cannot probe: {exc}", exc.hint)
                for db in databases
            ]
        reports = []
        for database in databases:
            digests = nickname_digests(certutil, database, anchor.slug)
            presence = Presence.PRESENT if anchor.sha256 in digests else Presence.ABSENT
            note = None
            if digests and presence is Presence.ABSENT:
                note = f"nickname {anchor.slug} holds a different certificate"
            probe = f"certutil -L -n {anchor.slug}, compared SHA-256 fingerprints"
            reports.append(StoreReport(STORE, str(database), presence, probe, note))
        return reports

    def _skipped(self) -> list[Outcome]:
        return [Outcome(STORE, "-", Result.SKIPPED, note=self._not_here())]

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        databases = self.locations()
        if not databases:
            return self._skipped()
        certutil = find_tool(NSS_CERTUTIL)
        for database in databases:
            check_database(database)
        return [self._add_to(certutil, db, anchor, dry_run=dry_run) for db in databases]

    def _add_to(
        self, certutil: str, database: Path, anchor: TrustAnchor, *, dry_run: bool
    ) -> Outcome:
        digests = nickname_digests(certutil, database, anchor.slug)
        if anchor.sha256 in digests:
            return Outcome(STORE, str(database), Result.ALREADY_INSTALLED)
        if digests:
            raise EnvironmentRefused(
                f"nickname '{anchor.slug}' in {database} already holds another certificate",
                "another root goes by this name (same CN and serial prefix) and NSS files "
                "both under one subject: uninstall it first or leave nss out (--stores "
                f"system,java); inspect it with: certutil -L -n {anchor.slug} -d sql:{database}",
            )
        argv = build_add_argv(certutil, database, anchor.slug)
        step = command_step(
            argv,
            input_bytes=anchor.pem,
            summary=f"{' '.join(argv)} < root certificate (PEM)",
            hint="is the database writable? Firefox must not hold it open in legacy mode",
        )
        note = "applications read it at start: restart Firefox/Chromium"
        return carry_out(STORE, str(database), [step], Result.INSTALLED, dry_run=dry_run, note=note)

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        databases = self.locations()
        if not databases:
            return self._skipped()
        certutil = find_tool(NSS_CERTUTIL)
        for database in databases:
            check_database(database)
        return [self._remove_from(certutil, db, anchor, dry_run=dry_run) for db in databases]

    def _remove_from(
        self, certutil: str, database: Path, anchor: TrustAnchor, *, dry_run: bool
    ) -> Outcome:
        if anchor.sha256 not in nickname_digests(certutil, database, anchor.slug):
            return Outcome(STORE, str(database), Result.NOT_INSTALLED)
        step = command_step(build_delete_argv(certutil, database, anchor.slug))
        return carry_out(STORE, str(database), [step], Result.REMOVED, dry_run=dry_run)
