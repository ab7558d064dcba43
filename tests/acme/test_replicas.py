"""Two ACME app instances over one PostgreSQL store, behind a "load balancer" that sends
each request to the other replica: nonces work once across replicas, orders finish, and no
serial is issued twice."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import pytest
import requests
from acme import client, messages

from privca.acme.routes import build_acme_app
from privca.acme.service import AcmeSettings
from privca.authority import CertificateAuthority
from privca.server.acme import CertificateAuthorityIssuer
from tests.acme.conftest import DnsServer, free_port, mount, serve_https
from tests.acme.jwsclient import RawClient
from tests.acme.test_client_lib import obtain_http01
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.postgres
BALANCER = "127.0.0.1:1"  # the public address; the adapter below picks a replica per request


class RoundRobin(requests.adapters.HTTPAdapter):
    def __init__(self, ports: list[int]) -> None:
        super().__init__()
        self.ports = itertools.cycle(ports)

    def send(self, request, **kwargs):  # type: ignore[override]
        request.url = request.url.replace(BALANCER, f"127.0.0.1:{next(self.ports)}", 1)
        return super().send(request, **kwargs)


@pytest.fixture
def replicas(make_ca, postgres_url: str, dns_server: DnsServer, tmp_path: Path):  # noqa: F811
    ca = make_ca(store_url=postgres_url)
    second = CertificateAuthority.open(ca.home.root, PASSPHRASE)
    http_port = free_port()
    settings = AcmeSettings(
        http_01_port=http_port,
        dns_resolver=dns_server.address,
        base_url=f"https://{BALANCER}/acme",
        allow_loopback=True,
    )
    ports = []
    with contextlib.ExitStack() as stack:
        for index, authority in enumerate((ca, second)):
            app = build_acme_app(
                CertificateAuthorityIssuer(authority), authority.acme_repository(), settings
            )
            directory = tmp_path / f"replica{index}"
            directory.mkdir()
            ports.append(stack.enter_context(serve_https(mount(app), authority, directory)))
        root = tmp_path / "root.pem"
        from cryptography.hazmat.primitives.serialization import Encoding

        root.write_bytes(ca.root.public_bytes(Encoding.PEM))
        yield ca, ports, root, http_port
    second.close()


def _session(ports: list[int], root: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(root)
    session.mount(f"https://{BALANCER}", RoundRobin(ports))
    return session


def test_a_nonce_from_one_replica_works_once_on_the_other(replicas) -> None:
    _ca, ports, root, _http = replicas
    a = RawClient(f"https://127.0.0.1:{ports[0]}/acme/directory", str(root))
    assert a.directory["newAccount"].startswith(f"https://{BALANCER}/")
    a.session = _session(ports, root)
    nonce = a.nonce()  # from one replica
    first = a.post(a.directory["newAccount"], {"termsOfServiceAgreed": True}, nonce=nonce)
    assert first.status_code == 201, first.text  # used on the other
    again = a.post(a.directory["newAccount"], {}, nonce=nonce)
    assert again.status_code == 400 and again.json()["type"].endswith(":badNonce")


def test_orders_finish_across_replicas_without_duplicate_serials(replicas) -> None:
    ca, ports, root, http_port = replicas

    class Server:  # what obtain_http01 needs
        pass

    server = Server()
    server.http_port = http_port

    def one(index: int) -> int:
        import josepy as jose
        from cryptography.hazmat.primitives.asymmetric import ec

        key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=str(root))
        net.session = _session(ports, root)
        directory = client.ClientV2.get_directory(f"https://{BALANCER}/acme/directory", net)
        acme = client.ClientV2(directory, net)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        order, _ = obtain_http01(acme, server, [f"r{index}.test"])
        assert order.body.status == messages.STATUS_VALID
        from cryptography import x509

        return x509.load_pem_x509_certificate(order.fullchain_pem.encode()).serial_number

    serials = [one(i) for i in range(3)]
    assert len(set(serials)) == 3
    for serial in serials:
        assert ca.inventory.get(serial).status == "issued"
