"""newOrder notBefore/notAfter: what the server will not honour is refused at newOrder,
and a valid order shows what its certificate carries.

The review's cases: a notAfter beyond the policy maximum was accepted (201) and every
finalize then failed with badCSR; a notBefore of 1970 was accepted and shown in the order,
while the certificate started at issuance."""

from __future__ import annotations

import datetime as dt

from acme import client, messages
from cryptography import x509

from privca.acme import messages as server_messages
from tests.acme.conftest import AcmeServer
from tests.acme.jwsclient import RawClient
from tests.acme.test_account_key_csr import finalize, validate
from tests.acme.test_client_lib import make_csr, new_client

URN = "urn:ietf:params:acme:error:"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(value: dt.datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _new_order(server: AcmeServer, **validity: dt.datetime):
    raw = RawClient(server.url, str(server.root_pem))
    assert raw.register().status_code == 201
    payload = {"identifiers": [{"type": "dns", "value": "validity.test"}]}
    payload |= {name: _stamp(value) for name, value in validity.items()}
    return raw.post(raw.directory["newOrder"], payload)


def test_a_not_after_beyond_the_policy_is_refused_at_new_order(acme_server: AcmeServer) -> None:
    maximum = acme_server.ca.policy.max_days
    response = _new_order(acme_server, notAfter=_now() + dt.timedelta(days=maximum + 30))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"] == URN + "malformed"
    assert "notAfter" in problem["detail"] and f"maximum of {maximum} days" in problem["detail"]
    within = _new_order(acme_server, notAfter=_now() + dt.timedelta(days=maximum - 1))
    assert within.status_code == 201, within.text


def test_a_not_before_in_the_past_is_refused(acme_server: AcmeServer) -> None:
    response = _new_order(acme_server, notBefore=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    assert response.status_code == 400, response.text
    assert response.json()["type"] == URN + "malformed"
    assert "notBefore" in response.json()["detail"]


def _order_with_validity(acme: client.ClientV2, csr_pem: bytes, **validity: dt.datetime):
    """ClientV2.new_order, with the notBefore/notAfter certbot's class does not model."""
    csr = x509.load_pem_x509_csr(csr_pem)
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    identifiers = [
        messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name)
        for name in names.get_values_for_type(x509.DNSName)
    ]
    body = server_messages.NewOrder(identifiers=identifiers, **validity)
    response = acme._post(acme.directory["newOrder"], body)
    order = messages.Order.from_json(response.json())
    authorizations = [
        acme._authzr_from_response(acme._post_as_get(url), uri=url) for url in order.authorizations
    ]
    return messages.OrderResource(
        body=order,
        uri=response.headers.get("Location"),
        authorizations=authorizations,
        csr_pem=csr_pem,
    )


def test_a_valid_order_shows_the_validity_its_certificate_carries(
    acme_server: AcmeServer,
) -> None:
    acme = new_client(acme_server)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    csr_pem, _key = make_csr(["validity.test"])
    asked_after = _now() + dt.timedelta(days=10, hours=3)
    order = _order_with_validity(acme, csr_pem, not_before=_now(), not_after=asked_after)
    pending = acme._post_as_get(order.uri).json()
    assert pending["notAfter"] == _stamp(asked_after)  # the request, while pending
    issued = finalize(acme, validate(acme, acme_server, order))
    certificate = x509.load_pem_x509_certificate(issued.fullchain_pem.encode())
    shown = acme._post_as_get(issued.uri).json()
    assert shown["notAfter"] == _stamp(certificate.not_valid_after_utc)
    assert shown["notBefore"] == _stamp(certificate.not_valid_before_utc)
    assert certificate.not_valid_after_utc >= asked_after.replace(microsecond=0)


def test_a_date_without_a_time_zone_is_malformed_not_a_server_error(
    acme_server: AcmeServer,
) -> None:
    """RFC 3339 dates carry an offset; one without (or a bare date) could not be compared
    with an instant and was a 500 with a traceback."""
    raw = RawClient(acme_server.url, str(acme_server.root_pem))
    assert raw.register().status_code == 201
    soon = (_now() + dt.timedelta(days=10)).replace(tzinfo=None).isoformat(timespec="seconds")
    for field, value in (("notAfter", soon), ("notAfter", soon[:10]), ("notBefore", soon)):
        payload = {"identifiers": [{"type": "dns", "value": "validity.test"}], field: value}
        response = raw.post(raw.directory["newOrder"], payload)
        assert response.status_code == 400, (field, value, response.text)
        assert response.json()["type"] == URN + "malformed"
