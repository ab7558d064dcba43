"""OCSP on a PostgreSQL replica: a cached answer is served without a store query (the
watcher's confirmed state vouches for it), and a revocation made by another process
still reaches it within a few poll intervals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.server.settings import ServerSettings
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.test_app import load, ocsp_request

pytestmark = pytest.mark.postgres


class StatementCount:
    """Statements the server's own engine sends, from any of its threads."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, *_args: object) -> None:
        with self._lock:
            self.count += 1

    def __enter__(self) -> StatementCount:
        sa.event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self)


@pytest.fixture
def replica(
    tmp_path,
    postgres_url: str,  # noqa: F811
) -> Iterator[tuple[CertificateAuthority, CertificateAuthority]]:
    home = tmp_path / "ca"
    CertificateAuthority.init(home, "Replicated CA", passphrase=PASSPHRASE, store_url=postgres_url)
    served = CertificateAuthority.open(home, PASSPHRASE)
    operator = CertificateAuthority.open(home, PASSPHRASE)  # a third process: the CLI
    yield served, operator
    operator.close()
    served.close()


def test_a_cached_answer_costs_no_store_query_and_revocations_still_arrive(
    replica: tuple[CertificateAuthority, CertificateAuthority],
    live_server: Callable[..., object],
) -> None:
    served, operator = replica
    server = live_server(served, ServerSettings(watch_interval=1.0))
    leaf = operator.issue(["db.corp.internal"])
    request = ocsp_request(leaf.certificate, operator.issuing)
    good = server.post_ocsp(request).body  # type: ignore[attr-defined]
    assert load(good).certificate_status == ocsp.OCSPCertStatus.GOOD

    with StatementCount(served.inventory.database.engine) as statements:
        for _ in range(40):
            assert server.post_ocsp(request).body == good  # type: ignore[attr-defined]
    # A poll or two may run meanwhile (four statements each); the 40 requests add none
    # (each used to read the revocation fingerprints: two statements).
    assert statements.count < 20, statements.count

    operator.revoke(format(leaf.serial, "x"), "keyCompromise")
    deadline = time.monotonic() + 5
    while True:
        answer = load(server.post_ocsp(request).body)  # type: ignore[attr-defined]
        if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            break
        assert time.monotonic() < deadline, "the revocation never reached the cached answer"
        time.sleep(0.05)
