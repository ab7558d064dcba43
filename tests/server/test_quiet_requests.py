"""Requests that prove nothing about who sends them write nothing: no nonce rows, no
commit that would invalidate the OCSP fast path (RFC 8555 §6.5: nonces come from
newNonce and in answers to JWS POSTs only, and handing one out writes nothing)."""

from __future__ import annotations

import http.client
import logging
import socket
import time

import pytest
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


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/acme/new-order", "application/jose+json"), ("/ocsp", "application/ocsp-request")],
    ids=["acme", "ocsp"],
)
def test_a_client_gone_mid_body_is_one_info_line(
    served_ca: ServedCA, live_server, path: str, content_type: str
) -> None:
    """Content-Length 100, 3 bytes, close: that was an ERROR with starlette's
    ClientDisconnect traceback, and ACME's answer a 500 serverInternal."""
    server = live_server(served_ca.ca, ServerSettings(acme=AcmeSettings()))
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("privca", "uvicorn.error", "uvicorn")]
    for logger in loggers:
        logger.addHandler(records)
    previous = logging.getLogger("privca").level
    logging.getLogger("privca").setLevel(logging.INFO)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                "Content-Length: 100\r\n\r\nabc".encode()
            )
        deadline = time.monotonic() + 10
        while not any("closed the connection" in r.getMessage() for r in records.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in records.records]
            time.sleep(0.05)
        time.sleep(0.2)  # anything logged after it would show too
    finally:
        for logger in loggers:
            logger.removeHandler(records)
        logging.getLogger("privca").setLevel(previous)
    assert [r.levelno for r in records.records] == [logging.INFO], records.records
    assert records.records[0].exc_info is None
    assert server.get("/health").status == 200
