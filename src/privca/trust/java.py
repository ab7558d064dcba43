"""Java keystores (cacerts of each JDK found, or explicit truststore files), through keytool.

An entry counts as ours when its certificate has the root's SHA-256 fingerprint, whatever
its alias: ca-certificates-java names the copy it makes of the system store `debian:...`,
and uninstall removes that copy too.

The store password is not secret for a truststore (it guards integrity, not contents), but
it still travels through the environment (`-storepass:env`), never argv.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from privca.errors import EnvironmentRefused, ToolMissing
from privca.trust.base import (
    Outcome,
    Presence,
    Result,
    Step,
    StoreReport,
    TrustAnchor,
    carry_out,
)
from privca.trust.commands import KEYTOOL, command_step, find_tool, needs_sudo, run, with_sudo
from privca.x509.encoding import pem_certificate_ders

STORE = "java"
STOREPASS_ENV = "PRIVCA_JAVA_STOREPASS"
# The JDK's own default for cacerts, and so what a truststore privca writes uses too: the
# password guards a truststore's integrity, not a secret.
DEFAULT_STOREPASS = "changeit"
KEYSTORES_ENV = "PRIVCA_TRUST_JAVA_KEYSTORES"
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/lib64/jvm"))
# A keystore the distribution regenerates from the system store.
SYSTEM_FOLLOWERS = {
    Path("/etc/ssl/certs/java/cacerts"): "ca-certificates-java (Debian/Ubuntu)",
    Path("/etc/pki/ca-trust/extracted/java/cacerts"): "update-ca-trust (RHEL/Fedora)",
}
_PASS_VAR = "PRIVCA_KEYTOOL_STOREPASS"
# keytool localises its labels; asking for English keeps them parseable.
_ENGLISH = ("-J-Duser.language=en", "-J-Duser.country=US")
_ALIAS = re.compile(rb"^Alias name: (.*?)\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Keystore:
    """One keystore file and who uses it."""

    path: Path
    users: tuple[str, ...] = ()
    explicit: bool = False

    @property
    def follows_system(self) -> str | None:
        try:
            resolved = self.path.resolve()
        except OSError:
            return None
        return SYSTEM_FOLLOWERS.get(resolved)

    def describe(self) -> str:
        if not self.users:
            return str(self.path)
        return f"{self.path} (cacerts of {', '.join(self.users)})"


def _jdk_cacerts(java_home: Path) -> Path | None:
    for candidate in (java_home / "lib/security/cacerts", java_home / "jre/lib/security/cacerts"):
        if candidate.exists():
            return candidate
    return None


def discover_keystores(
    java_home: str | None = None, jvm_dirs: Iterable[Path] = JVM_DIRS
) -> list[Keystore]:
    """The cacerts of $JAVA_HOME and every JDK under /usr/lib/jvm, one entry per real file."""
    homes: list[Path] = [Path(java_home)] if java_home else []
    for directory in jvm_dirs:
        if directory.is_dir():
            homes += sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    users: dict[Path, list[str]] = {}
    for home in homes:
        cacerts = _jdk_cacerts(home)
        if cacerts is not None:
            users.setdefault(cacerts.resolve(), []).append(home.name)
    return [Keystore(path, tuple(names)) for path, names in users.items()]


def storepass_env(password: str | None = None) -> dict[str, str]:
    """The environment that hands keytool the store password (`-storepass:env`): the one
    given, else $PRIVCA_JAVA_STOREPASS, else the JDK default."""
    if password is None:
        password = os.environ.get(STOREPASS_ENV, DEFAULT_STOREPASS)
    return {_PASS_VAR: password}


def build_list_argv(keytool: str, keystore: Path) -> list[str]:
    return [
        keytool,
        *_ENGLISH,
        "-list",
        "-rfc",
        "-keystore",
        str(keystore),
        "-storepass:env",
        _PASS_VAR,
    ]


def build_import_argv(keytool: str, keystore: Path, alias: str, *, new: bool) -> list[str]:
    """keytool reads the certificate from stdin; a new file is made a PKCS#12 store."""
    argv = [
        keytool,
        "-importcert",
        "-noprompt",
        "-trustcacerts",
        "-alias",
        alias,
        "-keystore",
        str(keystore),
        "-storepass:env",
        _PASS_VAR,
    ]
    return [*argv, "-storetype", "PKCS12"] if new else argv


def build_delete_argv(keytool: str, keystore: Path, alias: str) -> list[str]:
    return [
        keytool,
        "-delete",
        "-alias",
        alias,
        "-keystore",
        str(keystore),
        "-storepass:env",
        _PASS_VAR,
    ]


def find_keytool() -> str:
    java_home = os.environ.get("JAVA_HOME")
    return find_tool(KEYTOOL, extra_dirs=[Path(java_home) / "bin"] if java_home else [])


def list_entries(keystore: Path, keytool: str | None = None) -> dict[str, bytes]:
    """alias -> SHA-256 of its certificate; {} for a keystore file that does not exist."""
    if not keystore.exists():
        return {}
    completed = run(
        build_list_argv(keytool or find_keytool(), keystore),
        env=storepass_env(),
        hint=f"is ${STOREPASS_ENV} the password of {keystore}? (JDK default: {DEFAULT_STOREPASS})",
    )
    return _entries(completed.stdout)


def _entries(listing: bytes) -> dict[str, bytes]:
    """alias -> SHA-256 of the certificate in each entry of `keytool -list -rfc` output."""
    heads = list(_ALIAS.finditer(listing))
    # Each entry runs from its "Alias name:" line to the next one (or the end).
    bounds = [head.start() for head in heads] + [len(listing)]
    entries: dict[str, bytes] = {}
    for head, end in zip(heads, bounds[1:], strict=True):
        body = listing[head.end() : end]
        certificates = pem_certificate_ders(body)
        if certificates:  # a key entry without a certificate chain is not ours
            alias = head.group(1).decode("utf-8", "replace").strip()
            entries[alias] = hashlib.sha256(certificates[0]).digest()
    return entries


def matching_aliases(keystore: Path, anchor: TrustAnchor, keytool: str | None = None) -> list[str]:
    return [a for a, digest in list_entries(keystore, keytool).items() if digest == anchor.sha256]


def _delete_steps(keytool: str, keystore: Path, aliases: Sequence[str]) -> list[Step]:
    privileged = needs_sudo(keystore)
    return [
        command_step(
            with_sudo(build_delete_argv(keytool, keystore, alias), privileged),
            env=storepass_env(),
        )
        for alias in aliases
    ]


def delete_matching_entries(keystore: Path, anchor: TrustAnchor) -> None:
    """Delete every entry of `keystore` whose certificate is the anchor (if keytool exists)."""
    keytool = find_keytool()
    for step in _delete_steps(keytool, keystore, matching_aliases(keystore, anchor, keytool)):
        step.apply()


@dataclass(frozen=True)
class JavaStore:
    """The JDKs' cacerts found on this machine, or the truststore files named explicitly."""

    truststores: tuple[Path, ...] = ()
    java_home: str | None = field(default_factory=lambda: os.environ.get("JAVA_HOME"))
    name: str = STORE

    def keystores(self) -> list[Keystore]:
        if self.truststores:
            return [Keystore(path, explicit=True) for path in self.truststores]
        return discover_keystores(self.java_home)

    def available(self) -> bool:
        return bool(self.keystores())

    def _not_here(self) -> StoreReport:
        looked = ", ".join(["$JAVA_HOME", *(f"{d}/*" for d in JVM_DIRS)])
        return StoreReport(STORE, "-", Presence.NOT_HERE, f"no JDK cacerts found in {looked}")

    @staticmethod
    def _note(keystore: Keystore) -> str | None:
        follower = keystore.follows_system
        if follower:
            return (
                f"generated from the system store by {follower}: "
                "installing with --stores system puts the root here too"
            )
        return None

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        keystores = self.keystores()
        if not keystores:
            return [self._not_here()]
        try:
            keytool = find_keytool()
        except ToolMissing as exc:
            return [
                StoreReport(
                    STORE,
                    k.describe(),
                    Presence.UNKNOWN,
                    f"cannot probe: {exc}",
                    KEYTOOL.install_hint,
                )
                for k in keystores
            ]
        reports = []
        for keystore in keystores:
            aliases = matching_aliases(keystore.path, anchor, keytool)
            presence = Presence.PRESENT if aliases else Presence.ABSENT
            probe = "keytool -list -rfc, compared SHA-256 fingerprints"
            if aliases:
                probe += f" (alias {', '.join(aliases)})"
            reports.append(
                StoreReport(STORE, keystore.describe(), presence, probe, self._note(keystore))
            )
        return reports

    def _skipped(self) -> list[Outcome]:
        return [Outcome(STORE, "-", Result.SKIPPED, note=self._not_here().probe)]

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        keystores = self.keystores()
        if not keystores:
            return self._skipped()
        keytool = find_keytool()
        return [self._install_into(keytool, k, anchor, dry_run=dry_run) for k in keystores]

    def _install_into(
        self, keytool: str, keystore: Keystore, anchor: TrustAnchor, *, dry_run: bool
    ) -> Outcome:
        location = keystore.describe()
        entries = list_entries(keystore.path, keytool)
        if anchor.sha256 in entries.values():
            return Outcome(STORE, location, Result.ALREADY_INSTALLED)
        # An alias that holds another root is that root's: the long name is free then.
        free = [alias for alias in anchor.names if alias not in entries]
        if not free:
            raise EnvironmentRefused(
                f"aliases {', '.join(anchor.names)} in {keystore.path} already hold other "
                "certificates",
                f"inspect them with: keytool -list -alias {anchor.slug} -keystore {keystore.path}",
            )
        new = not keystore.path.exists()
        argv = build_import_argv(keytool, keystore.path, free[0], new=new)
        step = command_step(
            with_sudo(argv, needs_sudo(keystore.path)),
            input_bytes=anchor.pem,
            env=storepass_env(),
            summary=f"{' '.join(argv)} < root certificate (PEM)",
        )
        note = self._note(keystore)
        if new:
            note = (
                "new PKCS#12 truststore holding only this root; to keep trusting the "
                "public CAs, copy a JDK's cacerts there first"
            )
        return carry_out(STORE, location, [step], Result.INSTALLED, dry_run=dry_run, note=note)

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        keystores = self.keystores()
        if not keystores:
            return self._skipped()
        keytool = find_keytool()
        return [self._remove_from(keytool, k, anchor, dry_run=dry_run) for k in keystores]

    def _remove_from(
        self, keytool: str, keystore: Keystore, anchor: TrustAnchor, *, dry_run: bool
    ) -> Outcome:
        location = keystore.describe()
        aliases = matching_aliases(keystore.path, anchor, keytool)
        if not aliases:
            return Outcome(STORE, location, Result.NOT_INSTALLED)
        steps = _delete_steps(keytool, keystore.path, aliases)
        note = None
        if keystore.follows_system:
            note = "the system store puts it back on its next update unless removed there"
        return carry_out(STORE, location, steps, Result.REMOVED, dry_run=dry_run, note=note)
