"""NSS databases with the real certutil: a throwaway database per test."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.errors import EnvironmentRefused
from privca.trust import Presence, Result, read_anchor
from privca.trust.nss import (
    NssStore,
    build_add_argv,
    build_delete_argv,
    build_list_argv,
    databases_from_env,
    discover_databases,
)
from tests.trust.support import TestCA, make_ca


def validates_leaf(database: Path, ca: TestCA) -> bool:
    """certutil -V: does NSS accept the leaf as a TLS server certificate?"""
    subprocess.run(
        ["certutil", "-A", "-n", "test-leaf", "-t", ",,", "-a", "-d", f"sql:{database}"],
        input=ca.leaf_pem,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        ["certutil", "-V", "-u", "V", "-n", "test-leaf", "-d", f"sql:{database}"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and "certificate is valid" in result.stdout


def test_install_makes_nss_validate_the_leaf_and_uninstall_removes_it(
    nss_db: Path, root_ca: TestCA
) -> None:
    store = NssStore((nss_db,))
    anchor = read_anchor(root_ca.path)
    assert not validates_leaf(nss_db, root_ca)

    [outcome] = store.install(anchor)
    assert outcome.result is Result.INSTALLED
    assert validates_leaf(nss_db, root_ca)
    [report] = store.status(anchor)
    assert report.presence is Presence.PRESENT and "certutil -L" in report.probe

    [outcome] = store.uninstall(anchor)
    assert outcome.result is Result.REMOVED
    assert store.status(anchor)[0].presence is Presence.ABSENT
    assert not validates_leaf(nss_db, root_ca)


def test_install_twice_is_install_once_and_two_cas_coexist(
    nss_db: Path, root_ca: TestCA, tmp_path: Path
) -> None:
    store = NssStore((nss_db,))
    first = read_anchor(root_ca.path)
    second = read_anchor(make_ca(tmp_path, "Second CA", "second.crt").path)
    assert store.install(first)[0].result is Result.INSTALLED
    assert store.install(first)[0].result is Result.ALREADY_INSTALLED
    store.install(second)
    listing = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{nss_db}"], capture_output=True, text=True, check=True
    ).stdout
    assert listing.count(first.slug) == 1 and second.slug in listing

    store.uninstall(first)
    assert store.status(first)[0].presence is Presence.ABSENT
    assert store.status(second)[0].presence is Presence.PRESENT
    assert store.uninstall(first)[0].result is Result.NOT_INSTALLED


def test_a_nickname_holding_another_certificate_is_refused(
    nss_db: Path, root_ca: TestCA, other_ca: TestCA
) -> None:
    anchor = read_anchor(root_ca.path)
    subprocess.run(build_add_argv("certutil", nss_db, anchor.slug), input=other_ca.pem, check=True)
    [report] = NssStore((nss_db,)).status(anchor)
    assert report.presence is Presence.ABSENT and "different certificate" in (report.note or "")
    with pytest.raises(EnvironmentRefused, match="already holds another certificate"):
        NssStore((nss_db,)).install(anchor)


def test_profiles_are_discovered_in_every_known_place(tmp_path: Path) -> None:
    profiles = [
        ".mozilla/firefox/abcd.default-release",
        "snap/firefox/common/.mozilla/firefox/efgh.default",
        ".var/app/org.mozilla.firefox/.mozilla/firefox/ijkl.default",
        ".pki/nssdb",
    ]
    for profile in profiles:
        (tmp_path / profile).mkdir(parents=True)
        (tmp_path / profile / "cert9.db").touch()
    (tmp_path / ".mozilla/firefox/no-db-here").mkdir()
    found = discover_databases(tmp_path)
    assert found == [tmp_path / p for p in profiles]


def test_no_database_is_not_installed_here(tmp_path: Path, root_ca: TestCA) -> None:
    store = NssStore(home=tmp_path)
    anchor = read_anchor(root_ca.path)
    [report] = store.status(anchor)
    assert report.presence is Presence.NOT_HERE
    assert store.install(anchor)[0].result is Result.SKIPPED


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (build_add_argv, ["certutil", "-A", "-n", "nick", "-t", "C,,", "-a", "-d", "sql:/db"]),
        (build_delete_argv, ["certutil", "-D", "-n", "nick", "-d", "sql:/db"]),
        (build_list_argv, ["certutil", "-L", "-d", "sql:/db", "-n", "nick", "-a"]),
    ],
    ids=["add", "delete", "list"],
)
def test_certutil_command_lines(
    build: Callable[[str, Path, str], list[str]], expected: list[str]
) -> None:
    assert build("certutil", Path("/db"), "nick") == expected


def test_database_list_from_the_environment() -> None:
    assert databases_from_env("/a:/b::") == (Path("/a"), Path("/b"))
    assert databases_from_env(None) == ()
