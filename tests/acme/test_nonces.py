"""Nonces that prove themselves (acme/nonces.py) over a real SQLite store: handing one out
writes nothing, a nonce is accepted once, and a mangled, forged, expired or oversized one
is refused before it reaches the store (a flood of junk costs no write)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.acme.nonces import NonceSource
from privca.authority import CertificateAuthority
from privca.store.acme import AcmeStore
from privca.store.schema import acme_spent_nonces


@pytest.fixture
def store(ca: CertificateAuthority) -> AcmeStore:
    repository = ca.acme_repository()
    assert isinstance(repository, AcmeStore)
    return repository


def spent_rows(store: AcmeStore) -> int:
    with store.engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(acme_spent_nonces)
        return int(connection.execute(query).scalar())


class _KeyOnly:
    """A repository with a key of its own: what a forger who knows the format has."""

    def nonce_key(self, now: dt.datetime, *, starting: bool = False) -> bytes:
        return b"k" * 32

    def spend_nonce(self, value: str, expires: dt.datetime, key: bytes) -> bool:
        raise AssertionError("a forged nonce must not reach the store")

    def purge_nonces(self, now: dt.datetime) -> int:
        return 0


def _flip_last_character(nonce: str, _store: AcmeStore) -> str:
    return nonce[:-1] + ("A" if nonce[-1] != "A" else "B")


# how to turn a good nonce (of the store's key) into one that must be refused
REFUSED: list[tuple[str, Callable[[str, AcmeStore], str]]] = [
    ("tag changed", _flip_last_character),
    ("truncated", lambda n, _s: n[:-4]),
    ("extended", lambda n, _s: n + "AAAA"),
    ("padding added", lambda n, _s: n + "=" * (-len(n) % 4)),
    ("standard base64 alphabet", lambda n, _s: n.replace("-", "+").replace("_", "/")),
    ("not base64", lambda n, _s: "!" * len(n)),
    ("non-ascii", lambda n, _s: "é" * 20),
    ("oversized", lambda n, _s: n * 3),
    ("empty", lambda n, _s: ""),
    ("signed with another key", lambda n, _s: NonceSource(_KeyOnly()).new()),
    ("expired", lambda n, s: NonceSource(s, lifetime=dt.timedelta(seconds=-1)).new()),
    ("other bytes, right length", lambda n, _s: base64.urlsafe_b64encode(b"x" * 40).decode()),
]


@pytest.mark.parametrize("mangle", [row[1] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_a_mangled_forged_or_expired_nonce_is_refused_without_a_write(
    store: AcmeStore, mangle: Callable[[str, AcmeStore], str]
) -> None:
    source = NonceSource(store)
    source.start()
    # One with a character outside the standard base64 alphabet, for that row's sake.
    good = next(n for n in (source.new() for _ in range(500)) if "-" in n or "_" in n)
    bad = mangle(good, store)
    assert bad != good
    before = spent_rows(store)
    accepted, issued = source.exchange(bad)
    assert accepted is False
    assert spent_rows(store) == before
    # The refusal hands out a nonce that works, and the good one still works too.
    assert source.exchange(issued)[0] is True
    assert source.exchange(good)[0] is True


def test_a_nonce_is_accepted_once_and_handing_out_writes_nothing(store: AcmeStore) -> None:
    source = NonceSource(store)
    source.start()
    before = spent_rows(store)
    nonces = [source.new() for _ in range(50)]
    assert len(set(nonces)) == 50
    assert all(len(nonce) <= 64 for nonce in nonces)
    assert spent_rows(store) == before  # handed out: no row
    first = source.exchange(nonces[0])
    assert first[0] is True and first[1] not in nonces
    assert source.exchange(nonces[0])[0] is False
    # Another server over the same store (a replica) knows the same key.
    replica = NonceSource(store)
    assert replica.exchange(nonces[1])[0] is True
    assert source.exchange(nonces[1])[0] is False
    assert spent_rows(store) == before + 2


def test_a_server_that_started_since_makes_older_nonces_unacceptable(store: AcmeStore) -> None:
    """SQLite: a starting server renews the key; a server still running on the old key
    learns the new one from its first refusal, so its next nonce is good again."""
    running = NonceSource(store)
    running.start()
    held = running.new()
    NonceSource(store).start()  # another `privca serve` on this home
    accepted, retry = running.exchange(held)
    assert accepted is False
    assert running.exchange(retry)[0] is True
