"""The Linux system store: the family table, and Debian's real tool on temporary directories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from privca.errors import EnvironmentRefused, InputError
from privca.trust import Presence, Result, read_anchor
from privca.trust.linux import (
    FAMILIES,
    LinuxSystemStore,
    build_refresh_argv,
    bundle_holds,
    detect_family,
)
from tests.trust.support import DEBIAN, TestCA, TlsServer, curl_status, debian_bundle, snapshot

FAMILY = {family.key: family for family in FAMILIES}


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["etc/pki/ca-trust/source/anchors"], "rhel"),
        (["usr/local/share/ca-certificates"], "debian"),
        (["etc/ca-certificates.conf"], "debian"),
        (["etc/ca-certificates/trust-source/anchors"], "arch"),
        (["etc/pki/trust/anchors"], "opensuse"),
        (["etc/pki/ca-trust/source/anchors", "usr/local/share/ca-certificates"], "rhel"),
        ([], None),
    ],
    ids=["rhel", "debian", "debian-conf-only", "arch", "opensuse", "rhel-wins", "unknown"],
)
def test_family_is_detected_from_its_anchor_directory(
    tmp_path: Path, present: list[str], expected: str | None
) -> None:
    for relative in present:
        target = tmp_path / relative
        if relative.endswith(".conf"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True)
    family = detect_family(tmp_path)
    assert (family.key if family else None) == expected


@pytest.mark.parametrize(
    ("key", "removing", "expected"),
    [
        ("rhel", False, ["update-ca-trust", "extract"]),
        ("debian", False, ["update-ca-certificates"]),
        ("debian", True, ["update-ca-certificates", "--fresh"]),
        ("arch", False, ["trust", "extract-compat"]),
        ("opensuse", True, ["update-ca-certificates"]),
    ],
    ids=["rhel", "debian-add", "debian-remove", "arch", "opensuse"],
)
def test_refresh_commands_on_the_real_root(key: str, removing: bool, expected: list[str]) -> None:
    family = FAMILY[key]
    argv = build_refresh_argv(family, family.tool.program, Path("/"), removing=removing)
    assert argv == expected


def test_relocated_debian_refresh_names_every_path(tmp_path: Path) -> None:
    argv = build_refresh_argv(FAMILY["debian"], "update-ca-certificates", tmp_path)
    flags = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert flags == {
        "--certsconf": str(tmp_path / "etc/ca-certificates.conf"),
        "--certsdir": str(tmp_path / "usr/share/ca-certificates"),
        "--localcertsdir": str(tmp_path / "usr/local/share/ca-certificates"),
        "--etccertsdir": str(tmp_path / "etc/ssl/certs"),
        "--hooksdir": str(tmp_path / "etc/ca-certificates/update.d"),
    }


@pytest.mark.parametrize("key", ["rhel", "arch", "opensuse"])
def test_other_families_refuse_a_relocated_root(tmp_path: Path, key: str) -> None:
    family = FAMILY[key]
    with pytest.raises(InputError, match="only for the Debian layout"):
        build_refresh_argv(family, family.tool.program, tmp_path)


def test_debian_install_makes_curl_trust_the_server_and_uninstall_restores_every_byte(
    debian_root: Path, root_ca: TestCA, tls_server: TlsServer
) -> None:
    store = LinuxSystemStore(debian_root)
    anchor = read_anchor(root_ca.path)
    bundle = debian_bundle(debian_root)
    before = snapshot(debian_root)
    assert curl_status(tls_server.url, "--cacert", str(bundle)) != 0

    [outcome] = store.install(anchor)
    assert outcome.result is Result.INSTALLED
    assert bundle_holds(bundle, anchor.der)
    assert curl_status(tls_server.url, "--cacert", str(bundle)) == 0
    [report] = store.status(anchor)
    assert report.presence is Presence.PRESENT and str(bundle) in report.probe

    [outcome] = store.uninstall(anchor)
    assert outcome.result is Result.REMOVED
    assert curl_status(tls_server.url, "--cacert", str(bundle)) != 0
    assert store.status(anchor)[0].presence is Presence.ABSENT
    assert snapshot(debian_root) == before


def test_debian_install_is_idempotent(debian_root: Path, root_ca: TestCA) -> None:
    store = LinuxSystemStore(debian_root)
    anchor = read_anchor(root_ca.path)
    assert store.install(anchor)[0].result is Result.INSTALLED
    after_first = snapshot(debian_root)
    assert store.install(anchor)[0].result is Result.ALREADY_INSTALLED
    assert snapshot(debian_root) == after_first


def test_two_cas_side_by_side(debian_root: Path, root_ca: TestCA, tmp_path: Path) -> None:
    from tests.trust.support import make_ca

    second = make_ca(tmp_path / "second", "Second Internal CA", "root.crt")
    store = LinuxSystemStore(debian_root)
    first_anchor, second_anchor = read_anchor(root_ca.path), read_anchor(second.path)
    store.install(first_anchor)
    store.install(second_anchor)
    bundle = debian_bundle(debian_root)
    assert bundle_holds(bundle, first_anchor.der) and bundle_holds(bundle, second_anchor.der)

    store.uninstall(first_anchor)
    assert not bundle_holds(bundle, first_anchor.der)
    assert bundle_holds(bundle, second_anchor.der)
    assert store.status(second_anchor)[0].presence is Presence.PRESENT


def test_uninstall_of_a_root_not_installed_changes_nothing(
    debian_root: Path, root_ca: TestCA
) -> None:
    before = snapshot(debian_root)
    [outcome] = LinuxSystemStore(debian_root).uninstall(read_anchor(root_ca.path))
    assert outcome.result is Result.NOT_INSTALLED
    assert "does not exist" in (outcome.note or "")
    assert snapshot(debian_root) == before


def test_dry_run_lists_the_file_and_command_and_changes_nothing(
    debian_root: Path, root_ca: TestCA
) -> None:
    before = snapshot(debian_root)
    [outcome] = LinuxSystemStore(debian_root).install(read_anchor(root_ca.path), dry_run=True)
    assert outcome.result is Result.WOULD_CHANGE
    write, refresh, check = outcome.steps
    assert write.startswith(f"write {debian_root}/usr/local/share/ca-certificates/privca-")
    assert "update-ca-certificates" in refresh and f"--etccertsdir {debian_root}" in refresh
    assert check.startswith("check that")
    assert snapshot(debian_root) == before


def test_a_root_trusted_through_another_file_is_reported_not_claimed(
    debian_root: Path, root_ca: TestCA
) -> None:
    shutil.copy(root_ca.path, debian_root / "usr/local/share/ca-certificates/by-hand.crt")
    subprocess.run(build_refresh_argv(DEBIAN, DEBIAN.tool.program, debian_root), check=True)
    store = LinuxSystemStore(debian_root)
    anchor = read_anchor(root_ca.path)
    [report] = store.status(anchor)
    assert report.presence is Presence.PRESENT
    assert "not installed by privca" in (report.note or "")
    [outcome] = store.install(anchor)
    assert outcome.result is Result.ALREADY_INSTALLED
    [outcome] = store.uninstall(anchor)
    assert outcome.result is Result.NOT_INSTALLED
    assert "privca did not write" in (outcome.note or "")


def test_uninstall_names_a_second_copy_that_keeps_the_root_trusted(
    debian_root: Path, root_ca: TestCA
) -> None:
    store = LinuxSystemStore(debian_root)
    anchor = read_anchor(root_ca.path)
    store.install(anchor)
    by_hand = debian_root / "usr/local/share/ca-certificates/by-hand.crt"
    shutil.copy(root_ca.path, by_hand)
    with pytest.raises(EnvironmentRefused, match="still holds the root") as caught:
        store.uninstall(anchor)
    assert str(by_hand) in (caught.value.hint or "")


def test_unknown_layout_is_not_installed_here(tmp_path: Path, root_ca: TestCA) -> None:
    [report] = LinuxSystemStore(tmp_path).status(read_anchor(root_ca.path))
    assert report.presence is Presence.NOT_HERE
    assert str(PurePosixPath("etc/pki/ca-trust/source/anchors")) in report.probe
