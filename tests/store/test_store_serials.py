"""Serial uniqueness is a database constraint; reserve() retries a collision with fresh serials.

`serial_source` is reserve()'s seam for the random source: feeding it a serial already in
the table drives the real collision path against the real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from privca.errors import StoreUnavailable
from privca.store.inventory import SERIAL_RETRIES, Intent, Store, random_serial, serial_hex
from privca.store.schema import certificates


def scripted(*serials: int) -> tuple[Callable[[], int], list[int]]:
    """A serial source that yields `serials` first, then random ones; records what it gave."""
    given: list[int] = []
    queue: Iterator[int] = iter(serials)

    def source() -> int:
        value = next(queue, None)
        value = random_serial() if value is None else value
        given.append(value)
        return value

    return source, given


def test_a_used_serial_is_retried_with_a_fresh_one(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    first = make_intent("first.corp.internal")
    [taken] = store.reserve([first], now)
    store.complete([(taken, b"FIRST")], now, [first])

    source, given = scripted(taken)
    [serial] = store.reserve([make_intent("second.corp.internal")], now, serial_source=source)

    assert given[0] == taken  # the collision really was attempted
    assert serial != taken and serial == given[-1]
    assert store.count() == 2
    first = store.get(taken)
    assert first is not None
    assert (first.names, first.status, first.der) == (("first.corp.internal",), "issued", b"FIRST")
    second = store.get(serial)
    assert second is not None and second.names == ("second.corp.internal",)


def test_a_collision_in_a_batch_records_none_of_the_first_attempt(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    [taken] = store.reserve([make_intent("first.corp.internal")], now)
    innocent = random_serial()
    source, given = scripted(innocent, taken)

    serials = store.reserve(
        [make_intent("a.corp.internal"), make_intent("b.corp.internal")], now, serial_source=source
    )

    assert given[:2] == [innocent, taken]
    assert innocent not in serials and taken not in serials
    assert store.get(innocent) is None  # the failed batch was rolled back as a whole
    assert store.count() == 3


def test_a_duplicate_within_one_batch_is_retried(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    twice = random_serial()
    source, _ = scripted(twice, twice)
    serials = store.reserve(
        [make_intent("a.corp.internal"), make_intent("b.corp.internal")], now, serial_source=source
    )
    assert len(set(serials)) == 2 and twice not in serials
    assert store.count() == 2


def test_a_failed_serial_is_never_reused(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    [failed] = store.reserve([make_intent("a.corp.internal")], now)
    store.abandon([failed], now, "signing failed")
    source, given = scripted(failed)
    [serial] = store.reserve([make_intent("b.corp.internal")], now, serial_source=source)
    assert given[0] == failed and serial != failed


def test_a_source_that_only_collides_gives_up_with_a_clear_error(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    [taken] = store.reserve([make_intent("first.corp.internal")], now)
    calls = []

    def stuck() -> int:
        calls.append(taken)
        return taken

    with pytest.raises(StoreUnavailable, match="unused serial"):
        store.reserve([make_intent("second.corp.internal")], now, serial_source=stuck)
    assert len(calls) == SERIAL_RETRIES
    assert store.count() == 1


def _row(serial: int, issuer_id: int, now: dt.datetime) -> dict[str, object]:
    return {
        "serial": serial_hex(serial),
        "issuer_id": issuer_id,
        "status": "pending",
        "profile": "server",
        "names": '["dup.corp.internal"]',
        "subject": "CN=dup.corp.internal",
        "not_before": now,
        "not_after": now + dt.timedelta(days=1),
        "public_key_sha256": "0" * 64,
        "der": None,
        "created_at": now,
    }


def test_a_direct_duplicate_insert_is_refused_by_the_database(
    store: Store, make_intent: Callable[..., Intent], issuer_id: int, now: dt.datetime
) -> None:
    """Uniqueness does not rest on reserve()'s code: the database itself refuses."""
    [taken] = store.reserve([make_intent("first.corp.internal")], now)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(certificates.insert(), [_row(taken, issuer_id, now)])
    assert store.count() == 1


def test_the_serial_column_is_the_primary_key_in_the_database(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    assert inspector.get_pk_constraint("certificates")["constrained_columns"] == ["serial"]


def test_random_serial_shape() -> None:
    serials = {random_serial() for _ in range(1000)}
    assert len(serials) == 1000
    assert all(s > 0 and s.bit_length() == 127 for s in serials)
    assert all(len(serial_hex(s)) == 32 and serial_hex(s) == serial_hex(s).lower() for s in serials)
    # 126 random bits below the fixed top bit: all of them vary across 1000 draws
    varying = 0
    for s in serials:
        varying |= s ^ next(iter(serials))
    assert varying == (1 << 126) - 1
