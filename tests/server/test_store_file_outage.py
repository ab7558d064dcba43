"""The SQLite file goes away, or another takes its place, under a running server (pooled
connections keep the file they opened): serve answers 503 with a problem that names no
path, creates no empty database in its place, reads no replacement, and picks the file up
again, every record intact, when it is back."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing

from cryptography.x509 import ocsp

from privca.acme.service import AcmeSettings
from privca.server.settings import ServerSettings
from tests.acme.jwsclient import RawClient
from tests.server.conftest import LiveServer, ServedCA
from tests.server.test_app import load, ocsp_request

ACCOUNT = {"termsOfServiceAgreed": True}


def health(server: LiveServer) -> dict:
    reply = server.get("/health")
    assert reply.status == 200
    return json.loads(reply.body)


def wait_for(condition, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within time"
        time.sleep(0.1)


def serve_acme(served_ca: ServedCA, live_server) -> tuple[LiveServer, RawClient]:
    server = live_server(served_ca.ca, ServerSettings(acme=AcmeSettings()))
    return server, RawClient(f"{server.base}/acme/directory", root_pem="")


def assert_store_refused(server: LiveServer, client: RawClient, ca) -> None:
    """The outage path: degraded health, /metrics and ACME 503 with Retry-After, and no
    reply naming the database file or the CA's home."""
    wait_for(lambda: health(server)["status"] == "degraded")
    assert server.get("/metrics").status == 503
    refused = client.post(client.directory["newAccount"], ACCOUNT, nonce=client.nonce())
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert refused.headers["Retry-After"]
    for reply in (refused.text, server.get("/health").body.decode(), server.get("/").body.decode()):
        assert "privca.db" not in reply and str(ca.home.root) not in reply


def assert_store_back(server: LiveServer, client: RawClient, served_ca: ServedCA, fresh) -> None:
    """Served again: healthy, /metrics and ACME answer, and a certificate issued just
    before the outage (its record then in the -wal only) is known to OCSP."""
    wait_for(lambda: health(server)["status"] == "ok")
    assert server.get("/metrics").status == 200
    created = client.post(client.directory["newAccount"], ACCOUNT, nonce=client.nonce())
    assert created.status_code == 201, created.text
    status = load(server.post_ocsp(ocsp_request(fresh.certificate, served_ca.ca.issuing)).body)
    assert status.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_serve_answers_503_while_the_database_file_is_gone_and_recovers(
    served_ca: ServedCA, live_server
) -> None:
    ca = served_ca.ca
    server, client = serve_acme(served_ca, live_server)
    database = ca.home.root / "privca.db"
    away = ca.home.root / "elsewhere.db"
    assert server.get("/metrics").status == 200
    fresh = ca.issue(["fresh.example"])  # committed just before: still in the WAL

    os.rename(database, away)
    assert_store_refused(server, client, ca)
    # Revocation status still answers (the cache, else tryLater), never a 5xx.
    answer = server.post_ocsp(ocsp_request(served_ca.good.certificate, ca.issuing))
    assert answer.status == 200
    assert not database.exists(), "an empty database was made in place of the missing one"

    os.rename(away, database)
    assert_store_back(server, client, served_ca, fresh)
    assert ca.inventory.get(fresh.serial).status == "issued"
    assert oct(database.stat().st_mode & 0o777) == "0o600"


def test_serve_refuses_a_database_file_replaced_under_it_until_the_same_file_is_back(
    served_ca: ServedCA, live_server
) -> None:
    # An operator's restore under a running server: a new file (inode) at the path, the
    # old one's -wal still beside it. Reading on would serve the old file's state through
    # the pooled connections, or the new one's through the old -wal: the outage path
    # instead (503, OCSP from its cache), and the same file put back is served again.
    ca = served_ca.ca
    server, client = serve_acme(served_ca, live_server)
    database = ca.home.root / "privca.db"
    aside, copy = ca.home.root / "aside.db", ca.home.root / "copy.db"
    cached = server.post_ocsp(ocsp_request(served_ca.good.certificate, ca.issuing))
    assert load(cached.body).certificate_status == ocsp.OCSPCertStatus.GOOD
    fresh = ca.issue(["fresh.example"])  # committed just before: still in the WAL
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)

    os.link(database, aside)
    os.replace(copy, database)
    assert_store_refused(server, client, ca)
    answer = server.post_ocsp(ocsp_request(served_ca.good.certificate, ca.issuing))
    assert answer.status == 200 and answer.body == cached.body  # what it had, as when gone
    time.sleep(1.5)  # a poll or more: still refused, never picked up
    assert health(server)["status"] == "degraded"

    os.replace(aside, database)
    assert_store_back(server, client, served_ca, fresh)
