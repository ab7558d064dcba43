"""The ACME app mounted at /acme inside `privca serve`'s app (server/app.py build_app),
next to /ocsp and /crl: a full issuance through the composed app."""

from __future__ import annotations

from pathlib import Path

from acme import messages
from cryptography.hazmat.primitives.serialization import Encoding

from privca.acme.service import AcmeSettings
from privca.authority import CertificateAuthority
from privca.server.app import build_app
from privca.server.settings import ServerSettings
from tests.acme.conftest import DnsServer, free_port, openssl_verify, serve_https
from tests.acme.test_client_lib import new_client, obtain_http01


def test_issue_through_the_serve_app(
    ca: CertificateAuthority, dns_server: DnsServer, tmp_path: Path
) -> None:
    settings = AcmeSettings(
        http_01_port=free_port(), dns_resolver=dns_server.address, allow_loopback=True
    )
    app = build_app(ca, ServerSettings(acme=settings))
    with serve_https(app, ca, tmp_path) as port:
        root = tmp_path / "root.pem"
        root.write_bytes(ca.root.public_bytes(Encoding.PEM))

        class Server:
            url = f"https://127.0.0.1:{port}/acme/directory"
            root_pem = root
            http_port = settings.http_01_port
            ca_bundle = tmp_path / "bundle.pem"

        Server.ca_bundle.write_bytes(
            ca.root.public_bytes(Encoding.PEM) + ca.issuing.public_bytes(Encoding.PEM)
        )
        acme = new_client(Server)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        order, _key = obtain_http01(acme, Server, ["served.test"])
        assert order.body.status == messages.STATUS_VALID
        path = tmp_path / "fullchain.pem"
        path.write_text(order.fullchain_pem)
        openssl_verify(Server, path)
