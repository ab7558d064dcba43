"""Two real `privca serve` processes over one PostgreSQL store behind a "load balancer"
that sends each request to the other replica: a nonce is accepted once across them even
when both race for it, ACME orders finish with every request crossing replicas and no
serial issued twice, a revocation on one is answered by both (OCSP, CRL), and the CRL
number never goes backwards whichever replica signs (both serve the store's newest)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import josepy as jose
import pytest
import requests
from acme import client, messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from tests.acme.conftest import DnsServer, free_port
from tests.acme.jwsclient import RawClient
from tests.acme.test_client_lib import obtain_http01
from tests.acme.test_replicas import BALANCER, RoundRobin
from tests.conftest import PASSPHRASE, write
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.test_app import load, ocsp_request

pytestmark = pytest.mark.postgres
ACCOUNT = {"termsOfServiceAgreed": True}


@dataclass
class Replicas:
    ca: CertificateAuthority
    ports: list[int]
    root: Path
    http_port: int

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.root)
        session.mount(f"https://{BALANCER}", RoundRobin(self.ports))
        return session

    def get(self, replica: int, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.root))
        url = f"https://127.0.0.1:{self.ports[replica]}{path}"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return bytes(response.read())

    def ocsp(self, replica: int, der: bytes) -> ocsp.OCSPResponse:
        context = ssl.create_default_context(cafile=str(self.root))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.ports[replica]}/ocsp",
            data=der,
            headers={"Content-Type": "application/ocsp-request"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return load(response.read())


def _wait_healthy(port: int, root: Path, process: subprocess.Popen[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(root))
    deadline = time.monotonic() + 60
    while True:
        try:
            url = f"https://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                if json.loads(response.read())["status"] == "ok":
                    return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def replicas(
    make_ca,
    postgres_url: str,  # noqa: F811
    dns_server: DnsServer,
    tmp_path: Path,
) -> Iterator[Replicas]:
    ca: CertificateAuthority = make_ca(store_url=postgres_url)
    with ca.home.settings.open("a") as settings:
        settings.write(f'\n[acme]\nbase_url = "https://{BALANCER}/acme"\n')
    passphrase = write(tmp_path / "pass", PASSPHRASE + b"\n", 0o600)
    http_port = free_port()
    ports, processes = [], []
    try:
        for _ in range(2):
            port = free_port()
            command = [
                sys.executable, "-m", "privca", "--home", str(ca.home.root), "serve",
                "--listen", f"127.0.0.1:{port}", "--server-name", "127.0.0.1",
                "--http-01-port", str(http_port), "--dns-resolver", dns_server.address,
                "--allow-loopback-validation", "--passphrase-file", str(passphrase),
            ]  # fmt: skip
            processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
            ports.append(port)
        for port, process in zip(ports, processes, strict=True):
            _wait_healthy(port, ca.home.root_cert, process)
        yield Replicas(ca, ports, ca.home.root_cert, http_port)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _, stderr = process.communicate(timeout=30)
                assert process.returncode == 0, stderr.decode()[-2000:]


def test_two_serve_processes_share_nonces_orders_revocations_and_crl_numbers(
    replicas: Replicas,
) -> None:
    ca = replicas.ca
    # A nonce from one replica, sent to both at once by eight requests: accepted once.
    racer = RawClient(f"https://127.0.0.1:{replicas.ports[0]}/acme/directory", str(replicas.root))
    assert racer.directory["newAccount"] == f"https://{BALANCER}/acme/new-account"
    racer.session = replicas.session()
    nonce = racer.nonce()

    def post(_index: int) -> int:
        reply = racer.post(racer.directory["newAccount"], ACCOUNT, nonce=nonce)
        return reply.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(8)))
    assert sorted(statuses) == [201] + [400] * 7, statuses

    # Orders whose every request goes to the other replica than the one before.
    class Server:  # what obtain_http01 needs
        http_port = replicas.http_port

    issued = []
    for index in range(3):
        net = client.ClientNetwork(
            jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
            alg=jose.ES256,
            verify_ssl=str(replicas.root),
        )
        net.session = replicas.session()
        directory = client.ClientV2.get_directory(f"https://{BALANCER}/acme/directory", net)
        acme = client.ClientV2(directory, net)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        order, _key = obtain_http01(acme, Server(), [f"replica{index}.test"])
        assert order.body.status == messages.STATUS_VALID
        issued.append((acme, order))
    serials = [
        x509.load_pem_x509_certificate(order.fullchain_pem.encode()).serial_number
        for _, order in issued
    ]
    assert len(set(serials)) == 3
    for serial in serials:
        assert ca.inventory.get(serial).status == "issued"

    # Revoked through ACME on whichever replica; both answer for it; the CRL number a
    # client sees asking one replica after the other only rises, and once the builds a
    # revocation set off are over, both serve the store's newest CRL (same number). Two
    # replicas may each sign one when both notice the revocation in the same poll: then
    # the first served may be the lower one, never a CRL older than one already served.
    seen = [_crl_number(replicas, 0, None)]
    for (acme, order), first in zip(issued[:2], (1, 0), strict=True):
        leaf = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
        before = seen[-1]
        acme.revoke(leaf, 1)
        request = ocsp_request(leaf, ca.issuing)
        for replica in (first, 1 - first):
            _wait_revoked(replicas, replica, request)
            seen.append(_crl_number(replicas, replica, leaf.serial_number))
        assert seen[-2] > before, seen
        seen.extend(_converged_crl_numbers(replicas, first, leaf.serial_number))
        assert seen[-1] == seen[-2], seen
    assert seen == sorted(seen), seen


def _wait_revoked(replicas: Replicas, replica: int, request: bytes) -> None:
    deadline = time.monotonic() + 10
    while replicas.ocsp(replica, request).certificate_status != ocsp.OCSPCertStatus.REVOKED:
        assert time.monotonic() < deadline, f"replica {replica} never answered revoked"
        time.sleep(0.2)


def _converged_crl_numbers(replicas: Replicas, first: int, revoked: int) -> list[int]:
    """Every CRLNumber read asking both replicas in turn (`first`, then the other) until
    two reads agree: once no build is under way each serves the store's newest CRL."""
    deadline = time.monotonic() + 10
    numbers: list[int] = []
    while True:
        numbers += [_crl_number(replicas, replica, revoked) for replica in (first, 1 - first)]
        if numbers[-1] == numbers[-2] or time.monotonic() > deadline:
            return numbers
        time.sleep(0.2)


def _crl_number(replicas: Replicas, replica: int, revoked: int | None) -> int:
    deadline = time.monotonic() + 10
    while True:
        crl = x509.load_der_x509_crl(replicas.get(replica, "/crl/issuing.crl"))
        if revoked is None or crl.get_revoked_certificate_by_serial_number(revoked) is not None:
            return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        assert time.monotonic() < deadline, f"replica {replica}'s CRL never listed {revoked:x}"
        time.sleep(0.2)
