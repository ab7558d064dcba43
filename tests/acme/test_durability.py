"""Which commits of an ACME issuance wait for the disk (SQLite, the CA's store).

The account must survive a power cut on its own (the client keeps its URL and would find
it gone). The challenge result needs no flush of its own: only the same order's finalize
relies on it, and that flushes it. finalize's certificate record and the order turning
valid must both survive, and nothing of them leaves the server before finalize answers:
they reach the disk in one flush of the WAL (store/database.py `one_flush`)."""

from __future__ import annotations

import os

import pytest
from acme import messages

from tests.acme.conftest import AcmeServer
from tests.acme.test_client_lib import new_client, obtain_http01
from tests.store.writes_seen import Write, writes_seen


def test_an_issuance_flushes_the_account_and_then_finalize_once(
    acme_server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = acme_server.ca.acme_repository().engine
    assert engine.dialect.name == "sqlite"
    wal = os.path.realpath(f"{engine.url.database}-wal")
    real_fdatasync = os.fdatasync
    # The writes on the driver's cursor too (the ACME store's), not only SQLAlchemy's;
    # the flushes of the WAL go into the same list, in the order they happen.
    with writes_seen(engine) as seen:

        def fdatasync(descriptor: int) -> None:
            if os.path.realpath(f"/proc/self/fd/{descriptor}") == wal:
                seen.append(Write("flush", "-", "-"))
            real_fdatasync(descriptor)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        acme = new_client(acme_server)
        acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        order, _key = obtain_http01(acme, acme_server, ["a.test"])
    events = [
        ("flush", "-")
        if write.verb == "flush"
        else (f"{write.verb} {write.table}", "durable" if write.level == "on" else "deferred")
        for write in seen
        if write.verb == "flush" or write.table.startswith("acme_") or write.table == "certificates"
    ]
    assert order.body.status == messages.STATUS_VALID
    nonces = ("INSERT acme_spent_nonces", "INSERT acme_nonce_keys")  # see test_nonces.py
    events = [e for e in events if e[0] not in nonces]
    assert events[0] == ("INSERT acme_accounts", "durable"), events
    assert ("UPDATE acme_challenges", "deferred") in events, events
    assert ("UPDATE acme_authorizations", "deferred") in events, events
    issued = events.index(("UPDATE certificates", "deferred"))
    assert events[issued + 1 :] == [("UPDATE acme_orders", "deferred"), ("flush", "-")], events
    assert all(level == "deferred" for what, level in events[1:] if what != "flush"), events
    assert events.count(("flush", "-")) == 1, events
