"""/metrics keeps its page between scrapes until the store changes or the minute turns:
a scrape with nothing new reads nothing, and issue, revoke, renew, tidy (here or in
another process) and time each show on the next scrape. SQLite and PostgreSQL; and the
limit on per-certificate series, through a real server and `privca serve`'s flag."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.monitoring import MetricsCache
from privca.server.settings import ServerSettings
from tests.conftest import PASSPHRASE, assert_user_error, tree_snapshot
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures, shared cluster)

DAY = dt.timedelta(days=1)
SERIES = "privca_certificate_not_after_timestamp_seconds{"
NAME = re.compile(
    r"^privca_certificate_not_after_timestamp_seconds" r'\{serial="\w+",name="([^"]*)"', re.M
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ca(
    request: pytest.FixtureRequest, make_ca: Callable[..., CertificateAuthority]
) -> CertificateAuthority:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
    authority = make_ca(now=utcnow() - 10 * DAY, store_url=url)
    authority.issue(["first.corp.internal"], days=20)
    return authority


class Reads:
    """Counts the statements that read the certificates table."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.count = 0
        self.engine = ca.inventory.database.engine
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _c: object, _cur: object, statement: str, *_: object) -> None:
        self.count += "FROM certificates" in statement

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def reads(ca: CertificateAuthority) -> Iterator[Reads]:
    counter = Reads(ca)
    yield counter
    counter.close()


def _minute_start() -> dt.datetime:
    return utcnow().replace(second=1, microsecond=0)


def _names(page: str) -> set[str]:
    return {m[1] for m in NAME.finditer(page)}


def _scrape(cache: MetricsCache, reads: Reads, at: dt.datetime) -> tuple[str, bool]:
    """The page, and whether the store was read for it."""
    before = reads.count
    page = cache.page(at)
    return page, reads.count > before


def test_a_scrape_with_nothing_new_reads_nothing(ca: CertificateAuthority, reads: Reads) -> None:
    cache = MetricsCache(ca, 30 * DAY)
    at = _minute_start()
    first, read = _scrape(cache, reads, at)
    assert read and "first.corp.internal" in _names(first)
    again, read = _scrape(cache, reads, at + dt.timedelta(seconds=30))
    if ca.inventory.write_position() is None:  # SQLite: data_version moves only on commits
        assert not read and again is first
    else:
        # PostgreSQL's WAL also moves for writes that change nothing here (autovacuum,
        # hint bits): a scrape is a memory read when it did not move.
        for _ in range(5):
            again, read = _scrape(cache, reads, at + dt.timedelta(seconds=31))
            if not read:
                break
        assert not read and again == first
    cache.close()


@pytest.mark.parametrize("change", ["issue", "revoke", "renew", "tidy"])
def test_each_change_shows_on_the_next_scrape(
    ca: CertificateAuthority, reads: Reads, change: str
) -> None:
    cache = MetricsCache(ca, 30 * DAY)
    at = _minute_start()
    ca.issue(["old.corp.internal"], days=1, now=utcnow() - 5 * DAY)  # expired
    before, _ = _scrape(cache, reads, at)
    assert _names(before) == {"first.corp.internal"}
    if change == "issue":
        ca.issue(["second.corp.internal"], days=5)
        expected = {"first.corp.internal", "second.corp.internal"}
    elif change == "revoke":
        ca.revoke("first.corp.internal", "keyCompromise")
        expected = set()
    elif change == "renew":
        renewed = ca.renew("first.corp.internal", days=15)
        expected = {"first.corp.internal"}
    else:
        assert ca.tidy(dt.timedelta(days=1)) == 1
        expected = {"first.corp.internal"}
    after, read = _scrape(cache, reads, at + dt.timedelta(seconds=1))
    assert read, change
    assert _names(after) == expected
    if change == "renew":
        series = [line for line in after.splitlines() if line.startswith(SERIES)]
        assert [re.search(r'serial="([0-9a-f]+)"', line)[1] for line in series] == [
            format(renewed.serial, "x")
        ]
    # tidy changes nothing /metrics shows (a tombstone still counts as expired), but the
    # page is built again: the cache cannot know what a change changed.
    cache.close()


def test_a_change_by_another_process_shows_too(ca: CertificateAuthority, reads: Reads) -> None:
    """Another replica or a CLI command: its own connection, its own commit."""
    cache = MetricsCache(ca, 30 * DAY)
    at = _minute_start()
    assert "other.corp.internal" not in _names(_scrape(cache, reads, at)[0])
    other = CertificateAuthority.open(ca.home.root, PASSPHRASE)
    try:
        other.issue(["other.corp.internal"], days=3)
    finally:
        other.close()
    after, read = _scrape(cache, reads, at + dt.timedelta(seconds=2))
    assert read and "other.corp.internal" in _names(after)
    cache.close()


def test_the_next_minute_reads_again(ca: CertificateAuthority, reads: Reads) -> None:
    """Time changes the page without a write: what expired, what came inside the window."""
    cache = MetricsCache(ca, 30 * DAY)
    record = ca.inventory.find_by_name("first.corp.internal", utcnow())[0]
    minute = record.not_after.replace(second=0, microsecond=0)  # the one it expires in
    before, _ = _scrape(cache, reads, minute - dt.timedelta(seconds=59))
    assert "first.corp.internal" in _names(before)
    _, read = _scrape(cache, reads, minute - dt.timedelta(seconds=1))
    assert not read or ca.inventory.write_position() is not None  # SQLite: no write, no read
    later, read = _scrape(cache, reads, minute + dt.timedelta(seconds=61))
    assert read and "first.corp.internal" not in _names(later)
    cache.close()


def test_metrics_names_the_soonest_and_counts_the_rest(
    make_ca: Callable[..., CertificateAuthority], live_server
) -> None:
    ca = make_ca(now=utcnow() - DAY)
    for days in (9, 3, 12, 5, 60):
        ca.issue([f"in{days}.corp.internal"], days=days)
    server = live_server(ca, ServerSettings(metrics_certificates=2))
    text = server.get("/metrics").body.decode()
    listed = [line for line in text.splitlines() if line.startswith(SERIES)]
    assert [re.search(r'name="([^"]+)"', line)[1] for line in listed] == [
        "in3.corp.internal",
        "in5.corp.internal",
    ]
    assert "within 30 days, the 2 soonest (Unix time)." in text
    within = {
        re.search(r'within="([^"]+)"', line)[1]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("privca_certificates_expiring{")
    }
    assert within == {"1d": 0, "7d": 2, "30d": 4}


def test_serve_refuses_a_bad_metrics_certificates(ca: CertificateAuthority, run_cli) -> None:
    flag = run_cli("serve", "--metrics-certificates", "-1", home=ca.home.root)
    assert flag.exit_code == 2 and "privca: error:" in flag.stderr
    settings = ca.home.settings
    settings.write_text(settings.read_text() + '\n[serve]\nmetrics_certificates = "\\u001b[2J"\n')
    result = run_cli(
        "serve", "--no-tls", "--no-acme", "--passphrase-file", str(run_cli.passphrase_file),
        home=ca.home.root,
    )  # fmt: skip
    assert_user_error(result, "metrics_certificates must be a whole number")
    assert "\x1b" not in result.stderr


@pytest.mark.parametrize("value", ["1000001", "100000000000000000000"])
def test_serve_refuses_a_metrics_certificates_beyond_the_cap(
    ca: CertificateAuthority, run_cli, value: str
) -> None:
    """A huge bound passed start-up once and then made every scrape fail (SQLite's LIMIT
    is a 64-bit integer): refused at start, from the flag and from privca.toml."""
    before = tree_snapshot(ca.home.root)
    flag = run_cli("serve", "--no-tls", "--metrics-certificates", value, home=ca.home.root)
    assert flag.exit_code == 2 and "privca: error:" in flag.stderr, flag.output
    assert tree_snapshot(ca.home.root) == before
    settings = ca.home.settings
    settings.write_text(settings.read_text() + f"\n[serve]\nmetrics_certificates = {value}\n")
    result = run_cli(
        "serve", "--no-tls", "--no-acme", "--passphrase-file", str(run_cli.passphrase_file),
        home=ca.home.root,
    )  # fmt: skip
    assert_user_error(result, "metrics_certificates must be a whole number from 0 to 1,000,000")
