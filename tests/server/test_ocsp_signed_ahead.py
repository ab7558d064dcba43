"""OCSP answers signed ahead on PostgreSQL: a certificate signed by any process (a
replica, the CLI) gets its answer signed by the server's watcher at its next poll, so the
first request about it is a cache hit (no store read, no signature at request time),
which is what keeps OCSP fast in a renewal storm. A revocation still reaches it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.server.settings import ServerSettings
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.conftest import LiveServer
from tests.server.test_app import load, ocsp_request

POLL = 0.2  # seconds between the watcher's polls


def _two_processes(home: Path, store_url: str = "") -> tuple[CertificateAuthority, ...]:
    CertificateAuthority.init(home, "Ahead CA", passphrase=PASSPHRASE, store_url=store_url)
    return CertificateAuthority.open(home, PASSPHRASE), CertificateAuthority.open(home, PASSPHRASE)


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[CertificateAuthority, ...]]:
    pair = _two_processes(tmp_path / "ca")
    yield pair
    for ca in pair:
        ca.close()


@pytest.fixture
def postgres_pair(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> Iterator[tuple[CertificateAuthority, ...]]:
    pair = _two_processes(tmp_path / "ca", postgres_url)
    yield pair
    for ca in pair:
        ca.close()


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _signed_ahead_then_revoked(
    served: CertificateAuthority, operator: CertificateAuthority, server: LiveServer
) -> None:
    responder = server.app.state.ocsp  # type: ignore[attr-defined]
    leaf = operator.issue(["ahead.corp.internal"])  # signed by another process
    # Looked for in the cache itself: the server signs other answers ahead meanwhile (its
    # own delegated responder certificate, issued at its start, is one).
    _wait_for(
        lambda: any(key.serial == leaf.serial for key in list(responder._answers)),
        "the watcher never signed an answer ahead",
    )
    signed = responder.signatures

    request = ocsp_request(leaf.certificate, operator.issuing)
    answer = load(server.post_ocsp(request).body)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == leaf.serial
    # The first request about it was a hit: nothing was signed for it.
    assert responder.signatures == signed

    # Signed ahead is still confirmed against the store's revocations, like any answer.
    operator.revoke(format(leaf.serial, "x"), "keyCompromise")
    _wait_for(
        lambda: (
            load(server.post_ocsp(request).body).certificate_status == ocsp.OCSPCertStatus.REVOKED
        ),
        "the revocation never reached the answer signed ahead",
    )


def test_sqlite_signs_nothing_ahead(
    sqlite_pair: tuple[CertificateAuthority, ...], live_server: Callable[..., LiveServer]
) -> None:
    """On SQLite a first request reads a local file: an answer is signed when asked for,
    so an ACME issuance costs no OCSP signature nobody may ever want."""
    served, operator = sqlite_pair
    server = live_server(served, ServerSettings(watch_interval=POLL))
    responder = server.app.state.ocsp  # type: ignore[attr-defined]
    watch = server.app.state.watch  # type: ignore[attr-defined]
    assert not watch.remote
    time.sleep(5 * POLL)  # the server's own start (its responder certificate) settles
    before = responder.signatures
    leaf = operator.issue(["asked.corp.internal"])
    issued_at = time.monotonic()
    _wait_for(lambda: watch._confirmed_at > issued_at, "the watcher never polled since")
    assert responder.signatures == before
    answer = load(server.post_ocsp(ocsp_request(leaf.certificate, operator.issuing)).body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert responder.signatures == before + 1  # signed when asked


@pytest.mark.postgres
def test_postgresql_a_certificate_issued_by_another_replica_is_answered_from_the_cache(
    postgres_pair: tuple[CertificateAuthority, ...], live_server: Callable[..., LiveServer]
) -> None:
    served, operator = postgres_pair
    server = live_server(served, ServerSettings(watch_interval=POLL))
    _signed_ahead_then_revoked(served, operator, server)


def test_certificates_of_an_unknown_authority_or_already_answered_are_not_signed_again(
    sqlite_pair: tuple[CertificateAuthority, ...], live_server: Callable[..., LiveServer]
) -> None:
    """prime() skips what it cannot or need not sign: a record of a CA the responder does
    not answer for, and one whose cached answer is still valid."""
    import asyncio
    import dataclasses

    from privca._time import utcnow

    served, operator = sqlite_pair
    server = live_server(served, ServerSettings(watch_interval=3600))  # no poll meanwhile
    responder = server.app.state.ocsp  # type: ignore[attr-defined]
    watch = server.app.state.watch  # type: ignore[attr-defined]
    leaf = operator.issue(["once.corp.internal"])
    record = operator.inventory.get(leaf.serial)
    assert record is not None
    snapshot = asyncio.run(watch.snapshot())
    foreign = dataclasses.replace(record, issuer_id=10_000)
    assert responder.prime([record, foreign], snapshot, utcnow()) == 1
    assert responder.prime([record], snapshot, utcnow()) == 0
    answer = load(server.post_ocsp(ocsp_request(leaf.certificate, operator.issuing)).body)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_a_backlog_longer_than_a_poll_reads_is_skipped_not_signed(
    sqlite_pair: tuple[CertificateAuthority, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bulk `privca sign` (or a poll that failed for long) leaves more behind than one
    # poll reads: none of it is signed ahead (it would stall the poll), the watcher moves
    # to the log's end and keeps signing ahead what comes after.
    import asyncio

    from privca.server import watch as watch_module
    from privca.server.watch import StoreWatch

    served, operator = sqlite_pair
    monkeypatch.setattr(watch_module, "ISSUED_PER_POLL", 4)
    told: list[list[int]] = []

    async def scenario() -> None:
        watch = StoreWatch(served, interval=3600)

        async def listener(records: list, _snapshot: object) -> None:
            told.append([r.serial for r in records])

        watch.on_issued(listener)
        few = [operator.issue([f"few{i}.example"]).serial for i in range(2)]
        await watch.poll()
        assert told == [few]
        for i in range(6):  # a backlog: more audit entries than one poll reads
            operator.issue([f"bulk{i}.example"])
        await watch.poll()
        assert told == [few]  # skipped, not signed ahead
        after = operator.issue(["after.example"]).serial
        await watch.poll()
        assert told == [few, [after]]

    asyncio.run(scenario())
