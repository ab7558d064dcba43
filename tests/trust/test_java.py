"""Java keystores with the real keytool, judged by a real JSSE handshake."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from privca.trust import Presence, Result, read_anchor
from privca.trust.java import (
    JavaStore,
    Keystore,
    build_delete_argv,
    build_import_argv,
    discover_keystores,
    list_entries,
)
from tests.trust.support import TestCA, TlsServer, require_tool

CLIENT = Path(__file__).with_name("TlsClient.java")


def java_handshake(truststore: Path, server: TlsServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_tool("java"),
            f"-Djavax.net.ssl.trustStore={truststore}",
            "-Djavax.net.ssl.trustStorePassword=changeit",
            str(CLIENT),
            "127.0.0.1",
            str(server.port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def jdk_cacerts_copy(tmp_path: Path) -> Path:
    require_tool("keytool")
    keystores = discover_keystores()
    if not keystores:
        pytest.skip("no JDK cacerts found (CI installs a JDK)")
    copy = tmp_path / "cacerts"
    shutil.copyfile(keystores[0].path, copy)
    return copy


def test_copy_of_jdk_cacerts_makes_java_trust_the_server_until_uninstall(
    jdk_cacerts_copy: Path, root_ca: TestCA, tls_server: TlsServer
) -> None:
    store = JavaStore((jdk_cacerts_copy,))
    anchor = read_anchor(root_ca.path)
    public_cas = len(list_entries(jdk_cacerts_copy))

    [outcome] = store.install(anchor)
    assert outcome.result is Result.INSTALLED
    handshake = java_handshake(jdk_cacerts_copy, tls_server)
    assert handshake.returncode == 0, handshake.stderr
    assert "handshake ok" in handshake.stdout
    assert store.install(anchor)[0].result is Result.ALREADY_INSTALLED

    [outcome] = store.uninstall(anchor)
    assert outcome.result is Result.REMOVED
    assert len(list_entries(jdk_cacerts_copy)) == public_cas
    handshake = java_handshake(jdk_cacerts_copy, tls_server)
    assert handshake.returncode != 0
    assert "PKIX path building failed" in handshake.stderr


def test_new_truststore_is_pkcs12_with_only_our_root(
    tmp_path: Path, root_ca: TestCA, other_ca: TestCA
) -> None:
    require_tool("keytool")
    truststore = tmp_path / "new-truststore.p12"
    store = JavaStore((truststore,))
    first, second = read_anchor(root_ca.path), read_anchor(other_ca.path)
    [outcome] = store.install(first)
    assert "new PKCS#12 truststore" in (outcome.note or "")
    store.install(second)
    assert list_entries(truststore) == {first.slug: first.sha256, second.slug: second.sha256}
    listing = subprocess.run(
        ["keytool", "-list", "-keystore", str(truststore), "-storepass", "changeit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "PKCS12" in listing

    store.uninstall(first)
    assert store.status(first)[0].presence is Presence.ABSENT
    assert store.status(second)[0].presence is Presence.PRESENT


def test_uninstall_removes_every_alias_holding_the_root(tmp_path: Path, root_ca: TestCA) -> None:
    """ca-certificates-java names its copy debian:<file>.pem: that copy is ours too."""
    require_tool("keytool")
    truststore = tmp_path / "cacerts.p12"
    anchor = read_anchor(root_ca.path)
    env = {"PRIVCA_KEYTOOL_STOREPASS": "changeit", "PATH": "/usr/bin:/bin"}
    for alias in ("debian:privca-copy.pem", "mine"):
        subprocess.run(
            build_import_argv("keytool", truststore, alias, new=not truststore.exists()),
            input=anchor.pem,
            env=env,
            check=True,
            capture_output=True,
        )
    [outcome] = JavaStore((truststore,)).uninstall(anchor)
    assert outcome.result is Result.REMOVED and len(outcome.steps) == 2
    assert list_entries(truststore) == {}


def test_jdks_sharing_one_cacerts_are_one_keystore(tmp_path: Path) -> None:
    shared = tmp_path / "etc/cacerts"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"keystore")
    jvm = tmp_path / "jvm"
    for jdk in ("jdk-17", "jdk-21"):
        (jvm / jdk / "lib/security").mkdir(parents=True)
        (jvm / jdk / "lib/security/cacerts").symlink_to(shared)
    (jvm / "jre-8/jre/lib/security").mkdir(parents=True)
    (jvm / "jre-8/jre/lib/security/cacerts").write_bytes(b"other")
    found = discover_keystores(java_home=None, jvm_dirs=[jvm])
    assert found == [
        Keystore(shared, ("jdk-17", "jdk-21")),
        Keystore((jvm / "jre-8/jre/lib/security/cacerts").resolve(), ("jre-8",)),
    ]


def test_debian_keystore_is_said_to_follow_the_system_store() -> None:
    keystore = Keystore(Path("/etc/ssl/certs/java/cacerts"))
    if keystore.follows_system is None:
        pytest.skip("not a Debian machine with ca-certificates-java")
    assert "ca-certificates-java" in keystore.follows_system


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            build_import_argv("keytool", Path("/ks"), "a", new=False),
            "keytool -importcert -noprompt -trustcacerts -alias a -keystore /ks "
            "-storepass:env PRIVCA_KEYTOOL_STOREPASS",
        ),
        (
            build_import_argv("keytool", Path("/ks"), "a", new=True),
            "keytool -importcert -noprompt -trustcacerts -alias a -keystore /ks "
            "-storepass:env PRIVCA_KEYTOOL_STOREPASS -storetype PKCS12",
        ),
        (
            build_delete_argv("keytool", Path("/ks"), "a"),
            "keytool -delete -alias a -keystore /ks -storepass:env PRIVCA_KEYTOOL_STOREPASS",
        ),
    ],
    ids=["import", "import-new", "delete"],
)
def test_keytool_command_lines_keep_the_password_off_argv(argv: list[str], expected: str) -> None:
    assert " ".join(argv) == expected
    assert "changeit" not in argv
