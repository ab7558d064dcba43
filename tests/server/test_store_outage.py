"""Revocation answers survive a store outage: with the PostgreSQL server stopped, OCSP
answers are well-formed OCSP (a cached answer still within its validity, else tryLater),
CRLs are the last published ones, /health says degraded, and no body names the store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE
from tests.pg import PostgresCluster, find_bindir
from tests.server.conftest import LiveServer, publish_root_crl
from tests.server.test_app import OCSP_RESPONSE, load, ocsp_request, serial_request

pytestmark = pytest.mark.postgres


class StoppableCluster(PostgresCluster):
    """A private cluster (the shared one serves other tests) that can go away and return."""

    def halt(self) -> None:
        # fast, not immediate: the cluster runs with synchronous_commit=off, and a crash
        # would lose the last commits, which is not the outage under test.
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                           "-w", "-s", "stop")  # fmt: skip
        assert result.returncode == 0, result.stderr

    def resume(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.directory} -c fsync=off"
        )
        pg_ctl = str(self.bindir / "pg_ctl")
        result = self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options,
                           "-w", "-t", "30", "-s", "start")  # fmt: skip
        assert result.returncode == 0, result.stderr


@pytest.fixture
def cluster() -> Iterator[StoppableCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = StoppableCluster(bindir)
    cluster.start()
    yield cluster
    cluster.stop()


def health(server: LiveServer) -> dict:
    reply = server.get("/health")
    assert reply.status == 200
    return json.loads(reply.body)


def wait_for(condition, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within time"
        time.sleep(0.1)


def test_ocsp_and_crls_survive_a_stopped_postgresql(
    cluster: StoppableCluster, make_ca, live_server
) -> None:
    ca: CertificateAuthority = make_ca(store_url=cluster.url(cluster.create_database()))
    publish_root_crl(ca)
    good = ca.issue(["good.example"])
    revoked = ca.issue(["revoked.example"])
    ca.revoke(format(revoked.serial, "x"), "keyCompromise")
    issuing = ca.issuing
    server = live_server(ca)
    # A second replica that never built a CRL itself: it must fall back to the files.
    replica = live_server(CertificateAuthority.open(ca.home.root, PASSPHRASE))

    good_request = ocsp_request(good.certificate, issuing)
    before = server.post_ocsp(good_request).body
    assert load(before).certificate_status == ocsp.OCSPCertStatus.GOOD
    crl_before = server.get("/crl/issuing.crl").body
    assert health(server)["status"] == "ok"

    cluster.halt()
    wait_for(lambda: health(server)["status"] == "degraded")

    started = time.monotonic()
    cached = server.post_ocsp(good_request)
    assert cached.status == 200 and cached.headers["content-type"] == OCSP_RESPONSE
    assert cached.body == before  # still within its validity: the cached answer
    for der in (ocsp_request(revoked.certificate, issuing), serial_request(issuing, 0x1234)):
        reply = server.post_ocsp(der)
        assert reply.status == 200 and reply.headers["content-type"] == OCSP_RESPONSE
        assert load(reply.body).response_status == ocsp.OCSPResponseStatus.TRY_LATER
    assert time.monotonic() - started < 2  # answered without waiting on the store

    assert server.get("/crl/issuing.crl").body == crl_before
    assert server.get(f"/crl/{issuing.serial_number:x}.crl").body == crl_before
    assert server.get("/crl/root.crl").body == ca.root_crl_file.read_bytes()
    on_disk = replica.get("/crl/issuing.crl")
    assert on_disk.status == 200 and on_disk.body == crl_before
    assert x509.load_der_x509_crl(on_disk.body).get_revoked_certificate_by_serial_number(
        revoked.serial
    )
    assert x509.load_der_x509_certificate(server.get("/ca/issuing.der").body) == issuing

    document = health(server)
    assert document["status"] == "degraded"
    assert any("store does not answer" in problem for problem in document["problems"])
    bodies = [server.get("/health").body, server.get("/metrics").body, server.get("/").body]
    for body in bodies:
        for secret in (str(cluster.port).encode(), b"psycopg", b"postgres", b"OperationalError"):
            assert secret not in body, (secret, body[:200])
    assert server.get("/metrics").status == 503

    cluster.resume()
    wait_for(lambda: health(server)["status"] == "ok", within=10)
    status = load(server.post_ocsp(ocsp_request(revoked.certificate, issuing)).body)
    assert status.certificate_status == ocsp.OCSPCertStatus.REVOKED
