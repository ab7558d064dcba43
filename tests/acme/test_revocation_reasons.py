"""ACME revokeCert: a reason only gets worse, whoever signs (the account or the key).

The attack from the field: revokeCert with reason 4 (superseded, what renewals use), then
reason 1 (keyCompromise) signed by the certificate's own key used to get alreadyRevoked,
and a new order with that key was issued. Now reason 1 changes the revocation (first date
kept), the key is barred, and the CRL says keyCompromise.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import josepy as jose
import pytest
from acme import errors, messages
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.acme.conftest import AcmeServer
from tests.acme.test_client_lib import make_csr, new_client, obtain_http01
from tests.conftest import require_tool


def _problem(call) -> messages.Error:
    with pytest.raises(messages.Error) as caught:
        call()
    return caught.value


def test_revoke_cert_reason_only_gets_worse(acme_server: AcmeServer, tmp_path: Path) -> None:
    account = new_client(acme_server)
    account.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, key = obtain_http01(account, acme_server, ["stolen.test"])
    cert = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    store = acme_server.ca.inventory

    account.revoke(cert, 4)  # superseded, as a renewal would
    first = store.get(cert.serial_number)
    assert first is not None and first.revocation_reason == "superseded"

    again = _problem(lambda: account.revoke(cert, 4))
    assert again.typ == "urn:ietf:params:acme:error:alreadyRevoked"
    by_key = new_client(acme_server, key=jose.JWKEC(key=key))
    milder = _problem(lambda: by_key.revoke(cert, 0))
    assert milder.typ == "urn:ietf:params:acme:error:alreadyRevoked"
    assert "can only change to keyCompromise" in milder.detail

    by_key.revoke(cert, 1)  # signed by the certificate key (jwk), not the account
    worse = store.get(cert.serial_number)
    assert worse is not None and worse.revocation_reason == "keyCompromise"
    assert worse.revoked_at == first.revoked_at
    assert _problem(lambda: by_key.revoke(cert, 1)).typ.endswith(":alreadyRevoked")
    assert _problem(lambda: account.revoke(cert, 5)).typ.endswith(":alreadyRevoked")

    # The CRL, as openssl reads it.
    require_tool("openssl")
    crl_path = tmp_path / "issuing.crl"
    crl_path.write_bytes(acme_server.ca.crl().public_bytes(Encoding.DER))
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(crl_path), "-noout", "-text"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert f"{cert.serial_number:X}" in text.replace(":", "").upper()
    assert "Key Compromise" in text

    # And the key is barred: an order finalized with it is refused, nothing signed.
    csr_pem, _same_key = make_csr(["again.test"], key=key)
    before = store.count()
    with pytest.raises((messages.Error, errors.Error)) as refused:
        _finalize(account, acme_server, csr_pem)
    assert "keyCompromise" in str(refused.value)
    assert store.count() == before


def _finalize(account, server: AcmeServer, csr_pem: bytes) -> None:
    import datetime

    from acme import challenges, standalone

    from tests.acme.test_client_lib import Http01Server

    order = account.new_order(csr_pem)
    with Http01Server(server.http_port) as http:
        for authz in order.authorizations:
            chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
            response, validation = chall.response_and_validation(account.net.key)
            http.resources.add(
                standalone.HTTP01RequestHandler.HTTP01Resource(
                    chall=chall.chall, response=response, validation=validation
                )
            )
            account.answer_challenge(chall, response)
        account.poll_and_finalize(order, datetime.datetime.now() + datetime.timedelta(seconds=20))


def test_unrevocation_reasons_are_refused(acme_server: AcmeServer) -> None:
    account = new_client(acme_server)
    account.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, _key = obtain_http01(account, acme_server, ["hold.test"])
    cert = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    for code in (6, 8):  # certificateHold, removeFromCRL
        problem = _problem(lambda code=code: account.revoke(cert, code))
        assert problem.typ == "urn:ietf:params:acme:error:badRevocationReason"
    assert acme_server.ca.inventory.get(cert.serial_number).status == "issued"


@pytest.mark.parametrize("payload_reason", [{}, {"reason": None}], ids=["absent", "null"])
def test_a_revocation_without_a_reason_is_unspecified(
    acme_server: AcmeServer, payload_reason: dict
) -> None:
    """RFC 8555 §7.6 makes `reason` optional (lego's library leaves it out); it was refused
    as malformed because certbot's Revocation class requires it."""
    from tests.acme.jwsclient import RawClient, b64

    account = new_client(acme_server)
    account.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    order, key = obtain_http01(account, acme_server, ["no-reason.test"])
    cert = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
    by_key = RawClient(acme_server.url, str(acme_server.root_pem), key=jose.JWKEC(key=key))
    payload = {"certificate": b64(cert.public_bytes(Encoding.DER)), **payload_reason}
    response = by_key.post(by_key.directory["revokeCert"], payload, use_jwk=True)
    assert response.status_code == 200, response.text
    record = acme_server.ca.inventory.get(cert.serial_number)
    assert record is not None and record.revocation_reason == "unspecified"
