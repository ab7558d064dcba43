"""Slow applicants cannot starve the server: 50 http-01 validations against a peer that
drips one byte at a time hold only the validators' own pool, end by their deadline, and
/health, OCSP and CRLs keep answering at once meanwhile."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from privca.acme.routes import RECORD_GRACE_SECONDS
from privca.acme.service import AcmeSettings
from privca.server.settings import ServerSettings
from tests.acme.jwsclient import RawClient
from tests.server.conftest import ServedCA
from tests.server.test_app import ocsp_request

VALIDATIONS = 50
WORKERS = 10
DEADLINE = 3.0


class DripServer:
    """Answers every connection with a status line, then one header byte every 0.25 s."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.open = 0
        self.most_open = 0
        self.durations: list[float] = []  # how long each validation talked to us
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        started = time.monotonic()
        try:
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while True:
                    conn.sendall(b"X")
                    time.sleep(0.25)
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1
                self.durations.append(time.monotonic() - started)


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.listener.close()


def timed(port: int, method: str, path: str, body: bytes | None = None, **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def test_fifty_slow_validations_starve_nothing(
    served_ca: ServedCA, live_server, drip: DripServer
) -> None:
    settings = AcmeSettings(
        http_01_port=drip.port,
        validation_timeout=DEADLINE,
        validation_workers=WORKERS,
        allow_loopback=True,
    )
    server = live_server(served_ca.ca, ServerSettings(acme=settings))
    client = RawClient(f"{server.base}/acme/directory", "/dev/null")
    assert client.register().status_code == 201
    challenge_urls = []
    for _ in range(VALIDATIONS):
        order = client.post(
            client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}
        ).json()
        authz = client.post(order["authorizations"][0], None).json()
        challenge_urls.append(next(c["url"] for c in authz["challenges"] if c["type"] == "http-01"))

    results: list[tuple[float, dict]] = []
    # Signed beforehand (each needs a nonce): the clock below times the POST alone.
    bodies = [(url, json.dumps(client.sign(url, {})).encode()) for url in challenge_urls]

    def validate(url: str, body: bytes) -> None:
        started = time.monotonic()
        response = client.post(url, raw=body)
        results.append((time.monotonic() - started, response.json()))

    threads = [threading.Thread(target=validate, args=pair) for pair in bodies]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every validator is now held by the drip

    ocsp = ocsp_request(served_ca.good.certificate, served_ca.ca.issuing)
    latencies = {
        "health": timed(server.port, "GET", "/health"),
        "ocsp": timed(
            server.port, "POST", "/ocsp", ocsp, **{"Content-Type": "application/ocsp-request"}
        ),
        "crl": timed(server.port, "GET", "/crl/issuing.crl"),
        "ca": timed(server.port, "GET", "/ca/issuing.der"),
        "nonce": timed(server.port, "HEAD", "/acme/new-nonce"),
    }
    for name, (status, seconds) in latencies.items():
        assert status == 200, name
        assert seconds < 0.5, (name, seconds)
    assert drip.most_open <= WORKERS  # validations hold only their own pool

    for thread in threads:
        thread.join(DEADLINE + 15)
    assert len(results) == VALIDATIONS
    time.sleep(0.5)
    assert drip.open == 0  # no validation is left talking to the peer
    # Every validation that reached the peer was cut off by its one deadline...
    assert drip.durations and max(drip.durations) < DEADLINE + 0.5, drip.durations
    # ...and the others waited their turn and failed by it: without connecting, or with
    # only what was left of it. What is left is at most how far behind the first ones a
    # request reached the server (the 50 POSTs are read one after another, longer on a
    # loaded machine), so it is never a fresh deadline: a queued validation that got one
    # would talk to the peer for the whole DEADLINE, and the last would answer only after
    # five of them (asserted below).
    queued = sorted(drip.durations)[:-WORKERS]
    assert all(seconds < DEADLINE - 0.5 for seconds in queued), drip.durations
    for _seconds, challenge in results:
        assert challenge["status"] == "invalid", challenge
        assert f"within {DEADLINE:g} seconds" in challenge["error"]["detail"]
    # Each answer came at the deadline plus the time to record 50 results in SQLite
    # (serialised fsyncs on a shared machine), never a multiple of it.
    assert max(seconds for seconds, _ in results) < DEADLINE + RECORD_GRACE_SECONDS + 3
