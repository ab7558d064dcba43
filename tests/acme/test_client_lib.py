"""End to end with certbot's `acme` client library in process: the quickest full path."""

from __future__ import annotations

import datetime
from pathlib import Path

import josepy as jose
import pytest
from acme import challenges, client, messages, standalone
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.acme.conftest import AcmeServer


def make_csr(names: list[str], key=None) -> tuple[bytes, object]:
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    general = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(general), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


def new_client(server: AcmeServer, key=None) -> client.ClientV2:
    key = key or jose.JWKRSA(key=rsa.generate_private_key(65537, 2048))
    alg = jose.ES256 if isinstance(key, jose.JWKEC) else jose.RS256
    net = client.ClientNetwork(
        key, alg=alg, user_agent="privca-test", verify_ssl=str(server.root_pem)
    )
    directory = client.ClientV2.get_directory(server.url, net)
    return client.ClientV2(directory, net)


class Http01Server:
    def __init__(self, port: int) -> None:
        self.resources: set = set()
        self.server = standalone.HTTP01DualNetworkedServers(("127.0.0.1", port), self.resources)

    def __enter__(self):
        self.server.serve_forever()
        return self

    def __exit__(self, *exc):
        self.server.shutdown_and_server_close()


def validate(acme: client.ClientV2, server: AcmeServer, order: messages.OrderResource):
    """The order with its authorizations made valid (http-01, for real)."""
    with Http01Server(server.http_port) as http:
        for authz in order.authorizations:
            chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
            response, validation = chall.response_and_validation(acme.net.key)
            http.resources.add(
                standalone.HTTP01RequestHandler.HTTP01Resource(
                    chall=chall.chall, response=response, validation=validation
                )
            )
            acme.answer_challenge(chall, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=20)
        return acme.poll_authorizations(order, deadline)


def obtain_http01(acme: client.ClientV2, server: AcmeServer, names: list[str]):
    csr_pem, key = make_csr(names)
    order = validate(acme, server, acme.new_order(csr_pem))
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=90)
    return acme.finalize_order(order, deadline), key


def test_issue_with_the_acme_library(acme_server: AcmeServer, tmp_path: Path) -> None:
    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, _key = obtain_http01(acme, acme_server, ["a.test", "b.test"])
    assert order.body.status == messages.STATUS_VALID
    path = tmp_path / "fullchain.pem"
    path.write_text(order.fullchain_pem)
    from tests.acme.conftest import openssl_verify

    openssl_verify(acme_server, path)


def test_a_policy_tightened_after_authorization_bites_at_finalize(
    acme_server: AcmeServer,
) -> None:
    from dataclasses import replace as dc_replace

    from privca.policy import IssuancePolicy

    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    csr_pem, _key = make_csr(["late.test"])
    order = acme.new_order(csr_pem)
    with Http01Server(acme_server.http_port) as http:
        for authz in order.authorizations:
            chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
            response, validation = chall.response_and_validation(acme.net.key)
            http.resources.add(
                standalone.HTTP01RequestHandler.HTTP01Resource(
                    chall=chall.chall, response=response, validation=validation
                )
            )
            acme.answer_challenge(chall, response)
        order = acme.poll_authorizations(order, _deadline())
    # The operator narrows the policy in privca.toml after the names were authorized.
    ca = acme_server.ca
    tightened = dc_replace(ca.settings, policy=IssuancePolicy.build(["corp.internal"]))
    tightened.write(ca.home.settings)
    import os

    os.utime(ca.home.settings, (1, 1))  # a different mtime than the one the issuer saw
    before = ca.inventory.count()
    with pytest.raises(messages.Error) as refused:
        acme.finalize_order(order, _deadline())
    assert refused.value.typ == "urn:ietf:params:acme:error:rejectedIdentifier"
    assert ca.inventory.count() == before  # nothing was signed


def _deadline():
    import datetime

    return datetime.datetime.now() + datetime.timedelta(seconds=20)


def test_ip_identifier_over_http01_and_renewal_info(acme_server: AcmeServer) -> None:
    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, _key = obtain_http01(acme, acme_server, ["127.0.0.1"])
    cert = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (89, 90)

    import requests

    from privca.acme.renewal import ari_cert_id

    session = requests.Session()
    session.trust_env = False
    url = acme.directory["renewalInfo"] + "/" + ari_cert_id(cert)
    response = session.get(url, verify=str(acme_server.root_pem), timeout=10)
    assert response.status_code == 200, response.text
    window = messages.RenewalInfo.from_json(response.json()).suggested_window
    assert cert.not_valid_before_utc < window.start < window.end < cert.not_valid_after_utc
    assert int(response.headers["Retry-After"]) > 0
    bogus = session.get(url[:-4] + "AAAA", verify=str(acme_server.root_pem), timeout=10)
    assert bogus.status_code in (400, 404)

    # revocation by the certificate key (jwk), not the account
    key_client = new_client(acme_server, key=jose.JWKEC(key=_key))
    key_client.revoke(cert, 1)
    assert acme_server.ca.inventory.get(cert.serial_number).status == "revoked"
    after = session.get(url, verify=str(acme_server.root_pem), timeout=10).json()
    window = messages.RenewalInfo.from_json(after).suggested_window
    import datetime

    assert window.end <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)


def test_ari_replaces_marks_the_old_certificate_superseded(acme_server: AcmeServer) -> None:
    """A renewal that names the certificate it replaces (RFC 9773 §5) supersedes it."""
    from privca._time import utcnow
    from privca.acme.messages import NewOrder
    from privca.acme.renewal import ari_cert_id

    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    first, _key = obtain_http01(acme, acme_server, ["renewed.test"])
    old = x509.load_pem_x509_certificate(first.fullchain_pem.encode())

    csr_pem, _new_key = make_csr(["renewed.test"])
    payload = NewOrder(
        identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="renewed.test")],
        replaces=ari_cert_id(old),
    )
    response = acme._post(acme.directory["newOrder"], payload)
    body = messages.Order.from_json(response.json())
    authorizations = [
        acme._authzr_from_response(acme._post_as_get(url), uri=url) for url in body.authorizations
    ]
    order = messages.OrderResource(
        body=body,
        uri=response.headers.get("Location"),
        authorizations=authorizations,
        csr_pem=csr_pem,
    )
    with Http01Server(acme_server.http_port) as http:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
            answer, validation = chall.response_and_validation(acme.net.key)
            http.resources.add(
                standalone.HTTP01RequestHandler.HTTP01Resource(
                    chall=chall.chall, response=answer, validation=validation
                )
            )
            acme.answer_challenge(chall, answer)
        order = acme.poll_and_finalize(order)
    new = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    record = acme_server.ca.inventory.get(old.serial_number)
    assert record.superseded_by == new.serial_number
    assert record.status_at(utcnow()) == "superseded"


def test_ari_says_renew_now_once_the_issuing_ca_is_revoked(acme_server: AcmeServer) -> None:
    """A compromised issuing CA revoked (`privca issuer revoke`): every ACME client that
    asks renewalInfo renews at once, under the new issuing CA, without anyone touching it."""
    import datetime

    import requests

    from privca.acme.renewal import ari_cert_id

    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, _key = obtain_http01(acme, acme_server, ["under-old-ca.test"])
    cert = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    session = requests.Session()
    session.trust_env = False
    url = acme.directory["renewalInfo"] + "/" + ari_cert_id(cert)

    def window() -> messages.RenewalInfo.SuggestedWindow:
        response = session.get(url, verify=str(acme_server.root_pem), timeout=10)
        assert response.status_code == 200, response.text
        return messages.RenewalInfo.from_json(response.json()).suggested_window

    assert window().start > cert.not_valid_before_utc + datetime.timedelta(days=30)
    ca = acme_server.ca
    old = ca.registry.issuing
    ca.rotate_issuing()
    ca.revoke_issuing_ca(old, "caCompromise")
    assert window().end <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    # The renewal comes from the new issuing CA.
    renewed, _key = obtain_http01(acme, acme_server, ["under-old-ca.test"])
    new = x509.load_pem_x509_certificate(renewed.fullchain_pem.encode())
    assert new.issuer == ca.registry.issuing.certificate.subject
    assert new.issuer != old.certificate.subject
