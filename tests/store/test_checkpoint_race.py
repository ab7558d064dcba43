"""Two replicas over PostgreSQL keeping the same audit checkpoint at once: the second one
finds it kept (False), never an error. (A renewal storm across two replicas hit this: the
loser's ACME finalize answered 500 although its certificate was issued.)"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from privca.store.inventory import Store
from privca.store.schema import audit_checkpoints

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# PostgreSQL only: SQLite has one writer at a time, so the check already sees the other's.
@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_checkpoint_kept_meanwhile_by_another_replica_is_no_error(
    store: Store, backend: str, open_store
) -> None:
    other = open_store()  # the other replica
    results: list[bool | BaseException] = []
    with other.engine.connect() as connection, connection.begin():
        # The other replica has inserted seq 7 and not committed yet: our check finds
        # nothing, and our insert waits on its key.
        connection.execute(
            audit_checkpoints.insert().values(seq=7, head_hash="a" * 64, at=NOW, document="{}")
        )

        def keep() -> None:
            try:
                results.append(store.add_checkpoint(7, "a" * 64, NOW, "{}"))
            except BaseException as exc:  # the test reports it
                results.append(exc)

        thread = threading.Thread(target=keep)
        thread.start()
        time.sleep(1.0)  # our insert is now waiting for the other transaction
        assert not results
    thread.join(30)
    assert results == [False], results
    with store.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(audit_checkpoints))
        assert count.scalar() == 1
