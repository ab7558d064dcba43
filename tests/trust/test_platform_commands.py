"""macOS and Windows cannot run here: their stores are tested on the command lines they build."""

from __future__ import annotations

from pathlib import Path

import pytest

from privca.errors import InputError
from privca.trust import Presence, Scope, StoreOptions, TrustAnchor, macos, read_anchor, windows
from privca.trust.stores import build_stores, parse_store_names, system_store
from tests.trust.support import TestCA

HOME = Path("/Users/alice")


@pytest.fixture
def anchor(root_ca: TestCA) -> TrustAnchor:
    return read_anchor(root_ca.path)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (
            Scope.MACHINE,
            "/usr/bin/security add-trusted-cert -d -r trustRoot "
            "-k /Library/Keychains/System.keychain root.cer",
        ),
        (
            Scope.USER,
            "/usr/bin/security add-trusted-cert -r trustRoot "
            "-k /Users/alice/Library/Keychains/login.keychain-db root.cer",
        ),
    ],
    ids=["machine", "user"],
)
def test_macos_add(scope: Scope, expected: str) -> None:
    assert " ".join(macos.build_add_argv(Path("root.cer"), scope, HOME)) == expected


def test_macos_remove_and_find(anchor: TrustAnchor) -> None:
    sha1 = anchor.sha1.hex().upper()
    assert macos.build_remove_trust_argv(Path("r.cer"), Scope.MACHINE) == [
        "/usr/bin/security",
        "remove-trusted-cert",
        "-d",
        "r.cer",
    ]
    assert macos.build_delete_argv(anchor, Scope.MACHINE, HOME) == [
        "/usr/bin/security",
        "delete-certificate",
        "-Z",
        sha1,
        "/Library/Keychains/System.keychain",
    ]
    assert macos.build_find_argv(Scope.USER, HOME)[-1].endswith("login.keychain-db")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_macos_probe_reads_find_certificate_hashes(anchor: TrustAnchor, algorithm: str) -> None:
    digest = getattr(anchor, algorithm).hex().upper()
    label = "SHA-1" if algorithm == "sha1" else "SHA-256"
    output = f'keychain: "/Library/Keychains/System.keychain"\n{label} hash: {digest}\n'
    assert macos.keychain_holds(output, anchor)
    assert not macos.keychain_holds(output.replace(digest, "00" * len(anchor.sha1)), anchor)


@pytest.mark.parametrize(
    ("scope", "verb", "expected"),
    [
        (Scope.MACHINE, "add", "certutil.exe -addstore -f Root C:\\root.cer"),
        (Scope.USER, "add", "certutil.exe -user -addstore -f Root C:\\root.cer"),
        (Scope.MACHINE, "find", "certutil.exe -store Root {sha1}"),
        (Scope.USER, "find", "certutil.exe -user -store Root {sha1}"),
        (Scope.MACHINE, "delete", "certutil.exe -delstore Root {sha1}"),
        (Scope.USER, "delete", "certutil.exe -user -delstore Root {sha1}"),
    ],
    ids=["add-machine", "add-user", "find-machine", "find-user", "del-machine", "del-user"],
)
def test_windows_command_lines(anchor: TrustAnchor, scope: Scope, verb: str, expected: str) -> None:
    argv = {
        "add": lambda: windows.build_add_argv("C:\\root.cer", scope),
        "find": lambda: windows.build_find_argv(anchor, scope),
        "delete": lambda: windows.build_delete_argv(anchor, scope),
    }[verb]()
    assert " ".join(argv) == expected.format(sha1=anchor.sha1.hex())


def test_windows_scope_is_stated() -> None:
    assert "Local Machine" in windows.SCOPE_LABELS[Scope.MACHINE]
    assert "Current User" in windows.SCOPE_LABELS[Scope.USER]
    assert any("GPO" in line for line in windows.build_gpo_instructions("r.cer"))


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("darwin", macos.MacSystemStore),
        ("win32", windows.WindowsSystemStore),
    ],
    ids=["macos", "windows"],
)
def test_system_store_follows_the_platform(platform: str, expected: type) -> None:
    assert isinstance(system_store(StoreOptions(), platform), expected)


def test_off_platform_stores_are_not_installed_here(anchor: TrustAnchor) -> None:
    for store in (macos.MacSystemStore(), windows.WindowsSystemStore()):
        [report] = store.status(anchor)
        assert report.presence is Presence.NOT_HERE


def test_user_scope_is_refused_for_the_linux_system_store() -> None:
    with pytest.raises(InputError, match="--scope user"):
        system_store(StoreOptions(scope=Scope.USER), "linux")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system", ("system",)),
        ("nss, java,nss", ("nss", "java")),
        ("JAVA", ("java",)),
    ],
    ids=["one", "dedup-and-spaces", "case"],
)
def test_store_names(text: str, expected: tuple[str, ...]) -> None:
    assert parse_store_names(text) == expected


@pytest.mark.parametrize("text", ["keychain", "", "system,chrome"], ids=["unknown", "empty", "mix"])
def test_unknown_store_names_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="unknown trust store"):
        parse_store_names(text)


def test_build_stores_in_the_order_asked() -> None:
    stores = build_stores(("java", "nss"), StoreOptions())
    assert [store.name for store in stores] == ["java", "nss"]
