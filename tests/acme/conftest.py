"""ACME test fixtures: a real HTTPS server on 127.0.0.1 serving the ACME app, and a
scriptable DNS server (pebble-challtestsrv) that answers every A query with 127.0.0.1 and
holds the TXT records dns-01 needs, so validation does real network I/O on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from starlette.applications import Starlette
from starlette.routing import Mount

from privca.acme.repository import AcmeRepository
from privca.acme.routes import build_acme_app
from privca.acme.service import AcmeService, AcmeSettings
from privca.authority import CertificateAuthority
from privca.server.acme import CertificateAuthorityIssuer
from tests.conftest import require_tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DnsServer:
    """pebble-challtestsrv: DNS on 127.0.0.1:port, managed over HTTP."""

    port: int
    management: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management}{path}", data=json.dumps(body).encode()
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def set_txt(self, name: str, value: str) -> None:
        self._post("/set-txt", {"host": name.rstrip(".") + ".", "value": value})

    def clear_txt(self, name: str) -> None:
        self._post("/clear-txt", {"host": name.rstrip(".") + "."})

    def add_a(self, name: str, addresses: list[str]) -> None:
        self._post("/add-a", {"host": name.rstrip(".") + ".", "addresses": addresses})


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    binary = require_tool("pebble-challtestsrv")
    port, management = free_port(), free_port()
    process = subprocess.Popen(
        [
            binary,
            "-dns01", f"127.0.0.1:{port}",
            "-management", f"127.0.0.1:{management}",
            "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = DnsServer(port, management, process)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.clear_txt("probe.test")
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield server
    process.terminate()
    process.wait(timeout=10)


@dataclass
class AcmeServer:
    url: str  # the directory URL
    base: str
    root_pem: Path
    ca_bundle: Path  # root + issuing, for openssl verify
    ca: CertificateAuthority
    service: AcmeService
    settings: AcmeSettings
    http_port: int
    tls_port: int
    dns: DnsServer
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> AcmeRepository:
        return self.service.repository


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # pragma: no cover - threads have none
        pass


@contextlib.contextmanager
def serve_https(app: Any, ca: CertificateAuthority, directory: Path) -> Iterator[int]:
    issued = ca.issue(["localhost", "127.0.0.1"], profile="server")
    cert = directory / "server.pem"
    key = directory / "server.key"
    cert.write_bytes(issued.chain_pem())
    key.write_bytes(
        issued.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    key.chmod(0o600)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for idle keep-alive clients
        thread.join(timeout=10)


def mount(acme_app: Any) -> Starlette:
    return Starlette(routes=[Mount("/acme", app=acme_app)])


@pytest.fixture
def start_acme(
    ca: CertificateAuthority, dns_server: DnsServer, tmp_path: Path
) -> Iterator[Callable[..., AcmeServer]]:
    stack = contextlib.ExitStack()

    def start(**overrides: Any) -> AcmeServer:
        http_port, tls_port = free_port(), free_port()
        settings = replace(
            AcmeSettings(
                http_01_port=http_port,
                tls_alpn_01_port=tls_port,
                dns_resolver=dns_server.address,
                validation_timeout=5.0,
                # The applicants here are on 127.0.0.1: a single-host lab, so opt in.
                allow_loopback=True,
            ),
            **overrides,
        )
        acme_app = build_acme_app(CertificateAuthorityIssuer(ca), ca.acme_repository(), settings)
        directory = tmp_path / f"srv{len(list(tmp_path.glob('srv*')))}"
        directory.mkdir()
        port = stack.enter_context(serve_https(mount(acme_app), ca, directory))
        root_pem = directory / "root.pem"
        root_pem.write_bytes(ca.root.public_bytes(Encoding.PEM))
        bundle = directory / "bundle.pem"
        bundle.write_bytes(
            ca.root.public_bytes(Encoding.PEM) + ca.issuing.public_bytes(Encoding.PEM)
        )
        base = f"https://127.0.0.1:{port}/acme"
        return AcmeServer(
            url=f"{base}/directory",
            base=base,
            root_pem=root_pem,
            ca_bundle=bundle,
            ca=ca,
            service=acme_app.state.acme_service,
            settings=settings,
            http_port=http_port,
            tls_port=tls_port,
            dns=dns_server,
        )

    yield start
    stack.close()


@pytest.fixture
def acme_server(start_acme: Callable[..., AcmeServer]) -> AcmeServer:
    return start_acme()


def openssl_verify(server: AcmeServer, cert_path: Path) -> None:
    """openssl verify -x509_strict -purpose sslserver against our root + the issuing CA."""
    pems = cert_path.read_text().split("-----END CERTIFICATE-----")
    leaf = cert_path.parent / (cert_path.name + ".leaf.pem")
    leaf.write_text(pems[0] + "-----END CERTIFICATE-----\n")
    result = subprocess.run(
        [
            "openssl", "verify", "-x509_strict", "-purpose", "sslserver",
            "-CAfile", str(server.root_pem), "-untrusted", str(server.ca_bundle), str(leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
