"""Store fixtures: every store test runs on SQLite (a file in tmp_path) and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privca._time import utcnow
from privca.store.database import sqlite_url
from privca.store.inventory import Intent, Store
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures, shared cluster)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database of the test cluster."""
    if backend == "sqlite":
        return sqlite_url(tmp_path / "inventory.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Open (and migrate) another Store on the same database, as another process would."""
    opened: list[Store] = []

    def factory() -> Store:
        store = Store(store_url)
        store.migrate()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


@pytest.fixture
def now() -> dt.datetime:
    return utcnow()


@pytest.fixture
def issuer_id(store: Store, now: dt.datetime) -> int:
    """An active issuing CA row for the certificates' foreign key."""
    return store.add_authority(
        "issuing",
        "CN=Test Issuing CA",
        0x1234ABCD,
        b"issuing-der",
        "private/issuing.key",
        now + dt.timedelta(days=1825),
        now,
    )


@pytest.fixture
def make_intent(issuer_id: int, now: dt.datetime) -> Callable[..., Intent]:
    def factory(
        *names: str,
        days: float = 90,
        not_before: dt.datetime | None = None,
        profile: str = "server-client",
    ) -> Intent:
        names = names or ("svc.corp.internal",)
        start = not_before or now - dt.timedelta(minutes=5)
        return Intent(
            issuer_id=issuer_id,
            profile=profile,
            names=tuple(names),
            subject=f"CN={names[0]}",
            not_before=start,
            not_after=now + dt.timedelta(days=days),
            public_key_sha256=hashlib.sha256(",".join(names).encode()).hexdigest(),
        )

    return factory


@pytest.fixture
def issue_records(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> Callable[..., list[int]]:
    """Reserve and complete intents (a self-signed stand-in DER per serial with the
    intent's dates, which tidy reads); returns the serials."""

    def factory(*intents: Intent) -> list[int]:
        serials = store.reserve(list(intents), now)
        signed = [(s, stand_in_der(s, i)) for s, i in zip(serials, intents, strict=True)]
        store.complete(signed, now, list(intents))
        return serials

    return factory


_STAND_IN_KEY = ec.generate_private_key(ec.SECP256R1())


def stand_in_der(serial: int, intent: Intent) -> bytes:
    """A certificate with the intent's serial, first name and dates (tidy reads its
    notAfter), self-signed by one key: what the store keeps, not what a CA would issue."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, intent.names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_STAND_IN_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(min(intent.not_before, intent.not_after - dt.timedelta(seconds=1)))
        .not_valid_after(intent.not_after)
        .sign(_STAND_IN_KEY, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)
