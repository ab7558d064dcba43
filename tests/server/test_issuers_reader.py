"""The ACME server's issuer check reads the issuers table on a SQLite connection of its
own (store/view.py IssuersReader): it must return what the pooled read returns, and see
every change another process makes at its next call (an issuer disabled elsewhere stops
issuing at once); a database file replaced under it is refused, as by the pool, never
read through the old file's connections or -wal; across a fork the child reads on a
connection of its own (as the store's other probes on connections of their own do)."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import threading
import traceback
import weakref
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from privca.acme.issuer import IssuanceRefused
from privca.authority import CertificateAuthority
from privca.errors import StoreUnavailable
from privca.issuers import NewIssuer
from privca.server.acme import CertificateAuthorityIssuer
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture
def teams(make_ca: Callable[..., CertificateAuthority]) -> CertificateAuthority:
    ca = make_ca(permitted=["corp.internal"])
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"], profiles=["server"]))
    ca.create_issuer(
        NewIssuer("team-b", permitted=["b.corp.internal"], excluded=["x.b.corp.internal"])
    )
    return ca


def _database(ca: CertificateAuthority) -> Path:
    return Path(ca.inventory.database.url.removeprefix("sqlite:///"))


def test_the_reader_returns_what_the_pooled_read_returns(teams: CertificateAuthority) -> None:
    reader = teams.inventory.issuers_reader()
    assert reader is not None
    expected = teams.inventory.issuers()
    assert [i.name for i in expected] == ["main", "team-a", "team-b"]
    assert reader.issuers() == expected
    teams.disable_issuer("team-a")
    teams.set_default_issuer("team-b")
    changed = teams.inventory.issuers()
    assert changed != expected
    assert reader.issuers() == changed
    reader.close()


def test_an_issuer_disabled_by_another_process_stops_issuing_at_once(
    teams: CertificateAuthority,
) -> None:
    issuer = CertificateAuthorityIssuer(teams)
    issuer.check_names(["www.a.corp.internal"], "team-a", "server")  # loads the registry
    other = CertificateAuthority.open(teams.home.root, PASSPHRASE)  # its own connections
    try:
        other.disable_issuer("team-a")
        with pytest.raises(IssuanceRefused, match="disabled"):
            issuer.check_names(["www.a.corp.internal"], "team-a", "server")
        other.disable_issuer("team-a", disabled=False)
        issuer.check_names(["www.a.corp.internal"], "team-a", "server")
        other.set_default_issuer("team-b")
        assert issuer.issuer_name(None) == "team-b"
    finally:
        other.close()


def test_a_replaced_database_file_is_refused_until_the_same_file_is_back(
    teams: CertificateAuthority,
) -> None:
    reader = teams.inventory.issuers_reader()
    counter = teams.inventory.change_counter()
    clock = teams.revocation_clock()
    assert reader is not None and counter is not None and clock is not None
    before = reader.issuers()
    assert before == teams.inventory.issuers()
    assert not next(i for i in before if i.name == "team-a").disabled
    issuer = CertificateAuthorityIssuer(teams)
    issuer.check_names(["www.a.corp.internal"], "team-a", "server")
    path = _database(teams)
    copy, aside = path.with_name("replacement.db"), path.with_name("aside.db")
    # closing(): sqlite3's own context manager commits but leaves the connection open.
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
        with target:
            target.execute("UPDATE issuers SET disabled = 1 WHERE name = 'team-a'")
    os.link(path, aside)  # the old file kept, to be put back
    os.replace(copy, path)  # an operator's restore: a new file (inode) at the same path
    # Neither the old file (stale: team-a enabled) nor the new one read through the old
    # -wal beside it: the reader leaves it to the pool, which refuses with the reason.
    assert reader.issuers() is None
    assert reader.issuers() is None
    with pytest.raises(StoreUnavailable, match="replaced since this process opened it") as refused:
        teams.inventory.issuers()
    assert "docs/ha.md" in (refused.value.hint or "")
    with pytest.raises(StoreUnavailable, match="replaced"):
        issuer.check_names(["www.a.corp.internal"], "team-a", "server")
    with pytest.raises(StoreUnavailable, match="replaced"):
        teams.disable_issuer("team-b")
    # The probes that tell a server nothing changed do not vouch for the old file either.
    assert counter.value() is None and clock.value() is None
    os.replace(aside, path)  # the same file back where it was: read again, as it was
    assert reader.issuers() == before == teams.inventory.issuers()
    assert counter.value() is not None and clock.value() is not None
    issuer.check_names(["www.a.corp.internal"], "team-a", "server")
    counter.close()
    clock.close()
    reader.close()


def test_a_vanished_database_file_is_not_created_again(teams: CertificateAuthority) -> None:
    reader = teams.inventory.issuers_reader()
    assert reader is not None
    assert reader.issuers() is not None
    path = _database(teams)
    path.rename(path.with_name("aside.db"))
    assert reader.issuers() is None  # the caller reads through the pool, which says why
    with pytest.raises(StoreUnavailable, match="is gone"):
        teams.inventory.issuers()
    assert not path.exists()
    reader.close()


def test_on_postgresql_an_issuer_disabled_on_one_replica_stops_the_other_at_once(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    home = tmp_path / "ca"
    CertificateAuthority.init(
        home, "Replicated CA", passphrase=PASSPHRASE, store_url=postgres_url
    ).close()
    replica, operator = (CertificateAuthority.open(home, PASSPHRASE) for _ in range(2))
    try:
        operator.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]))
        assert replica.inventory.issuers_reader() is None  # every read is a round trip
        issuer = CertificateAuthorityIssuer(replica)
        issuer.check_names(["www.a.corp.internal"], "team-a")
        operator.disable_issuer("team-a")
        with pytest.raises(IssuanceRefused, match="disabled"):
            issuer.check_names(["www.a.corp.internal"], "team-a")
    finally:
        replica.close()
        operator.close()


class _Tracked(sqlite3.Connection):
    """sqlite3's own connection, which (unlike sqlite3.Connection) can be weakly referenced:
    what lets the test see whether a connection was collected, which closes it."""


def _issuers_reader(ca: CertificateAuthority) -> Any:
    return ca.inventory.issuers_reader()


def _change_counter(ca: CertificateAuthority) -> Any:
    return ca.inventory.change_counter()


def _revocation_clock(ca: CertificateAuthority) -> Any:
    return ca.revocation_clock()


def _read(probe: Any) -> Any:
    return probe.issuers() if hasattr(probe, "issuers") else probe.value()


@pytest.mark.parametrize(
    "make_probe",
    [_issuers_reader, _change_counter, _revocation_clock],
    ids=["issuers reader", "change counter", "revocation clock"],
)
def test_a_forked_child_opens_its_own_connection_and_never_closes_the_parents(
    teams: CertificateAuthority,
    monkeypatch: pytest.MonkeyPatch,
    make_probe: Callable[[CertificateAuthority], Any],
) -> None:
    # Every probe on a connection of its own beside the pool (store/database.py
    # OwnConnection), as serve's workers would have it if one were made before the fork.
    real_connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda *args, **kwargs: real_connect(*args, factory=_Tracked, **kwargs)
    )
    probe = make_probe(teams)
    assert probe is not None
    expected = _read(probe)
    assert expected is not None
    own_connection = probe._own
    teams.close()  # the pool's connections do not cross the fork (as serve's _before_fork)
    inherited = weakref.ref(own_connection._connection)
    failure_r, failure_w = os.pipe()
    # A thread of the parent holds the probe's lock when it forks: no thread in the child
    # will ever release it.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with own_connection.lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        os.close(failure_r)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
        signal.alarm(20)  # a child stuck on the inherited lock dies with SIGALRM
        try:
            found = _read(probe)
            assert found is not None, "the child could not read"
            if make_probe is _change_counter:
                # A new connection's data_version starts where the parent's stood: a cache
                # keyed on the parent's value must not look valid in the child.
                assert found != expected, found
            else:  # the issuers, the store's revocation tick: as the parent read them
                assert found == expected, found
            own = own_connection._connection
            assert own is not None and own is not inherited(), "no connection of its own"
            probe.close()
            del own, found
            gc.collect()
            assert inherited() is not None, "the parent's connection was closed in the child"
        except BaseException:
            os.write(failure_w, traceback.format_exc().encode())
            os._exit(1)
        os._exit(0)
    release.set()
    holder.join()
    os.close(failure_w)
    with os.fdopen(failure_r, "rb") as failure:
        report = failure.read().decode()
    _pid, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status), f"the child was killed by signal {os.WTERMSIG(status)}"
    assert os.waitstatus_to_exitcode(status) == 0, report
    # The parent's connection still reads.
    assert own_connection._connection is inherited() and _read(probe) == expected
    probe.close()
