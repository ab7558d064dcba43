"""The Linux system store: one table row per distribution family, one code path for all.

Each family keeps locally added anchors in a directory and regenerates a bundle from it
with its own tool. privca writes one PEM file named after the CA into that directory,
runs the tool, and answers "installed?" by looking for the root's bytes in the bundle the
tool generated, which is what OpenSSL, curl and most runtimes actually read.

`root` relocates every path (tests and image builds use a directory laid out like /);
only Debian's update-ca-certificates can be told about relocated paths, so the other
families work on the real / only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from privca.errors import EnvironmentRefused, InputError
from privca.trust.base import (
    Outcome,
    Presence,
    Result,
    Step,
    StoreReport,
    TrustAnchor,
    carry_out,
)
from privca.trust.commands import (
    P11_KIT_TRUST,
    UPDATE_CA_CERTIFICATES,
    UPDATE_CA_TRUST,
    Tool,
    check_not_open_to_others,
    command_step,
    display,
    find_tool,
    needs_sudo,
    remove_file_step,
    serialized,
    with_sudo,
    write_file_step,
)
from privca.x509.encoding import pem_certificate_ders

STORE = "system"
SYSTEM_ROOT_ENV = "PRIVCA_TRUST_SYSTEM_ROOT"
_DEBIAN_JAVA_KEYSTORE = PurePosixPath("etc/ssl/certs/java/cacerts")
_DEBIAN_JAVA_HOOK = PurePosixPath("etc/ca-certificates/update.d/jks-keystore")


def _debian_relocation(root: Path) -> tuple[str, ...]:
    return (
        "--certsconf",
        str(root / "etc/ca-certificates.conf"),
        "--certsdir",
        str(root / "usr/share/ca-certificates"),
        "--localcertsdir",
        str(root / "usr/local/share/ca-certificates"),
        "--etccertsdir",
        str(root / "etc/ssl/certs"),
        "--hooksdir",
        str(root / "etc/ca-certificates/update.d"),
    )


@dataclass(frozen=True)
class LinuxFamily:
    """How one distribution family stores local anchors and regenerates its bundle."""

    key: str
    label: str
    markers: tuple[PurePosixPath, ...]
    anchors_dir: PurePosixPath
    bundle: PurePosixPath
    tool: Tool
    refresh_args: tuple[str, ...] = ()
    # Debian's tool leaves dangling links for a removed anchor unless asked to start afresh.
    removal_args: tuple[str, ...] = ()
    relocate: Callable[[Path], tuple[str, ...]] | None = None


FAMILIES: tuple[LinuxFamily, ...] = (
    LinuxFamily(
        key="rhel",
        label="RHEL/Fedora",
        markers=(PurePosixPath("etc/pki/ca-trust/source/anchors"),),
        anchors_dir=PurePosixPath("etc/pki/ca-trust/source/anchors"),
        bundle=PurePosixPath("etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
        tool=UPDATE_CA_TRUST,
        refresh_args=("extract",),
    ),
    LinuxFamily(
        key="debian",
        label="Debian/Ubuntu/Alpine",
        markers=(
            PurePosixPath("usr/local/share/ca-certificates"),
            PurePosixPath("etc/ca-certificates.conf"),
        ),
        anchors_dir=PurePosixPath("usr/local/share/ca-certificates"),
        bundle=PurePosixPath("etc/ssl/certs/ca-certificates.crt"),
        tool=UPDATE_CA_CERTIFICATES,
        removal_args=("--fresh",),
        relocate=_debian_relocation,
    ),
    LinuxFamily(
        key="arch",
        label="Arch",
        markers=(PurePosixPath("etc/ca-certificates/trust-source/anchors"),),
        anchors_dir=PurePosixPath("etc/ca-certificates/trust-source/anchors"),
        bundle=PurePosixPath("etc/ca-certificates/extracted/tls-ca-bundle.pem"),
        tool=P11_KIT_TRUST,
        refresh_args=("extract-compat",),
    ),
    LinuxFamily(
        key="opensuse",
        label="openSUSE/SLES",
        markers=(PurePosixPath("etc/pki/trust/anchors"),),
        anchors_dir=PurePosixPath("etc/pki/trust/anchors"),
        bundle=PurePosixPath("var/lib/ca-certificates/ca-bundle.pem"),
        tool=UPDATE_CA_CERTIFICATES,
    ),
)


def detect_family(root: Path) -> LinuxFamily | None:
    """The first family (in table order) whose marker paths exist under `root`."""
    for family in FAMILIES:
        if any((root / marker).exists() for marker in family.markers):
            return family
    return None


def anchor_file_names(anchor: TrustAnchor) -> tuple[str, ...]:
    """The files privca may have put this root in: the slug name, then (when another root
    holds that one) the name with the full SHA-256 fingerprint."""
    # Debian only picks up *.crt; the other families accept any extension.
    return tuple(f"{name}.crt" for name in anchor.names)


def holds_only(path: Path, anchor: TrustAnchor) -> bool:
    """Whether the file at `path` holds this root and nothing else (as privca writes it)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return pem_certificate_ders(data) == [anchor.der]


def build_refresh_argv(
    family: LinuxFamily, program: str, root: Path, *, removing: bool = False
) -> list[str]:
    """The command that regenerates the family's bundle (pure: no lookups, no I/O)."""
    argv = [program, *family.refresh_args]
    if removing:
        argv += family.removal_args
    if root != Path("/"):
        if family.relocate is None:
            raise InputError(
                f"a relocated system root ('{root}') is supported only for the Debian "
                f"layout, not {family.label}",
                f"drop --system-root / ${SYSTEM_ROOT_ENV} to work on this machine's store",
            )
        argv += family.relocate(root)
    return argv


def bundle_holds(bundle: Path, der: bytes) -> bool:
    """Whether the PEM bundle contains exactly these certificate bytes."""
    try:
        data = bundle.read_bytes()
    except OSError:
        return False
    return der in pem_certificate_ders(data)


@dataclass(frozen=True)
class LinuxSystemStore:
    """The distribution's system trust store (OpenSSL, GnuTLS, curl, most runtimes)."""

    root: Path = Path("/")
    name: str = STORE

    def family(self) -> LinuxFamily | None:
        return detect_family(self.root)

    def available(self) -> bool:
        return self.family() is not None

    def _candidates(self, family: LinuxFamily, anchor: TrustAnchor) -> list[Path]:
        return [self.root / family.anchors_dir / name for name in anchor_file_names(anchor)]

    def _ours(self, family: LinuxFamily, anchor: TrustAnchor) -> Path | None:
        """The file privca wrote for this root: one of its names, holding exactly it. A
        file of that name holding another root is that root's, never ours to change."""
        return next((p for p in self._candidates(family, anchor) if holds_only(p, anchor)), None)

    def _free_name(self, family: LinuxFamily, anchor: TrustAnchor) -> Path:
        for path in self._candidates(family, anchor):
            if not path.exists() and not path.is_symlink():
                return path
        taken = ", ".join(str(p) for p in self._candidates(family, anchor))
        raise EnvironmentRefused(
            f"{taken} already hold other certificates than the root {anchor.subject}",
            "privca never overwrites another root's file: inspect them and remove the one "
            "that is not wanted, then rerun",
        )

    def _location(self, family: LinuxFamily) -> str:
        return f"{family.label}: {self.root / family.anchors_dir}"

    def _not_here(self) -> StoreReport:
        looked = ", ".join(str(self.root / f.anchors_dir) for f in FAMILIES)
        return StoreReport(
            STORE, str(self.root), Presence.NOT_HERE, f"no known anchors directory ({looked})"
        )

    def _java_note(self) -> str | None:
        keystore = self.root / _DEBIAN_JAVA_KEYSTORE
        if keystore.exists() and (self.root / _DEBIAN_JAVA_HOOK).exists():
            return (
                f"ca-certificates-java copies this store into {keystore}, "
                "the keystore of the distribution's JDKs"
            )
        return None

    def status(self, anchor: TrustAnchor) -> list[StoreReport]:
        family = self.family()
        if family is None:
            return [self._not_here()]
        bundle = self.root / family.bundle
        ours = self._ours(family, anchor)
        present = bundle_holds(bundle, anchor.der)
        probe = f"searched the generated bundle {bundle} for the root's DER bytes"
        note = self._java_note() if family.key == "debian" else None
        if present and ours is None:
            note = (
                f"trusted through another file than {self._candidates(family, anchor)[0]} "
                "(not installed by privca)"
            )
        elif not present and ours is not None:
            note = (
                f"{ours} exists but the bundle lacks it: run "
                f"{display(build_refresh_argv(family, family.tool.program, self.root))}"
            )
        presence = Presence.PRESENT if present else Presence.ABSENT
        return [StoreReport(STORE, self._location(family), presence, probe, note)]

    def _family_or_refuse(self) -> LinuxFamily:
        family = self.family()
        if family is None:
            raise EnvironmentRefused(
                f"no supported system trust store found under {self.root}",
                "supported: RHEL/Fedora, Debian/Ubuntu/Alpine, Arch, openSUSE",
            )
        return family

    def _refresh_step(self, family: LinuxFamily, *, removing: bool) -> Step:
        program = find_tool(family.tool)
        argv = build_refresh_argv(family, program, self.root, removing=removing)
        privileged = needs_sudo(self.root / family.anchors_dir)
        return command_step(
            with_sudo(argv, privileged),
            hint="system trust stores need root: run privca with sudo, "
            f"or check the output of {family.tool.program} above",
        )

    def _check_step(self, bundle: Path, anchor: TrustAnchor, *, expect: bool) -> Step:
        def apply() -> None:
            if bundle_holds(bundle, anchor.der) == expect:
                return
            if expect:
                raise EnvironmentRefused(
                    f"after the update, {bundle} does not hold the root {anchor.subject}",
                    "run the update command by hand with --verbose to see what it skipped",
                )
            copies = [str(p) for p in self._copies(anchor)]
            raise EnvironmentRefused(
                f"after the update, {bundle} still holds the root {anchor.subject}",
                f"another copy keeps it trusted: remove {', '.join(copies)} and rerun"
                if copies
                else "another copy of the root is in the distribution's CA list",
            )

        verb = "holds" if expect else "no longer holds"
        return Step(f"check that {bundle} {verb} the root", apply)

    @contextlib.contextmanager
    def _changing(self, family: LinuxFamily, *, dry_run: bool) -> Iterator[None]:
        """Checks the anchors directory, then (unless dry_run) holds its lock until the
        change is made and the bundle regenerated."""
        directory = self.root / family.anchors_dir
        check_not_open_to_others(directory, "anchors directory")
        if dry_run:
            yield
            return
        with serialized(directory):
            yield

    def install(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        family = self._family_or_refuse()
        with self._changing(family, dry_run=dry_run):
            return self._install(family, anchor, dry_run=dry_run)

    def _install(self, family: LinuxFamily, anchor: TrustAnchor, *, dry_run: bool) -> list[Outcome]:
        bundle = self.root / family.bundle
        location = self._location(family)
        ours = self._ours(family, anchor)
        if bundle_holds(bundle, anchor.der):
            note = None if ours else "already trusted through a file privca did not write"
            return [Outcome(STORE, location, Result.ALREADY_INSTALLED, note=note)]
        refresh = self._refresh_step(family, removing=False)  # finds the tool before writing
        steps = (
            [] if ours else [write_file_step(self._free_name(family, anchor), anchor.pem, 0o644)]
        )
        steps += [refresh, self._check_step(bundle, anchor, expect=True)]
        note = self._java_note() if family.key == "debian" else None
        return [carry_out(STORE, location, steps, Result.INSTALLED, dry_run=dry_run, note=note)]

    def uninstall(self, anchor: TrustAnchor, *, dry_run: bool = False) -> list[Outcome]:
        family = self._family_or_refuse()
        with self._changing(family, dry_run=dry_run):
            return self._uninstall(family, anchor, dry_run=dry_run)

    def _uninstall(
        self, family: LinuxFamily, anchor: TrustAnchor, *, dry_run: bool
    ) -> list[Outcome]:
        bundle = self.root / family.bundle
        location = self._location(family)
        anchor_file = self._ours(family, anchor)
        if anchor_file is None:
            first = self._candidates(family, anchor)[0]
            note = (
                f"{first} holds another root, left in place"
                if first.exists()
                else f"{first} does not exist"
            )
            if bundle_holds(bundle, anchor.der):
                note += (
                    f"; the root is still in {bundle} through a file privca did not write: "
                    f"remove that file from {self.root / family.anchors_dir} by hand"
                )
            return [Outcome(STORE, location, Result.NOT_INSTALLED, note=note)]
        steps = [
            remove_file_step(anchor_file),
            self._refresh_step(family, removing=True),
            self._check_step(bundle, anchor, expect=False),
        ]
        java_note: str | None = None
        if family.key == "debian" and self._java_note():
            steps.append(self._forget_in_debian_java_step(anchor))
            java_note = "ca-certificates-java never removes a local anchor: privca deletes it"
        return [carry_out(STORE, location, steps, Result.REMOVED, dry_run=dry_run, note=java_note)]

    def _copies(self, anchor: TrustAnchor) -> list[Path]:
        """Files in any family's anchors directory that hold this root."""
        found = []
        for family in FAMILIES:
            directory = self.root / family.anchors_dir
            if directory.is_dir():
                found += [p for p in sorted(directory.iterdir()) if bundle_holds(p, anchor.der)]
        return found

    def _forget_in_debian_java_step(self, anchor: TrustAnchor) -> Step:
        from privca.trust.java import delete_matching_entries

        keystore = self.root / _DEBIAN_JAVA_KEYSTORE

        def apply() -> None:
            delete_matching_entries(keystore, anchor)

        return Step(f"delete entries with the root's SHA-256 from {keystore} (keytool)", apply)
