"""check and /metrics say what they said before they read the window lean: every output
of privca.monitoring equals what main's record-by-record path (tests/monitoring_reference.py)
makes of the same store at the same moment, on SQLite and PostgreSQL.

The store holds what can go wrong: certificates exactly on each edge of the windows (and
one microsecond past it), short-lived ones on each edge of the windows their lifetime
sets (a third and a sixth of it, exact to the microsecond), revoked, superseded, due
and not yet due scheduled revocations, tidied, self-renewing profiles, equal notAfter
times (ordered by serial), three CAs (a rotated one, a named issuer), and hostile names
(quotes, backslashes, newlines, escape sequences, bidi controls, a 300-character name,
a character outside the BMP, no name at all). Times are set in the rows directly, to
the microsecond."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from privca import monitoring
from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.issuers import NewIssuer
from privca.store.schema import certificates
from privca.store.status import CertificateStatus
from privca.x509.encoding import serial_hex
from privca.x509.profiles import SELF_RENEWING_PROFILES
from tests import monitoring_reference as reference
from tests.cli.test_check_scale import assert_certificate_queries_use_an_index
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures, shared cluster)

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)
WARN, CRIT = 30 * DAY, 7 * DAY

HOSTILE = [
    'quote"back\\slash\nnewline.example',
    "\x1b]52;c;ZXZpbA==\x07osc.example",
    "abc\u202eexe.example",
    "x" * 300 + ".example",
    "\U0001f600.emoji.example",
    "bücher.example",
    'end\\"',
    'only"quote.example',
]


def _set(ca: CertificateAuthority, serial: int, **values: Any) -> None:
    """Set columns of one certificate row, as another writer (or time) would have."""
    table = certificates
    with ca.inventory.database.engine.begin() as connection:
        connection.execute(
            table.update().where(table.c.serial == serial_hex(serial)).values(**values)
        )


# name: (lifetime, time left), and check's verdict with --warn 30d --crit 7d (None: fine,
# so not listed). Warning within min(--warn, lifetime / 3), critical within
# min(--crit, lifetime / 6), edges included.
SHORT_LIVED = {
    "week-new": (7 * DAY, 7 * DAY - HOUR),
    "week-2d": (7 * DAY, 2 * DAY),
    "week-20h": (7 * DAY, 20 * HOUR),
    "week-expired": (7 * DAY, -DAY),
    "day-new": (DAY, 16 * HOUR),
    "day-warn-edge": (DAY, 8 * HOUR),
    "day-past-warn": (DAY, 8 * HOUR + US),
    "day-crit-edge": (DAY, 4 * HOUR),
    "day-past-crit": (DAY, 4 * HOUR + US),
    # lifetime / 3 is not a whole microsecond: 3 x left against the lifetime, exactly
    "odd-warn": (DAY + 2 * US, 8 * HOUR),
    "odd-past-warn": (DAY + 2 * US, 8 * HOUR + US),
    "90d-warn-edge": (90 * DAY, 30 * DAY),
    "90d-crit-edge": (90 * DAY, 7 * DAY),
    "60d-19d": (60 * DAY, 19 * DAY),
    "60d-21d": (60 * DAY, 21 * DAY),
}
VERDICTS = {
    "week-new": None,
    "week-2d": "warning",
    "week-20h": "critical",
    "week-expired": "critical",
    "day-new": None,
    "day-warn-edge": "warning",
    "day-past-warn": None,
    "day-crit-edge": "critical",
    "day-past-crit": "warning",
    "odd-warn": "warning",
    "odd-past-warn": None,
    "90d-warn-edge": "warning",
    "90d-crit-edge": "critical",
    "60d-19d": "warning",
    "60d-21d": None,
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def fleet(
    make_ca: Callable[..., CertificateAuthority], store_url: str | None
) -> Iterator[tuple[CertificateAuthority, dt.datetime]]:
    now = utcnow().replace(microsecond=500_000)
    ca = make_ca(now=now - 100 * DAY, store_url=store_url)
    made = now - 90 * DAY

    def leaf(name: str, not_after: dt.datetime, **values: Any) -> int:
        serial = ca.issue([name], days=365, now=made).serial
        _set(ca, serial, not_after=not_after, **values)
        return serial

    for label, at in {
        "warn-edge": now + WARN,
        "past-warn": now + WARN + US,
        "crit-edge": now + CRIT,
        "past-crit": now + CRIT + US,
        "expires-now": now,
        "just-live": now + US,
        "recent-edge": now - 30 * DAY,
        "too-old": now - 30 * DAY - US,
        "yesterday": now - DAY + US,
        "later": now + 200 * DAY,
    }.items():
        leaf(f"{label}.corp.internal", at)
    for label, (lifetime, left) in SHORT_LIVED.items():
        leaf(f"{label}.corp.internal", now + left, not_before=now + left - lifetime)
    for i in range(4):  # equal notAfter times: ordered by serial
        leaf(f"tie{i}.corp.internal", now + 3 * DAY)
    revoked = leaf("revoked.corp.internal", now + 2 * DAY)
    ca.revoke(serial_hex(revoked), "keyCompromise", now=now)
    leaf("due.corp.internal", now + 4 * DAY, revoke_after=now - US)
    leaf("not-yet-due.corp.internal", now + 4 * DAY, revoke_after=now + US)
    old = leaf("renewed.corp.internal", now + 5 * DAY)
    new = ca.renew(serial_hex(old), days=300, now=now - DAY).serial
    _set(ca, new, not_after=now + 6 * DAY, not_before=made)  # long-lived: critical
    leaf("gone.corp.internal", now - 3 * DAY, superseded_by=serial_hex(new))
    leaf("tidied.corp.internal", now - 2 * DAY, names="[]", tidied_at=now)
    leaf("server.corp.internal", now + 2 * DAY, profile="privca-server")
    leaf("ocsp.corp.internal", now + 2 * DAY, profile="ocsp-responder")
    for i, name in enumerate(HOSTILE):
        leaf(f"hostile{i}.corp.internal", now + (i + 1) * DAY, names=json.dumps([name]))
    leaf("nameless.corp.internal", now + 8 * DAY, names="[]", subject='CN=sub "ject"\n')
    ca.rotate_issuing(now=now - 50 * DAY)
    leaf("rotated.corp.internal", now + 9 * DAY)
    ca.create_issuer(NewIssuer("team-a", permitted=["a.corp.internal"]), now=now - 50 * DAY)
    serial = ca.issue(["t.a.corp.internal"], issuer="team-a", days=365, now=made).serial
    _set(ca, serial, not_after=now + 10 * DAY)
    yield ca, now


def test_check_outputs_equal_the_record_path(
    fleet: tuple[CertificateAuthority, dt.datetime],
) -> None:
    ca, now = fleet
    for warn, crit in ((WARN, CRIT), (WARN, WARN), (DAY, dt.timedelta(0)), (400 * DAY, 3 * DAY)):
        old = reference.collect(ca, now, warn, crit)
        new = monitoring.collect(ca, now, warn, crit)
        assert monitoring.render_text(new) == reference.render_text(old)
        assert monitoring.render_json(new, now) == reference.render_json(old, now)
        expected = reference.render_nagios(old, warn, crit)
        assert monitoring.render_nagios(new, warn, crit) == expected
        summary = monitoring.summarize(ca, now, warn, crit)
        assert monitoring.render_nagios(summary, warn, crit) == expected
        assert summary == new.summary()
    items = monitoring.collect(ca, now, WARN, CRIT).items
    verdicts = {i.label.split(".")[0]: i.severity for i in items if i.kind == "certificate"}
    assert {label: verdicts.get(label) for label in SHORT_LIVED} == VERDICTS
    listed = {i.label for i in items}
    assert [i.label for i in items].count("renewed.corp.internal") == 1  # the renewal
    assert {"warn-edge.corp.internal", "recent-edge.corp.internal"} <= listed
    assert "expires-now.corp.internal" in listed and HOSTILE[0] in listed
    assert not listed & {"past-warn.corp.internal", "too-old.corp.internal"}
    assert not listed & {"revoked.corp.internal", "due.corp.internal"}
    assert not listed & {"gone.corp.internal", "server.corp.internal", ""}


def _without_expiring(text: str) -> str:
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not line.startswith(("privca_certificates_expiring{", "# HELP privca_certificates_exp"))
        and not line.startswith("# TYPE privca_certificates_expiring ")
    )


def _series(text: str) -> list[str]:
    name = "privca_certificate_not_after_timestamp_seconds{"
    return [line for line in text.splitlines() if line.startswith(name)]


def _others(text: str) -> list[str]:
    """Every line but the per-certificate series and their HELP."""
    return [
        line
        for line in text.splitlines()
        if not line.startswith(("privca_certificate_not_after", "# HELP privca_certificate_not"))
    ]


def test_prometheus_equals_the_record_path(
    fleet: tuple[CertificateAuthority, dt.datetime],
) -> None:
    ca, now = fleet
    for window in (WARN, DAY, 400 * DAY, None):
        old = reference.render_prometheus(ca, now, window)
        new = monitoring.render_prometheus(ca, now, window)
        assert _without_expiring(new) == old
        assert "\x1b" not in new and "\u202e" not in new
        # With a limit: the same series, the soonest first, cut.
        limited = monitoring.render_prometheus(ca, now, window, limit=3)
        assert _series(limited) == _series(old)[:3]
        assert _others(limited) == _others(new)
        assert "each live certificate" in limited and ", the 3 soonest (Unix time)" in limited
    names = {line.split('name="', 1)[1].split('",issuer=')[0] for line in _series(new)}
    assert 'quote\\"back\\\\\\\\slash\\\\x0anewline.example' in names
    assert "\\\\x1b]52;c;ZXZpbA==\\\\x07osc.example" in names
    assert "x" * 254 + "…" in names and "\U0001f600.emoji.example" in names


def test_expiring_counts_the_listed_series(
    fleet: tuple[CertificateAuthority, dt.datetime],
) -> None:
    """privca_certificates_expiring{within=W} counts what the record path lists as live
    within W (to the microsecond)."""
    ca, now = fleet
    text = monitoring.render_prometheus(ca, now, WARN, limit=0)
    assert _series(text) == []
    live = [
        record.not_after
        for record in ca.inventory.find(
            status=CertificateStatus.VALID, expiring_before=now + 400 * DAY, now=now
        )
        if record.profile not in SELF_RENEWING_PROFILES
    ]
    for span in ("1d", "7d", "30d"):
        counted = sum(
            int(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("privca_certificates_expiring{") and f'within="{span}"' in line
        )
        until = now + int(span[:-1]) * DAY
        assert counted == sum(1 for at in live if at <= until), span
    withins = {
        line.split('within="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("privca_certificates_expiring{")
    }
    assert withins == {"1d", "7d", "30d"}
    twelve = monitoring.render_prometheus(ca, now, dt.timedelta(hours=12), limit=0)
    assert 'within="12h"' in twelve and 'within="1d"' not in twelve


@pytest.mark.parametrize("store_url", [None], ids=["sqlite"])  # PostgreSQL plans by statistics
def test_every_query_on_certificates_uses_an_index(
    fleet: tuple[CertificateAuthority, dt.datetime], store_url: str | None
) -> None:
    """What check and /metrics ask the certificates table: a search of an index, never a
    walk of the rows (SQLite's plan, which is what EXPLAIN QUERY PLAN shows)."""
    ca, now = fleet

    def check_and_metrics() -> None:
        monitoring.summarize(ca, now, WARN, CRIT)
        monitoring.collect(ca, now, WARN, CRIT)
        monitoring.render_prometheus(ca, now, WARN, limit=10)

    assert_certificate_queries_use_an_index(ca, check_and_metrics, 6)
