"""RFC 8555 §11.1: a certificate must not carry an ACME account key. The review finalized
an order with a CSR of the account's own key and got the certificate (Boulder and Pebble
refuse it); now badCSR, for the signer's key and for any other account's."""

from __future__ import annotations

import datetime

import josepy as jose
import pytest
from acme import client, messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.acme.conftest import AcmeServer
from tests.acme.test_client_lib import make_csr, new_client, validate


def _ready_order(acme: client.ClientV2, server: AcmeServer, csr_pem: bytes):
    """An order for the CSR's names with its authorizations valid (http-01, for real)."""
    return validate(acme, server, acme.new_order(csr_pem))


def finalize(acme: client.ClientV2, order):
    return acme.finalize_order(order, datetime.datetime.now() + datetime.timedelta(seconds=20))


def _bad_csr(acme: client.ClientV2, order) -> messages.Error:
    with pytest.raises(messages.Error) as caught:
        finalize(acme, order)
    assert caught.value.typ == "urn:ietf:params:acme:error:badCSR", caught.value
    return caught.value


@pytest.mark.parametrize(
    "account_key",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: rsa.generate_private_key(65537, 2048),
    ],
    ids=["ec", "rsa"],
)
def test_a_csr_of_the_account_key_is_refused(acme_server: AcmeServer, account_key) -> None:
    key = account_key()
    jwk = jose.JWKEC(key=key) if isinstance(key, ec.EllipticCurvePrivateKey) else None
    acme = new_client(acme_server, key=jwk or jose.JWKRSA(key=key))
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    csr_pem, _ = make_csr(["own-key.test"], key=key)
    order = _ready_order(acme, acme_server, csr_pem)
    before = acme_server.ca.inventory.count()
    problem = _bad_csr(acme, order)
    assert "this account's key" in problem.detail
    assert acme_server.ca.inventory.count() == before  # nothing signed

    # The order is still ready: a CSR with a key of its own is issued.
    good_pem, _ = make_csr(["own-key.test"])
    issued = finalize(acme, order.update(csr_pem=good_pem))
    assert issued.body.status == messages.STATUS_VALID


def test_a_csr_of_another_accounts_key_is_refused(acme_server: AcmeServer) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = new_client(acme_server, key=jose.JWKEC(key=other_key))
    other.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    csr_pem, _ = make_csr(["their-key.test"], key=other_key)
    order = _ready_order(acme, acme_server, csr_pem)
    problem = _bad_csr(acme, order)
    assert "an ACME account key" in problem.detail
