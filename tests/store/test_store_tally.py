"""certificate_tally (SQLite): the counts the triggers keep equal the counts of a walk of
every row, after every kind of write and at any later time, without a scan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from privca.store.imports import ImportedRow, add_imported_certificates
from privca.store.inventory import Intent, Store
from privca.store.metrics import _counted, _tallied
from privca.store.schema import certificates
from privca.store.tally import certificate_tally
from tests.store.conftest import stand_in_der

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

DAY = dt.timedelta(days=1)


def _both(store: Store, at: dt.datetime) -> tuple[dict[object, int], dict[object, int]]:
    with store.engine.connect() as connection:
        tallied = {k: n for k, n in _tallied(connection, at).items() if n}
        counted = {k: n for k, n in _counted(connection, at).items() if n}
    return tallied, counted


def _fleet(store: Store, make_intent: Callable[..., Intent], now: dt.datetime) -> list[int]:
    """Certificates that expire yesterday, earlier today, later today, tomorrow, later;
    in three profiles; issued, pending, failed, revoked, superseded, imported, tidied."""
    expiries = [-400, -1, -0.2, 0.2, 1, 30, 400]
    intents = [
        make_intent(f"h{i}-{p}.corp.internal", days=d, profile=p)
        for i, d in enumerate(expiries)
        for p in ("server", "client", "server-client")
    ]
    serials = store.reserve(intents, now)
    signed, pending, failed = serials[:-4], serials[-4:-2], serials[-2:]
    store.complete(
        [(s, stand_in_der(s, i)) for s, i in zip(signed, intents, strict=False)], now, intents[:-4]
    )
    store.abandon(failed, now, "test")
    del pending  # left as they are
    store.revoke(signed[3], "keyCompromise", now, None)
    store.revoke(signed[10], None, now, None)
    store.mark_superseded(signed[12], signed[13], now)
    store.mark_superseded(signed[14], signed[15], now)
    store.revoke(signed[14], "superseded", now, None)  # superseded, then revoked
    add_imported_certificates(
        store.database,
        intents[0].issuer_id,
        [
            ImportedRow(
                serial=0xABC0 + i,
                status="revoked" if i % 2 else "issued",
                profile="server",
                names=(f"imported{i}.corp.internal",),
                subject=f"CN=imported{i}.corp.internal",
                not_before=now - 10 * DAY,
                not_after=now + (i - 2) * DAY,
                public_key_sha256="",
                der=b"der",
                revoked_at=now - DAY if i % 2 else None,
                reason="superseded" if i % 2 else None,
            )
            for i in range(5)
        ],
        now,
    )
    store.tidy(now - 90 * DAY, now)
    return serials


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(dt.timedelta(0), id="now"),
        pytest.param(dt.timedelta(hours=3), id="three-hours-later"),
        pytest.param(DAY, id="tomorrow"),
        pytest.param(2 * DAY, id="in-two-days"),
        pytest.param(45 * DAY, id="in-45-days"),
        pytest.param(-DAY, id="yesterday"),
    ],
)
def test_the_tally_counts_what_a_walk_counts(
    store: Store,
    make_intent: Callable[..., Intent],
    now: dt.datetime,
    later: dt.timedelta,
) -> None:
    _fleet(store, make_intent, now)
    tallied, counted = _both(store, now + later)
    assert tallied == counted
    assert sum(counted.values()) == 7 * 3 + 5


def test_a_bulk_update_and_a_delete_keep_the_tally(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    """Writes the store has no call for (a script, a restore) are counted too."""
    serials = _fleet(store, make_intent, now)
    with store.engine.begin() as connection:
        connection.execute(certificates.update().values(profile="client"))
        connection.execute(certificates.delete().where(certificates.c.status == "failed"))
        connection.execute(
            certificates.update()
            .where(certificates.c.status == "issued")
            .values(not_after=now + 3 * DAY, superseded_by=format(serials[0], "x"))
        )
    tallied, counted = _both(store, now)
    assert tallied == counted
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(certificate_tally.c.n)).scalars().all()
    assert all(n >= 0 for n in rows)


def test_the_counts_scan_no_certificate_rows(
    store: Store, make_intent: Callable[..., Intent], now: dt.datetime
) -> None:
    _fleet(store, make_intent, now)
    captured: list[tuple[str, object]] = []

    def capture(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
        captured.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.certificate_counts(now)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in captured:
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert not [step for step in plan if step.startswith("SCAN certificates")], plan
