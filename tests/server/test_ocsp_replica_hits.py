"""OCSP cache hits cost no store query while the store is busy with other work: on a
PostgreSQL replica the watcher's confirmed state vouches for them (a revocation made by
another process reaches them within a few poll intervals); on SQLite the revocation
counter does (a revocation shows in the next answer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.server.settings import ServerSettings
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.conftest import ServedCA
from tests.server.test_app import load, ocsp_request


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


@pytest.mark.postgres
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


@pytest.mark.postgres
def test_an_issuing_ca_revoked_by_another_process_reaches_the_cached_answers(
    replica: tuple[CertificateAuthority, CertificateAuthority],
    live_server: Callable[..., object],
) -> None:
    """The answer signed ahead (and then served from the cache) as good for a leaf of a CA
    that another process revokes (`privca issuer revoke`) turns revoked within a few polls,
    dated at the CA's revocation, for cACompromise."""
    served, operator = replica
    server = live_server(served, ServerSettings(watch_interval=0.2))
    leaf = operator.issue(["under-old.corp.internal"])
    old = operator.registry.select(format(operator.issuing.serial_number, "x"))
    assert old is not None
    request = ocsp_request(leaf.certificate, old.certificate)
    time.sleep(1)  # a few polls: the answer is signed ahead
    assert load(server.post_ocsp(request).body).certificate_status == (  # type: ignore[attr-defined]
        ocsp.OCSPCertStatus.GOOD
    )
    operator.rotate_issuing()
    revoked = operator.revoke_issuing_ca(old, "caCompromise").revoked
    assert revoked.revoked_at is not None
    deadline = time.monotonic() + 5
    while True:
        answer = load(server.post_ocsp(request).body)  # type: ignore[attr-defined]
        if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            break
        assert time.monotonic() < deadline, "the CA's revocation never reached the answer"
        time.sleep(0.05)
    assert answer.revocation_reason == x509.ReasonFlags.ca_compromise
    assert answer.revocation_time_utc == revoked.revoked_at.replace(microsecond=0)


def test_on_sqlite_commits_that_revoke_nothing_cost_a_cached_answer_no_store_query(
    served_ca: ServedCA, live_server: Callable[..., object]
) -> None:
    """A renewal storm commits all the time (ACME rows, issuances): a cached answer is
    still served without a query, and a revocation still shows in the very next one."""
    ca = served_ca.ca
    # No poll during the test: every statement counted is one a request caused.
    server = live_server(ca, ServerSettings(watch_interval=3600))
    request = ocsp_request(served_ca.good.certificate, ca.issuing)
    good = server.post_ocsp(request).body  # type: ignore[attr-defined]
    with StatementCount(ca.inventory.database.engine) as statements:
        for index in range(10):
            ca.issue([f"busy{index}.example"])  # a commit, as in a storm
            before = statements.count
            assert server.post_ocsp(request).body == good  # type: ignore[attr-defined]
            # The issuance itself ran statements; the answer added none.
            assert statements.count == before, index
    ca.revoke(format(served_ca.good.serial, "x"), "keyCompromise")
    answer = load(server.post_ocsp(request).body)  # type: ignore[attr-defined]
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED


@pytest.mark.postgres
def test_a_slow_poll_never_puts_back_an_older_state_than_a_request_read(
    replica: tuple[CertificateAuthority, CertificateAuthority],
) -> None:
    """A poll that read the store before a revocation and finishes after a request read it
    again must not make the older state the one OCSP hits are checked against: the
    revocation would vanish from cached answers until the next poll."""
    import asyncio

    from privca.server.watch import StoreWatch
    from privca.store.records import Revocation

    served, operator = replica
    leaf = operator.issue(["slow-poll.example"])

    async def scenario() -> tuple[dict[int, tuple[int, str]], dict[int, tuple[int, str]]]:
        watch = StoreWatch(served)
        read_state = watch._read_state
        poll_has_read, release_poll = threading.Event(), threading.Event()
        calls = 0

        def slow_first_read() -> tuple[
            dict[int, tuple[int, str]], dict[int, int], dict[int, Revocation]
        ]:
            nonlocal calls
            calls += 1
            state = read_state()
            if calls == 1:  # the poll: it has read, then stalls (a busy replica)
                poll_has_read.set()
                release_poll.wait(30)
            return state

        watch._read_state = slow_first_read  # type: ignore[method-assign]
        poll = asyncio.create_task(watch.poll())
        await asyncio.to_thread(poll_has_read.wait, 30)
        operator.revoke(format(leaf.serial, "x"), "keyCompromise")
        fresh = await watch.snapshot()  # a request reads the store after the revocation
        release_poll.set()
        await poll
        latest = watch.recent()
        assert latest is not None
        return fresh.fingerprints, latest.fingerprints

    fresh, latest = asyncio.run(scenario())
    assert latest == fresh
