"""Names live in their own indexed table: migration 0007 fills it from the JSON column,
every insertion fills it, and the lookups by name, serial, key hash and expiry are index
seeks on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.store.imports import ImportedRow, add_imported_certificates
from privca.store.inventory import Intent, Store
from privca.store.schema import KEY_HASH_INDEX, certificate_names, certificates
from privca.x509.encoding import serial_hex
from tests.store.test_store_migrations import _downgrade_to, _upgrade_to


def _names_of(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(certificate_names.c.serial, certificate_names.c.name))
        return {(str(serial), str(name)) for serial, name in rows}


def test_0007_backfills_the_names_of_existing_rows(store_url: str) -> None:
    engine = _upgrade_to(store_url, "0006_serve_indexes")
    now = dt.datetime.now(dt.UTC)
    rows = {
        "a1": ["web.corp.internal", "www.corp.internal"],
        "b2": ["web.corp.internal"],  # the same name on two certificates
        "c3": ["dup.corp.internal", "dup.corp.internal"],  # a list repeating a name
        "d4": [],  # a revocation imported without its certificate
        "e5": ["192.0.2.7", "ops@corp.internal", "ÿ.x'\"%_"],
    }
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO authorities (id, role, common_name, serial, der, key_ref, active,"
                " not_after, created_at) VALUES (1, 'issuing', 'CN=I', 'ab', :d, 'k', :t, :n, :n)"
            ),
            {"d": b"der", "t": True, "n": now},
        )
        for serial, names in rows.items():
            connection.execute(
                sa.text(
                    "INSERT INTO certificates (serial, issuer_id, status, profile, names,"
                    " subject, not_before, not_after, public_key_sha256, der, created_at)"
                    " VALUES (:s, 1, 'issued', 'server-client', :names, 'CN=x', :n, :n,"
                    " 'ab', :d, :n)"
                ),
                {"s": serial, "names": json.dumps(names), "n": now, "d": b"der"},
            )
    engine.dispose()

    store = Store(store_url)
    try:
        assert store.migrate() == "0006_serve_indexes"
        expected = {(s, name) for s, names in rows.items() for name in names}
        assert _names_of(store) == expected
        found = store.find_by_name("web.corp.internal", now)
        assert sorted(serial_hex(r.serial) for r in found) == ["a1", "b2"]
        assert [serial_hex(r.serial) for r in store.find_by_name("ÿ.x'\"%_", now)] == ["e5"]
        # Back down and up again: the table goes and comes back filled.
        _downgrade_to(store.engine, "0006_serve_indexes")
        assert "certificate_names" not in sa.inspect(store.engine).get_table_names()
        store.migrate()
        assert _names_of(store) == expected
    finally:
        store.close()


def test_issuance_records_every_name_once(
    store: Store, make_intent: Callable[..., Intent], issue_records: Callable[..., list[int]]
) -> None:
    [serial] = issue_records(make_intent("a.corp.internal", "b.corp.internal", "a.corp.internal"))
    assert _names_of(store) == {
        (serial_hex(serial), "a.corp.internal"),
        (serial_hex(serial), "b.corp.internal"),
    }


def test_a_pending_intent_has_its_names_but_is_not_found_by_name(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    [serial] = store.reserve([make_intent("pending.corp.internal")], now)
    assert (serial_hex(serial), "pending.corp.internal") in _names_of(store)
    assert store.find_by_name("pending.corp.internal", now) == []


def test_imported_certificates_record_their_names(
    store: Store, issuer_id: int, now: dt.datetime
) -> None:
    row = ImportedRow(
        serial=0xABC,
        status="issued",
        profile="server",
        names=("old.corp.internal",),
        subject="CN=old.corp.internal",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
        public_key_sha256="ab" * 32,
        der=b"der",
    )
    add_imported_certificates(store.database, issuer_id, [row], now)
    [found] = store.find_by_name("old.corp.internal", now)
    assert found.serial == 0xABC


@pytest.mark.parametrize(
    ("looked_up", "expected"),
    [
        pytest.param("web.corp.internal", ["new", "old"], id="exact-newest-first"),
        pytest.param("WEB.corp.internal", [], id="case-sensitive-as-stored"),
        pytest.param("corp.internal", [], id="no-suffix-match"),
        pytest.param("%", [], id="like-wildcard-is-literal"),
        pytest.param("web.corp.internal ", [], id="trailing-space"),
    ],
)
def test_find_by_name_is_an_exact_match(
    store: Store,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
    looked_up: str,
    expected: list[str],
) -> None:
    old_start = now - dt.timedelta(days=2)
    [old] = issue_records(make_intent("web.corp.internal", not_before=old_start))
    [new] = issue_records(make_intent("web.corp.internal", "api.corp.internal"))
    issue_records(make_intent("other.corp.internal"))
    labels = {old: "old", new: "new"}
    assert [labels[r.serial] for r in store.find_by_name(looked_up, now)] == expected


def _statements(store: Store, call: Callable[[], object]) -> list[tuple[str, object]]:
    captured: list[tuple[str, object]] = []

    def capture(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    return [(s, p) for s, p in captured if "FROM certificates" in s]


def _plan(store: Store, backend: str, statement: str, parameters: object) -> str:
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if backend == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[3]) for row in cursor.fetchall())
        # A table of a few rows is cheapest to scan; tell the planner a scan costs a lot,
        # so the plan shows whether an index *can* serve the query.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(str(row[0]) for row in cursor.fetchall())


def _uses_no_scan(plan: str, backend: str) -> bool:
    if backend == "sqlite":
        scans = [line for line in plan.splitlines() if line.startswith("SCAN ")]
        return not scans
    return "Seq Scan" not in plan


@pytest.mark.parametrize(
    "lookup",
    ["by-name", "by-serial", "by-key-hash", "by-expiry", "page-after-serial"],
)
def test_lookups_are_index_seeks(
    store: Store,
    backend: str,
    make_intent: Callable[..., Intent],
    issue_records: Callable[..., list[int]],
    now: dt.datetime,
    lookup: str,
) -> None:
    serials = issue_records(*(make_intent(f"h{i}.corp.internal", days=i + 1) for i in range(20)))
    key_hash = make_intent("h3.corp.internal").public_key_sha256
    calls: dict[str, Callable[[], object]] = {
        "by-name": lambda: store.find_by_name("h3.corp.internal", now),
        "by-serial": lambda: store.get(serials[3]),
        "by-key-hash": lambda: _key_hash_lookup(store, key_hash),
        "by-expiry": lambda: store.find(expiring_before=now + dt.timedelta(days=3), now=now),
        "page-after-serial": lambda: list(store.stream(now=now, after=serials[5], limit=3)),
    }
    statements = _statements(store, calls[lookup])
    assert statements
    for statement, parameters in statements:
        plan = _plan(store, backend, statement, parameters)
        assert _uses_no_scan(plan, backend), (statement, plan)


def _key_hash_lookup(store: Store, key_hash: str) -> object:
    with store.engine.connect() as connection:
        return connection.execute(
            sa.select(certificates.c.serial).where(
                KEY_HASH_INDEX.match(certificates.c.public_key_sha256, key_hash)
            )
        ).all()
