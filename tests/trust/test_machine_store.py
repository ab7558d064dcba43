"""This machine's own system store, for real: only under CI=true (CI runs as root).

The store is always restored (try/finally), and the test proves it: the bundle is
byte-identical afterwards and the distro JDK keystore holds the same certificates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from privca.cli.main import cli
from privca.trust import read_anchor
from privca.trust.java import list_entries
from privca.trust.linux import LinuxSystemStore, bundle_holds
from tests.trust.support import TestCA, TlsServer, curl_status, python_handshake, require_tool

CERTS_DIR = Path("/etc/ssl/certs")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_JAVA_KEYSTORE = Path("/etc/ssl/certs/java/cacerts")

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("CI") != "true", reason="changes this machine's trust store: CI=true only"
    ),
    pytest.mark.skipif(
        hasattr(os, "geteuid") and os.geteuid() != 0, reason="needs root (as in CI)"
    ),
]


def java_fingerprints() -> set[bytes] | None:
    if not DEBIAN_JAVA_KEYSTORE.exists() or shutil.which("keytool") is None:
        return None
    return set(list_entries(DEBIAN_JAVA_KEYSTORE).values())


def trust(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["trust", *args])
    return result.exit_code, result.output


def test_machine_store_install_makes_curl_and_python_trust_the_server(
    root_ca: TestCA, tls_server: TlsServer, tmp_path: Path
) -> None:
    require_tool("update-ca-certificates")
    if LinuxSystemStore().family() is None or not SYSTEM_BUNDLE.exists():
        pytest.skip("not a Debian-family machine")
    anchor = read_anchor(root_ca.path)
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_CERT", "CURL_CA"))}
    bundle_before = SYSTEM_BUNDLE.read_bytes()
    java_before = java_fingerprints()
    assert curl_status(tls_server.url) != 0
    assert python_handshake(tls_server.port, clean_env).returncode != 0

    # update-ca-certificates also rewrites unrelated entries (a hand-placed PEM becomes a
    # symlink, the Java hook adds aliases): keep an exact copy to put back afterwards.
    backup = tmp_path / "etc-ssl-certs"
    shutil.copytree(CERTS_DIR, backup, symlinks=True)
    java_store = Path("/etc/ssl/certs/java/cacerts")
    java_backup = java_store.read_bytes() if java_store.is_file() else None
    try:
        code, output = trust("install", "--stores", "system", str(root_ca.path))
        assert code == 0, output
        assert bundle_holds(SYSTEM_BUNDLE, anchor.der)
        assert curl_status(tls_server.url) == 0
        handshake = python_handshake(tls_server.port, clean_env)
        assert handshake.returncode == 0, handshake.stderr
    finally:
        code, output = trust("uninstall", "--stores", "system", str(root_ca.path))
        if code != 0:  # never leave the machine trusting a test CA
            leftover = Path("/usr/local/share/ca-certificates") / f"{anchor.slug}.crt"
            leftover.unlink(missing_ok=True)
            subprocess.run(["update-ca-certificates", "--fresh"], capture_output=True)
        restored = tmp_path / "etc-ssl-certs-after"
        shutil.move(CERTS_DIR, restored)
        shutil.copytree(backup, CERTS_DIR, symlinks=True)
        if java_backup is not None:
            java_store.write_bytes(java_backup)

    assert code == 0, output
    assert curl_status(tls_server.url) != 0
    assert python_handshake(tls_server.port, clean_env).returncode != 0
    assert SYSTEM_BUNDLE.read_bytes() == bundle_before
    assert java_fingerprints() == java_before
