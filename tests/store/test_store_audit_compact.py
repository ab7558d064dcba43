"""Migration 0012 (the compact audit log): entries written before it read back the same
after it, on SQLite and PostgreSQL, with the same hashes; the packed detail unpacks to
exactly the text that was hashed; the prefix indexes find every row and only the right
ones; and undoing it gives back the rows as they were."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from privca.store.auditlog import (
    GENESIS,
    append,
    canonical_json,
    check_chain,
    entry_hash,
    format_time,
    last_settings_sha256,
    read_entries,
    stored_head,
)
from privca.store.columns import HexBytes, Instant, pack_detail, unpack_detail
from privca.store.inventory import Store
from tests.store.test_store_migrations import _downgrade_to, _index_definitions, _upgrade_to
from tests.store.test_store_names import _plan, _uses_no_scan

BEFORE = "0011_compact_store"
NOW = dt.datetime(2026, 12, 2, 10, 50, 1, 654321, tzinfo=dt.UTC)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# (action, serial, detail object): what privca writes, and what the packing must not
# touch: uppercase or short hex, a hex string that is a key, unicode, nested values.
HISTORY: list[tuple[str, str | None, dict[str, Any]]] = [
    ("settings-changed", None, {"sha256": _digest("toml 1"), "previous": None}),
    (
        "issued",
        "5d8c1e0f4f3e5b9b2f4b8a1a6c3d2e1f",
        {
            "fingerprint": _digest("der 1"),
            "issuer": 2,
            "key_sha256": _digest("key 1"),
            "names": ["web.corp.internal", "www.corp.internal"],
            "profile": "server-client",
        },
    ),
    (
        "issued",
        "5d8c1e0f4f3e5b9b0000000000000001",  # the same first 8 bytes as the one above
        {
            "fingerprint": _digest("der 2"),
            "issuer": 2,
            "key_sha256": _digest("key 2"),
            "names": ["db.corp.internal"],
            "profile": "server",
        },
    ),
    ("revoked", "5d8c1e0f4f3e5b9b2f4b8a1a6c3d2e1f", {"reason": "keyCompromise"}),
    ("superseded", "abc", {"by": "a1b2c3"}),
    ("crl-issued", None, {"issuer": 2, "number": 7}),
    ("restored", None, {"note": 'pass\u00e9 \u2603 "quoted" \\ {}', "empty": {}}),
    (
        "imported",
        "f",
        {
            "fingerprint": _digest("der 3").upper(),
            "from": _digest("x")[:63],
            _digest("as key"): [1, 2.5, True, None],
            "names": [],
            "profile": "client",
        },
    ),
    ("settings-changed", None, {"sha256": _digest("toml 2"), "previous": _digest("toml 1")}),
]


def _legacy_table() -> sa.Table:
    """audit_log as migration 0011 left it: prev_hash stored, detail as text."""
    return sa.Table(
        "audit_log",
        sa.MetaData(),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", Instant()),
        sa.Column("action", sa.String(48)),
        sa.Column("actor", sa.String(255)),
        sa.Column("serial", HexBytes(serial=True)),
        sa.Column("detail", sa.Text),
        sa.Column("prev_hash", HexBytes(serial=False)),
        sa.Column("hash", HexBytes(serial=False)),
    )


def _write_legacy_history(engine: sa.Engine) -> list[tuple[object, ...]]:
    """The history above, chained and stored as 0011 stores it (after the entries the
    migrations made); returns every entry as (seq, at, action, actor, serial, detail,
    prev, hash)."""
    table = _legacy_table()
    with engine.begin() as connection:
        last = connection.execute(
            sa.text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        ).first()
        seq, previous = (int(last[0]), bytes(last[1]).hex()) if last else (0, GENESIS)
        for minute, (action, serial, detail) in enumerate(HISTORY):
            seq += 1
            at = NOW + dt.timedelta(minutes=minute)
            text = canonical_json(detail)
            document = {
                "action": action,
                "actor": "alice",
                "at": format_time(at),
                "detail": json.loads(text),
                "prev": previous,
                "seq": seq,
                "serial": serial,
            }
            digest = entry_hash(document)
            connection.execute(
                table.insert().values(
                    seq=seq,
                    at=at,
                    action=action,
                    actor="alice",
                    serial=serial,
                    detail=text,
                    prev_hash=previous,
                    hash=digest,
                )
            )
            previous = digest
        connection.execute(
            sa.text("UPDATE audit_head SET seq = :s, hash = :h"),
            {"s": seq, "h": bytes.fromhex(previous)},
        )
        return [tuple(row) for row in connection.execute(sa.select(table).order_by(table.c.seq))]


def _raw(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as connection:
        return [
            dict(row._mapping)
            for row in connection.execute(sa.text("SELECT * FROM audit_log ORDER BY seq"))
        ]


def test_0012_keeps_every_entry_and_hash_and_undoes_exactly(store_url: str, backend: str) -> None:
    engine = _upgrade_to(store_url, BEFORE)
    legacy = _write_legacy_history(engine)
    before = _raw(engine)
    engine.dispose()

    store = Store(store_url)
    try:
        store.migrate()
        with store.engine.connect() as connection:
            entries = list(read_entries(connection))
            assert [
                (e.seq, e.at, e.action, e.actor, e.serial, e.detail, e.prev_hash, e.hash)
                for e in entries
            ] == legacy
            count, head, chain_break = check_chain(entries)
            assert chain_break is None, chain_break
            assert (count, head) == stored_head(connection) == (legacy[-1][0], legacy[-1][7])
            columns = {c["name"] for c in sa.inspect(connection).get_columns("audit_log")}
            assert "prev_hash" not in columns
            # the last settings change, found through its partial index
            assert last_settings_sha256(connection) == _digest("toml 2")
            if backend == "sqlite":
                sizes = dict(
                    connection.execute(
                        sa.text(
                            "SELECT seq, length(detail) FROM audit_log WHERE typeof(detail)"
                            " = 'blob' AND action = 'issued'"
                        )
                    ).all()
                )
                texts = {e.seq: len(e.detail) for e in entries if e.action == "issued"}
                assert sizes and all(sizes[s] < texts[s] / 2 for s in texts), (sizes, texts)

        # The chain goes on from the migrated head, and everything verifies together.
        with store.engine.begin() as connection:
            append(connection, NOW + dt.timedelta(hours=1), [("revoked", "f", "x")], "bob")
        with store.engine.connect() as connection:
            entries = list(read_entries(connection))
            count, head, chain_break = check_chain(entries)
            assert chain_break is None and count == len(legacy) + 1
            assert entries[-1].prev_hash == legacy[-1][7]
            assert (count, head) == stored_head(connection)

        with store.engine.begin() as connection:
            connection.execute(sa.text(f"DELETE FROM audit_log WHERE seq = {count}"))
            connection.execute(
                sa.text("UPDATE audit_head SET seq = :s, hash = :h"),
                {"s": legacy[-1][0], "h": bytes.fromhex(str(legacy[-1][7]))},
            )
        _downgrade_to(store.engine, BEFORE)
        assert _raw(store.engine) == before
        indexes = _index_definitions(store.engine, "audit_log")
        assert {"ix_audit_log_action", "ix_audit_log_serial"} <= set(indexes)
        assert "ix_audit_log_settings" not in indexes
        assert "substr(" not in indexes["ix_audit_log_serial"]
    finally:
        store.close()


def test_entries_by_serial_seek_the_prefix_and_compare_the_whole(
    store_url: str, backend: str
) -> None:
    """Two serials with the same first 8 bytes: each lookup finds its own entries only."""
    engine = _upgrade_to(store_url, BEFORE)
    _write_legacy_history(engine)
    engine.dispose()
    store = Store(store_url)
    try:
        store.migrate()
        with store.engine.connect() as connection:
            first = [e.action for e in read_entries(connection, serial=HISTORY[1][1])]
            second = list(read_entries(connection, serial=HISTORY[2][1]))
            assert first == ["issued", "revoked"]
            assert [e.action for e in second] == ["issued"]
            # a filtered entry still carries the hash of the row before it
            whole = {e.seq: e for e in read_entries(connection)}
            assert second[0].prev_hash == whole[second[0].seq - 1].hash
            assert second[0].computed_hash() == second[0].hash
            assert list(read_entries(connection, serial="5d8c1e0f4f3e5b9b")) == []
    finally:
        store.close()


# canonical JSON of arbitrary objects (what as_detail makes), hex strings among them
_hex = st.text("0123456789abcdefABCDEF", min_size=60, max_size=66)
_leaf = st.none() | st.booleans() | st.integers() | st.text() | _hex
_value = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
)


@given(st.dictionaries(st.text() | _hex, _value, max_size=6))
def test_a_packed_detail_unpacks_to_the_same_text(detail: dict[str, Any]) -> None:
    text = canonical_json(detail)
    assert unpack_detail(pack_detail(text)) == text


@given(st.text())
def test_any_text_survives_packing(text: str) -> None:
    assert unpack_detail(pack_detail(text)) == text


def test_an_issued_detail_packs_to_under_half() -> None:
    text = canonical_json(HISTORY[1][2])
    packed = pack_detail(text)
    assert len(packed) < len(text) / 2
    assert unpack_detail(packed) == text
    assert unpack_detail(text) == text  # text stored before 0012 reads as it is


@pytest.mark.parametrize("stored", [b"", b"\x01", b"\x00"])
def test_degenerate_stored_values_read_back(stored: bytes) -> None:
    assert unpack_detail(stored) == ""


@pytest.mark.parametrize("lookup", ["by-serial", "last-settings-change"])
def test_audit_lookups_are_index_seeks(store_url: str, backend: str, lookup: str) -> None:
    """`audit log --serial` and the settings check on every start seek their indexes."""
    engine = _upgrade_to(store_url, BEFORE)
    _write_legacy_history(engine)
    engine.dispose()
    store = Store(store_url)
    try:
        store.migrate()
        captured: list[tuple[str, object]] = []

        def capture(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
            captured.append((statement, params))

        sa.event.listen(store.engine, "before_cursor_execute", capture)
        try:
            with store.engine.connect() as connection:
                if lookup == "by-serial":
                    assert list(read_entries(connection, serial=HISTORY[4][1]))
                else:
                    assert last_settings_sha256(connection) == _digest("toml 2")
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", capture)
        statements = [(s, p) for s, p in captured if "FROM audit_log" in s]
        assert statements
        for statement, parameters in statements:
            plan = _plan(store, backend, statement, parameters)
            if lookup == "by-serial":
                assert _uses_no_scan(plan, backend), (statement, plan)
            else:  # a walk of the partial index: the settings changes alone
                assert "ix_audit_log_settings" in plan, (statement, plan)
    finally:
        store.close()
