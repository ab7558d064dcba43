"""Store.complete with the intents the caller holds: `issued` audit entries that carry
what the rows record, written without reading the certificate rows again.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from privca.store import auditlog
from privca.store.inventory import Intent, Store


def _issued_entries(store: Store) -> dict[str, auditlog.AuditEntry]:
    with store.database.read() as connection:
        entries = list(auditlog.read_entries(connection))
        _count, _last, broken = auditlog.check_chain(entries)
    assert broken is None
    return {e.serial or "": e for e in entries if e.action == "issued"}


@pytest.fixture
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL the store sends to the database while the test runs (SQLAlchemy's event)."""
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(str(args[2]))  # conn, cursor, statement, parameters, context, many

    sa.event.listen(store.database.engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(store.database.engine, "before_cursor_execute", listener)


def test_the_issued_entry_carries_what_the_row_records(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    held = make_intent("a.corp.internal", "10.0.0.7", profile="server")
    [serial] = store.reserve([held], now)

    store.complete([(serial, b"DER-SAME")], now, [held])

    detail = _issued_entries(store)[format(serial, "x")].details
    record = store.get(serial)
    assert record is not None
    assert detail == {
        "fingerprint": auditlog.der_fingerprint(b"DER-SAME"),
        "issuer": record.issuer_id,
        "profile": record.profile,
        "names": list(record.names),
        "key_sha256": record.public_key_sha256,
    }
    assert detail == {
        "fingerprint": auditlog.der_fingerprint(b"DER-SAME"),
        "issuer": held.issuer_id,
        "profile": "server",
        "names": ["a.corp.internal", "10.0.0.7"],
        "key_sha256": held.public_key_sha256,
    }


def test_held_intents_are_not_read_back(
    store: Store,
    make_intent: Callable[..., Intent],
    now: dt.datetime,
    statements: list[str],
) -> None:
    intents = [make_intent("a.corp.internal"), make_intent("b.corp.internal")]
    serials = store.reserve(intents, now)
    statements.clear()

    store.complete([(s, b"DER-" + bytes([i])) for i, s in enumerate(serials)], now, intents)

    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if "certificates" in s], reads
    for serial in serials:
        record = store.get(serial)
        assert record is not None and record.status == "issued"
    assert set(_issued_entries(store)) == {format(s, "x") for s in serials}


def test_intents_that_do_not_match_write_nothing(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    intents = [make_intent("a.corp.internal"), make_intent("b.corp.internal")]
    serials = store.reserve(intents, now)
    head = store.audit_head()

    with pytest.raises(ValueError, match="one intent per signed certificate"):
        store.complete([(serials[0], b"DER")], now, intents)

    record = store.get(serials[0])
    assert record is not None and record.status == "pending"
    assert store.audit_head() == head
    assert format(serials[0], "x") not in _issued_entries(store)
