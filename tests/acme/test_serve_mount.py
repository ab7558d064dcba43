"""The ACME app mounted at /acme inside `privca serve`'s app (server/app.py build_app),
next to /ocsp and /crl: a full issuance through the composed app."""

from __future__ import annotations

from pathlib import Path

from acme import messages
from cryptography import x509
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


def test_during_a_root_rollover_acme_chains_and_the_servers_own_reach_the_old_root(
    ca: CertificateAuthority, dns_server: DnsServer, tmp_path: Path
) -> None:
    """On rollover day no client has to change (docs/rollover.md): an ACME certificate of
    the new hierarchy comes with the cross-certificate, as `privca issue` writes it, and
    so does serve's own TLS certificate. openssl trusting only the old root accepts both;
    before, both chains stopped at the new issuing CA."""
    import subprocess

    from privca.server.tls import ServerCertificate

    old_root = tmp_path / "old-root.pem"
    old_root.write_bytes(ca.root.public_bytes(Encoding.PEM))
    rollover = ca.rollover_root()
    settings = AcmeSettings(
        http_01_port=free_port(), dns_resolver=dns_server.address, allow_loopback=True
    )
    app = build_app(ca, ServerSettings(acme=settings))
    with serve_https(app, ca, tmp_path) as port:

        class Server:
            url = f"https://127.0.0.1:{port}/acme/directory"
            root_pem = tmp_path / "roots.pem"
            http_port = settings.http_01_port
            ca_bundle = tmp_path / "bundle.pem"

        Server.root_pem.write_bytes(
            old_root.read_bytes() + rollover.root.public_bytes(Encoding.PEM)
        )
        acme = new_client(Server)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        order, _key = obtain_http01(acme, Server, ["rolled.test"])
    served = tmp_path / "fullchain.pem"
    served.write_text(order.fullchain_pem)
    assert rollover.cross.public_bytes(Encoding.PEM).decode() in order.fullchain_pem

    server_certificate = ServerCertificate(ca, ["ca.test"])
    server_certificate.obtain()
    own = tmp_path / "serve-chain.pem"
    own.write_bytes(
        b"".join(
            c.public_bytes(Encoding.PEM)
            for c in x509.load_pem_x509_certificates(server_certificate.certfile.read_bytes())
        )
    )
    for chain in (served, own):
        certificates = x509.load_pem_x509_certificates(chain.read_bytes())
        leaf, untrusted = tmp_path / "leaf.pem", tmp_path / "untrusted.pem"
        leaf.write_bytes(certificates[0].public_bytes(Encoding.PEM))
        untrusted.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certificates[1:]))
        result = subprocess.run(
            ["openssl", "verify", "-x509_strict", "-purpose", "sslserver",
             "-CAfile", str(old_root), "-untrusted", str(untrusted), str(leaf)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (chain.name, result.stdout + result.stderr)
