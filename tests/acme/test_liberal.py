"""Liberal in what the ACME server accepts: server-owned members and zero values that real
clients echo are ignored; a malformed member is named (never echoed) in the problem."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.acme.conftest import AcmeServer, DnsServer
from tests.acme.jwsclient import RawClient, b64

URN = "urn:ietf:params:acme:error:"
IDENTIFIERS = [{"type": "dns", "value": "liberal.test"}]
# Exactly what Caddy 2.6 (acmez) sends besides the identifiers.
CADDY_ZERO_VALUES: dict[str, Any] = {
    "status": "",
    "expires": "0001-01-01T00:00:00Z",
    "authorizations": None,
    "finalize": "",
    "certificate": "",
}


@pytest.fixture(scope="module")
def acme_server(
    tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServer
) -> Iterator[AcmeServer]:
    """One server for the module (each test registers its own account): starting a CA and
    a server per test would be most of this module's time."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from privca.acme.routes import build_acme_app
    from privca.acme.service import AcmeSettings
    from privca.authority import CertificateAuthority
    from privca.server.acme import CertificateAuthorityIssuer
    from tests.acme.conftest import free_port, mount, serve_https
    from tests.conftest import PASSPHRASE

    base = tmp_path_factory.mktemp("liberal")
    ca = CertificateAuthority.init(base / "ca", "Liberal Test CA", passphrase=PASSPHRASE)
    settings = AcmeSettings(
        http_01_port=free_port(),
        tls_alpn_01_port=free_port(),
        dns_resolver=dns_server.address,
        validation_timeout=5.0,
    )
    app = build_acme_app(CertificateAuthorityIssuer(ca), ca.acme_repository(), settings)
    root_pem = base / "root.pem"
    root_pem.write_bytes(ca.root.public_bytes(Encoding.PEM))
    with serve_https(mount(app), ca, base) as port:
        url = f"https://127.0.0.1:{port}/acme"
        yield AcmeServer(
            url=f"{url}/directory",
            base=url,
            root_pem=root_pem,
            ca_bundle=root_pem,
            ca=ca,
            service=app.state.acme_service,
            settings=settings,
            http_port=settings.http_01_port,
            tls_port=settings.tls_alpn_01_port,
            dns=dns_server,
        )
    ca.close()


@pytest.fixture
def client(acme_server: AcmeServer) -> RawClient:
    c = RawClient(acme_server.url, str(acme_server.root_pem))
    assert c.register().status_code == 201
    return c


ACCEPTED_ORDERS: dict[str, dict[str, Any]] = {
    "caddy-zero-values": CADDY_ZERO_VALUES,
    "server-owned-with-values": {
        "status": "valid",
        "expires": "2999-01-01T00:00:00Z",
        "authorizations": ["https://evil.test/authz/1"],
        "finalize": "https://evil.test/finalize",
        "certificate": "https://evil.test/cert",
        "error": {"type": "x"},
    },
    "server-owned-with-wrong-types": {
        "status": 7,
        "expires": ["x"],
        "authorizations": "nope",
        "finalize": {},
        "certificate": 1.5,
        "error": "x",
    },
    "zero-not-before-and-after": {
        "notBefore": "0001-01-01T00:00:00Z",
        "notAfter": "0001-01-01T00:00:00Z",
    },
    "null-optionals": {"notBefore": None, "notAfter": None, "replaces": None, "profile": None},
    "empty-optionals": {"notAfter": "", "replaces": "", "profile": ""},
    "unknown-members": {"x-vendor": {"deep": [1, 2]}, "wildcard": False},
}


@pytest.mark.parametrize("extra", ACCEPTED_ORDERS.values(), ids=list(ACCEPTED_ORDERS))
def test_new_order_ignores_what_the_server_owns(client: RawClient, extra: dict[str, Any]) -> None:
    response = client.post(client.directory["newOrder"], {"identifiers": IDENTIFIERS, **extra})
    assert response.status_code == 201, response.text
    order = response.json()
    # The server's own values, not the client's.
    assert order["status"] == "pending"
    assert order["finalize"].startswith(client.directory["newOrder"].rsplit("/", 1)[0])
    assert "evil.test" not in response.text
    assert len(order["authorizations"]) == 1
    assert order["expires"] > "2000"


# payload -> the member the problem detail must name
MALFORMED_ORDERS: dict[str, tuple[dict[str, Any], str]] = {
    "no-identifiers": ({}, "'identifiers'"),
    "identifiers-null": ({"identifiers": None}, "'identifiers'"),
    "identifiers-a-string": ({"identifiers": "liberal.test"}, "'identifiers'"),
    "identifier-not-object": ({"identifiers": ["liberal.test"]}, "'identifiers'"),
    "not-after-text": ({"identifiers": IDENTIFIERS, "notAfter": "next week"}, "'notAfter'"),
    "not-before-number": ({"identifiers": IDENTIFIERS, "notBefore": 17}, "'notBefore'"),
    "replaces-object": ({"identifiers": IDENTIFIERS, "replaces": {"a": 1}}, "'replaces'"),
}


@pytest.mark.parametrize(
    ("payload", "member"), MALFORMED_ORDERS.values(), ids=list(MALFORMED_ORDERS)
)
def test_a_malformed_new_order_names_the_member(
    client: RawClient, payload: dict[str, Any], member: str
) -> None:
    response = client.post(client.directory["newOrder"], payload)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == URN + "malformed"
    assert member in problem["detail"], problem


def test_a_hostile_value_is_named_but_never_echoed(client: RawClient) -> None:
    hostile = "\x1b[31m<script>alert(1)</script>\u202e"
    payload = {"identifiers": IDENTIFIERS, "notAfter": hostile}
    problem = client.post(client.directory["newOrder"], payload).json()
    assert "'notAfter'" in problem["detail"] and "RFC 3339" in problem["detail"]
    assert "script" not in problem["detail"] and "\x1b" not in problem["detail"]


def test_new_account_and_account_update_ignore_zero_and_server_values(
    acme_server: AcmeServer,
) -> None:
    c = RawClient(acme_server.url, str(acme_server.root_pem))
    response = c.post(
        c.directory["newAccount"],
        {"termsOfServiceAgreed": True, "status": "", "orders": "", "contact": None},
    )
    assert response.status_code == 201, response.text
    c.kid = response.headers["Location"]
    update = c.post(c.kid, {"status": "", "contact": ["mailto:ops@liberal.test"]})
    assert update.status_code == 200, update.text
    assert update.json()["status"] == "valid"
    assert update.json()["contact"] == ["mailto:ops@liberal.test"]


def ready_order(server: AcmeServer, client: RawClient) -> tuple[str, dict[str, Any]]:
    """An order made ready by a real dns-01 validation (TXT record in challtestsrv)."""
    response = client.post(client.directory["newOrder"], {"identifiers": IDENTIFIERS})
    order_url, order = response.headers["Location"], response.json()
    authz = client.post(order["authorizations"][0], None).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    key_authorization = f"{challenge['token']}.{b64(client.key.thumbprint())}"
    server.dns.set_txt(
        "_acme-challenge.liberal.test", b64(hashlib.sha256(key_authorization.encode()).digest())
    )
    assert client.post(challenge["url"], {}).json()["status"] == "valid"
    order = client.post(order_url, None).json()
    assert order["status"] == "ready", order
    return order_url, order


FINALIZE_PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "no-csr": ({"status": ""}, "has no 'csr'"),
    "csr-number": ({"csr": 5}, "'csr'"),
    "csr-not-base64url": ({"csr": "!!!"}, "'csr'"),
}


@pytest.mark.parametrize(
    ("payload", "fragment"), FINALIZE_PAYLOADS.values(), ids=list(FINALIZE_PAYLOADS)
)
def test_a_malformed_finalize_names_the_member(
    acme_server: AcmeServer, client: RawClient, payload: dict[str, Any], fragment: str
) -> None:
    order_url, order = ready_order(acme_server, client)
    response = client.post(order["finalize"], payload)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"], response.text
    # The order stays ready: a malformed finalize changes nothing.
    assert client.post(order_url, None).json()["status"] == "ready"


def test_revoke_cert_without_certificate_names_it(client: RawClient) -> None:
    response = client.post(client.directory["revokeCert"], {"reason": 0})
    assert response.status_code == 400
    assert "has no 'certificate'" in response.json()["detail"]
