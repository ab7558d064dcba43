"""Requests that prove nothing about who sends them write nothing: no nonce rows, no
commit that would invalidate the OCSP fast path (RFC 8555 §6.5: nonces come from
newNonce and in answers to JWS POSTs only, and handing one out writes nothing)."""

from __future__ import annotations

import http.client

import sqlalchemy as sa

from privca.acme.service import AcmeSettings
from privca.server.settings import ServerSettings
from privca.store.schema import acme_spent_nonces
from tests.server.conftest import ServedCA
from tests.server.test_app import ocsp_request


def nonce_rows(served: ServedCA) -> int:
    with served.ca.inventory.database.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(acme_spent_nonces)
        return int(connection.execute(query).scalar())


def test_a_thousand_unauthenticated_requests_write_nothing(
    served_ca: ServedCA, live_server
) -> None:
    server = live_server(served_ca.ca, ServerSettings(acme=AcmeSettings()))
    watch = server.app.state.watch
    responder = server.app.state.ocsp
    der = ocsp_request(served_ca.good.certificate, served_ca.ca.issuing)
    server.post_ocsp(der)  # the answer is now cached and confirmed
    assert watch.current() is not None
    rows, signatures = nonce_rows(served_ca), responder.signatures

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for index in range(1000):
            path = ("/acme/directory", f"/acme/nowhere/{index}", f"/unknown/{index}")[index % 3]
            connection.request("GET", path)
            connection.getresponse().read()
        for _ in range(20):  # POSTs without a JWS are unauthenticated too
            connection.request("POST", "/acme/new-order", b"{}", {"Content-Type": "text/plain"})
            connection.getresponse().read()
    finally:
        connection.close()

    assert nonce_rows(served_ca) == rows
    # No commit happened, so the OCSP fast path still trusts its cache without a query.
    assert watch.current() is not None
    server.post_ocsp(der)
    assert responder.signatures == signatures

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("HEAD", "/acme/new-nonce")
        response = connection.getresponse()
        response.read()
        assert response.getheader("Replay-Nonce")
    finally:
        connection.close()
    # A nonce proves itself: newNonce writes nothing either, and the cache stays trusted.
    assert nonce_rows(served_ca) == rows
    assert watch.current() is not None
