"""A CA with one good and one revoked leaf, and the app served by uvicorn in a thread.

Real HTTP over loopback (no TestClient): the same sockets, parser and routing as
`privca serve`, without paying for a subprocess in every test.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority, IssuedCertificate
from privca.server.app import build_app
from privca.server.limits import uvicorn_options
from privca.server.settings import ServerSettings
from tests.conftest import PASSPHRASE, write


@dataclass
class ServedCA:
    ca: CertificateAuthority
    good: IssuedCertificate
    revoked: IssuedCertificate
    files: Path

    def path(self, name: str) -> str:
        return str(self.files / name)


def publish_root_crl(ca: CertificateAuthority) -> bytes:
    """What `privca crl --root` does: the server serves this file, never signs one."""
    root = next(a for a in ca.authorities() if a.role == "root")
    der = ca.crl(root, days=180).public_bytes(Encoding.DER)
    write(ca.root_crl_file, der)
    return der


def _served(ca: CertificateAuthority, files: Path) -> ServedCA:
    publish_root_crl(ca)
    good = ca.issue(["good.example"])
    revoked = ca.issue(["revoked.example"])
    ca.revoke(format(revoked.serial, "x"), "keyCompromise")
    pem = Encoding.PEM
    write(files / "root.crt", ca.root.public_bytes(pem))
    write(files / "issuing.crt", ca.issuing.public_bytes(pem))
    write(files / "chain.pem", ca.issuing.public_bytes(pem) + ca.root.public_bytes(pem))
    write(files / "good.crt", good.certificate_pem())
    write(files / "revoked.crt", revoked.certificate_pem())
    return ServedCA(ca, good, revoked, files)


@pytest.fixture
def served_ca(make_ca: Callable[..., CertificateAuthority], tmp_path: Path) -> ServedCA:
    """A CA of this test's own: for tests that revoke or issue."""
    return _served(make_ca(), tmp_path / "files")


@pytest.fixture(scope="module")
def shared_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCA]:
    """One CA per module for tests that only read: CA creation and server start-up are
    most of a server test's time."""
    base = tmp_path_factory.mktemp("shared")
    ca = CertificateAuthority.init(base / "ca", "Shared Test CA", passphrase=PASSPHRASE)
    yield _served(ca, base / "files")
    ca.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class LiveServer:
    def __init__(self, base: str, server: uvicorn.Server, app: object) -> None:
        self.base = base
        self.server = server
        self.app = app
        self.port = int(base.rsplit(":", 1)[1])

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_ocsp(self, body: bytes, content_type: str = "application/ocsp-request") -> Reply:
        return self.request("POST", "/ocsp", body, {"Content-Type": content_type})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(
    ca: CertificateAuthority, settings: ServerSettings | None, tls: ssl.SSLContext | None = None
) -> tuple[LiveServer, threading.Thread]:
    settings = settings or ServerSettings()
    app = build_app(ca, settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        **uvicorn_options(settings.http, tls),  # the limits `privca serve` applies
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    scheme = "http" if tls is None else "https"
    return LiveServer(f"{scheme}://127.0.0.1:{port}", server, app), thread


def _stop(live: LiveServer, thread: threading.Thread) -> None:
    live.server.should_exit = True
    thread.join(10)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start `build_app(ca, settings)` under uvicorn in a thread; stopped after the test."""
    started: list[tuple[LiveServer, threading.Thread]] = []

    def start(
        ca: CertificateAuthority,
        settings: ServerSettings | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> LiveServer:
        started.append(_start(ca, settings, tls))
        return started[-1][0]

    yield start
    for live, thread in started:
        _stop(live, thread)


@pytest.fixture(scope="module")
def shared_server(shared_ca: ServedCA) -> Iterator[LiveServer]:
    live, thread = _start(shared_ca.ca, None)
    yield live
    _stop(live, thread)
