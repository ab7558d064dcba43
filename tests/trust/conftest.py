"""Fixtures: two test CAs, a loopback TLS server, store sandboxes, an isolated HOME."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from privca.trust.linux import build_refresh_argv
from tests.trust.support import DEBIAN, TestCA, TlsServer, make_ca, require_tool


@pytest.fixture(scope="session")
def root_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("root-ca"), "Example Internal CA", "root.crt")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("other-ca"), "Other Team Root", "other.crt")


@pytest.fixture(scope="session")
def tls_server(root_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    server = TlsServer(root_ca, tmp_path_factory.mktemp("tls-server"))
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep the developer's own Firefox profiles and settings out of every test."""
    home = tmp_path_factory.mktemp("user-home")
    monkeypatch.setenv("HOME", str(home))
    for name in ("PRIVCA_TRUST_SYSTEM_ROOT", "PRIVCA_TRUST_NSS_DBS", "PRIVCA_TRUST_JAVA_KEYSTORES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def debian_root(tmp_path: Path, other_ca: TestCA) -> Path:
    """A directory laid out like a Debian /, with one distribution CA, freshly generated."""
    require_tool("update-ca-certificates")
    root = tmp_path / "sysroot"
    (root / "etc/ssl/certs").mkdir(parents=True)
    (root / "etc/ca-certificates/update.d").mkdir(parents=True)
    (root / "usr/local/share/ca-certificates").mkdir(parents=True)
    distro = root / "usr/share/ca-certificates/distro"
    distro.mkdir(parents=True)
    (distro / "Distro_Root.crt").write_bytes(other_ca.pem)
    (root / "etc/ca-certificates.conf").write_text("distro/Distro_Root.crt\n")
    argv = build_refresh_argv(DEBIAN, "update-ca-certificates", root)
    subprocess.run(argv, check=True, capture_output=True)
    return root


@pytest.fixture
def nss_db(tmp_path: Path) -> Path:
    require_tool("certutil")
    database = tmp_path / "nssdb"
    database.mkdir()
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{database}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    return database
