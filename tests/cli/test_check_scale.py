"""privca check reads what it reports: the certificates inside the warning window one by
one, the rest as SQL aggregates, every query on the certificates table served by an index."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.monitoring import collect
from privca.store.schema import certificates
from tests.conftest import PASSPHRASE, Cli, assert_user_error


@pytest.fixture
def ca(home_cli: Cli) -> Iterator[CertificateAuthority]:
    """Two certificates inside a 30-day window, twelve beyond it, one revoked in it; all
    long-lived (notBefore a year back, set in the rows, which is all check reads), so
    --warn and --crit alone decide, not a third or a sixth of a lifetime."""
    authority = CertificateAuthority.open(home_cli.home, PASSPHRASE)
    authority.issue(["soon.corp.internal"], days=3)
    authority.issue(["month.corp.internal"], days=20)
    authority.issue(["revoked.corp.internal"], days=10)
    authority.revoke("revoked.corp.internal", "keyCompromise")
    for i in range(12):
        authority.issue([f"later{i}.corp.internal"], days=100 + i)
    with authority.inventory.database.engine.begin() as connection:
        connection.execute(
            certificates.update().values(not_before=utcnow() - dt.timedelta(days=365))
        )
    yield authority
    authority.close()


def test_only_the_window_is_listed(ca: CertificateAuthority, home_cli: Cli) -> None:
    result = home_cli("check", "--format", "json", "--warn", "30d", "--crit", "7d")
    assert result.exit_code == 1
    document = json.loads(result.output)
    labels = {i["label"] for i in document["items"] if i["kind"] == "certificate"}
    assert labels == {"soon.corp.internal", "month.corp.internal"}
    assert document["certificates"] == {"total": 14, "ok": 12, "warning": 1, "critical": 1}
    nagios = home_cli("check", "--format", "nagios")
    assert nagios.output.startswith("PRIVCA CRITICAL - 14 certificates, 1 critical, 1 warning")
    text = home_cli("check").output.splitlines()[0]
    # 14 certificates, the root and the issuing CA, and the CRLs init published.
    assert text.startswith("1") and "item(s) checked, 2 need attention" in text


def test_a_wider_window_lists_more(ca: CertificateAuthority, home_cli: Cli) -> None:
    document = json.loads(home_cli("check", "--format", "json", "--warn", "105d").output)
    listed = [i for i in document["items"] if i["kind"] == "certificate"]
    assert len(listed) == 8 and document["certificates"]["ok"] == 6


def assert_certificate_queries_use_an_index(
    ca: CertificateAuthority, action: Callable[[], object], minimum: int
) -> None:
    """What `action` asks the certificates table (at least `minimum` statements): a search
    of an index, never a walk of the rows (SQLite's EXPLAIN QUERY PLAN)."""
    statements: list[tuple[str, object]] = []

    def capture(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
        statements.append((statement, params))

    engine = ca.inventory.database.engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    on_certificates = [(s, p) for s, p in statements if "FROM certificates" in s]
    assert len(on_certificates) >= minimum
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in on_certificates:
            plan = [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            scans = [step for step in plan if step.startswith("SCAN certificates")]
            assert all("USING COVERING INDEX" in step for step in scans), (statement, plan)


def test_every_check_query_on_certificates_uses_an_index(ca: CertificateAuthority) -> None:
    assert_certificate_queries_use_an_index(
        ca, lambda: collect(ca, utcnow(), dt.timedelta(days=30), dt.timedelta(days=7)), 2
    )


def test_check_takes_json_as_every_listing_command_does(home_cli: Cli) -> None:
    """README: every listing command takes --json; check only took --format json."""
    as_flag = home_cli("check", "--json")
    assert as_flag.exit_code == 0, as_flag.stderr
    assert json.loads(as_flag.stdout)["status"] == "ok"
    assert_user_error(home_cli("check", "--json", "--format", "prometheus"), "two formats")
    # As a Nagios plugin a bad argument is UNKNOWN (exit 2 would read as CRITICAL).
    nagios = home_cli("check", "--json", "--format", "nagios")
    assert nagios.exit_code == 3
    assert nagios.stdout.startswith("PRIVCA UNKNOWN - --json and --format nagios ask for two")
