"""Named issuers in the store: migration 0010 makes the existing issuing CA lineage the
issuer `main` (the default), an issuing CA replaces only its own issuer's active one, and
an issuer with its first CA is recorded all or nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.errors import AlreadyExists, NotFound, PolicyError
from privca.store.authorities import NewAuthorityRow
from privca.store.inventory import Store
from privca.store.issuers import NewIssuerRow
from tests.store.test_store_migrations import _downgrade_to, _upgrade_to


def _row(serial: int, now: dt.datetime, issuer: str | None = None) -> NewAuthorityRow:
    return NewAuthorityRow(
        "issuing",
        f"CN=I{serial}",
        serial,
        b"der",
        f"k{serial}",
        now + dt.timedelta(days=9),
        issuer=issuer,
    )


def test_0010_makes_the_existing_issuing_cas_the_default_issuer_main(store_url: str) -> None:
    engine = _upgrade_to(store_url, "0007_names_and_tidy")
    now = dt.datetime.now(dt.UTC)
    insert = sa.text(
        "INSERT INTO authorities (id, role, common_name, serial, der, key_ref, active,"
        " not_after, created_at) VALUES (:id, :role, 'CN=x', :s, :d, 'k', :a, :n, :n)"
    )
    with engine.begin() as connection:
        for id_, role, active in ((1, "root", True), (2, "issuing", False), (3, "issuing", True)):
            connection.execute(
                insert, {"id": id_, "role": role, "s": f"a{id_}", "d": b"d", "a": active, "n": now}
            )
        connection.execute(
            sa.text("INSERT INTO acme_eab_keys (kid, label, created_at) VALUES ('kid-1', 'l', :n)"),
            {"n": now},
        )
    engine.dispose()

    store = Store(store_url)
    try:
        assert store.migrate() == "0007_names_and_tidy"
        [main] = store.issuers()
        assert (main.name, main.default, main.disabled, main.profiles) == ("main", True, False, ())
        by_id = {a.id: a for a in store.authorities()}
        assert (by_id[1].issuer, by_id[2].issuer, by_id[3].issuer) == (None, "main", "main")
        assert (by_id[2].active, by_id[3].active) == (False, True)
        # Down and up again: the columns and the table go and come back, rows kept.
        _downgrade_to(store.engine, "0007_names_and_tidy")
        inspector = sa.inspect(store.engine)
        assert "issuers" not in inspector.get_table_names()
        assert "issuer" not in {c["name"] for c in inspector.get_columns("authorities")}
        assert "issuer" not in {c["name"] for c in inspector.get_columns("acme_orders")}
        store.migrate()
        assert [a.issuer for a in store.authorities()] == [None, "main", "main"]
    finally:
        store.close()


def test_an_issuing_ca_replaces_only_its_own_issuers(store: Store, now: dt.datetime) -> None:
    [main_id] = store.add_authorities([_row(1, now)], now)
    team_id = store.add_issuer(
        NewIssuerRow("team-a", ("a.corp.internal",)), _row(2, now, "team-a"), now
    )
    [main2_id] = store.add_authorities([_row(3, now)], now)  # no issuer: the default's
    active = {a.id: (a.active, a.issuer) for a in store.authorities()}
    assert active == {main_id: (False, "main"), team_id: (True, "team-a"), main2_id: (True, "main")}
    [team2_id] = store.add_authorities([_row(4, now, "team-a")], now)
    active = {a.id: a.active for a in store.authorities()}
    assert (active[team_id], active[team2_id], active[main2_id]) == (False, True, True)


def test_an_issuer_and_its_first_ca_are_recorded_all_or_none(
    store: Store, now: dt.datetime
) -> None:
    store.add_issuer(NewIssuerRow("team-a"), _row(1, now, "team-a"), now)
    count = len(store.authorities())
    with pytest.raises(AlreadyExists):
        store.add_issuer(NewIssuerRow("team-a"), _row(2, now, "team-a"), now)
    assert len(store.authorities()) == count
    with pytest.raises(NotFound):
        store.add_authorities([_row(3, now, "nobody")], now)
    assert len(store.authorities()) == count


def test_two_processes_creating_one_issuer_at_once_record_it_once(
    open_store: Callable[[], Store], now: dt.datetime
) -> None:
    stores = [open_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def create(store: Store, serial: int) -> None:
        barrier.wait()
        try:
            store.add_issuer(NewIssuerRow("race"), _row(serial, now, "race"), now)
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(s, 10 + i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "exists", "exists", "exists"]
    assert [a.issuer for a in stores[0].authorities()].count("race") == 1


def test_default_and_disabled_are_exclusive(store: Store, now: dt.datetime) -> None:
    store.add_issuer(NewIssuerRow("team-a"), _row(1, now, "team-a"), now)
    with pytest.raises(PolicyError):
        store.set_issuer_disabled("main", True, now)
    store.set_default_issuer("team-a", now)
    assert [i.name for i in store.issuers() if i.default] == ["team-a"]
    assert store.set_issuer_disabled("main", True, now) is True
    with pytest.raises(PolicyError):
        store.set_default_issuer("main", now)
    with pytest.raises(NotFound):
        store.set_default_issuer("nobody", now)
