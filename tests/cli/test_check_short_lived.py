"""`privca check` on short-lived certificates: its windows shrink to a third (warning) and a
sixth (critical) of each certificate's lifetime, so a fleet of 7-day or 24-hour
certificates renewed at a third of their life left is OK, not CRITICAL forever; from 90
days up, --warn and --crit alone decide, as before. Every format says the same.

Certificates with a chosen notBefore and notAfter are signed by the CA's issuing key and
imported (`import certificates`), so time needs no faking; the rest is the real CLI on a
real SQLite store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.cli.test_check_nagios import signed_by_the_ca
from tests.conftest import Cli

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)

# name: (lifetime, time left) and the verdict with the defaults (--warn 30d --crit 7d)
FLEET = {
    "week-2d.corp.internal": (7 * DAY, 2 * DAY),  # under 7d / 3 = 2d8h left
    "week-20h.corp.internal": (7 * DAY, 20 * HOUR),  # under 7d / 6 = 1d4h left
    "quarter-20d.corp.internal": (90 * DAY, 20 * DAY),  # as before: within --warn
    "long-5d.corp.internal": (730 * DAY, 5 * DAY),  # as before: within --crit
    "long-60d.corp.internal": (730 * DAY, 60 * DAY),  # beyond --warn
}
VERDICTS = {
    "week-2d.corp.internal": "warning",
    "week-20h.corp.internal": "critical",
    "quarter-20d.corp.internal": "warning",
    "long-5d.corp.internal": "critical",
}


def _import(cli: Cli, tmp_path: Path, fleet: dict[str, tuple[dt.timedelta, dt.timedelta]]) -> None:
    for name, (lifetime, left) in fleet.items():
        leaf = signed_by_the_ca(cli, tmp_path / f"{name}.crt", name, left, lifetime)
        result = cli("import", "certificates", str(leaf))
        assert result.exit_code == 0, result.output + result.stderr


def _json(cli: Cli) -> dict[str, object]:
    result = cli("check", "--format", "json")
    document: dict[str, object] = json.loads(result.stdout)
    assert result.exit_code == (0 if document["status"] == "ok" else 1), result.output
    return document


def test_a_7_day_certificate_just_issued_is_ok(home_cli: Cli, tmp_path: Path) -> None:
    """It has less than --crit (7d) left from the moment it is issued: check said
    CRITICAL for it all its life, while `needs-renewal` said it was not due."""
    out = tmp_path / "out"
    passphrase = str(home_cli.passphrase_file)
    issued = home_cli(
        "issue",
        "web.corp.internal",
        "--days",
        "7",
        "--out",
        str(out),
        "--passphrase-file",
        passphrase,
    )
    assert issued.exit_code == 0, issued.output + issued.stderr
    due = home_cli("needs-renewal", str(out / "web.corp.internal.crt"))
    assert due.exit_code == 1, due.output  # not yet

    text = home_cli("check")
    assert text.exit_code == 0, text.output
    assert "0 need attention" in text.stdout
    document = _json(home_cli)
    assert document["status"] == "ok"
    assert document["certificates"] == {"total": 1, "ok": 1, "warning": 0, "critical": 0}
    assert not [i for i in document["items"] if i["kind"] == "certificate"]  # type: ignore[attr-defined]
    nagios = home_cli("check", "--format", "nagios")
    assert nagios.exit_code == 0, nagios.output
    assert nagios.stdout.startswith("PRIVCA OK - 1 certificates, 0 critical, 0 warning |")
    # The textfile is data, not a verdict: the certificate's expiry, as within --warn.
    prometheus = home_cli("check", "--format", "prometheus")
    assert prometheus.exit_code == 0, prometheus.output
    assert 'name="web.corp.internal"' in prometheus.stdout


def test_every_format_scales_the_windows_to_the_lifetime(home_cli: Cli, tmp_path: Path) -> None:
    _import(home_cli, tmp_path, FLEET)

    document = _json(home_cli)
    listed = {
        i["label"]: i["severity"]
        for i in document["items"]  # type: ignore[attr-defined]
        if i["kind"] == "certificate"
    }
    assert listed == VERDICTS
    assert document["status"] == "critical"
    assert document["certificates"] == {"total": 5, "ok": 1, "warning": 2, "critical": 2}

    text = home_cli("check")
    assert text.exit_code == 1, text.output
    flagged = [line.split()[:3] for line in text.stdout.splitlines()[1:]]
    certificates = [(kind, name) for severity, kind, name in flagged if kind == "certificate"]
    assert [severity.lower() for severity, kind, _ in flagged if kind == "certificate"] == [
        VERDICTS[name] for _, name in certificates
    ]
    assert {name for _, name in certificates} == set(VERDICTS)

    nagios = home_cli("check", "--format", "nagios")
    assert nagios.exit_code == 2, nagios.output
    assert nagios.stdout.startswith(
        "PRIVCA CRITICAL - 5 certificates, 2 critical, 2 warning; first: week-20h.corp.internal"
    ), nagios.stdout
    assert "certificates=5;;;0 warning=2;;;0 critical=2;;;0" in nagios.stdout

    prometheus = home_cli("check", "--format", "prometheus")
    assert prometheus.exit_code == 0, prometheus.output
    for name in VERDICTS:
        assert f'name="{name}"' in prometheus.stdout
    assert 'name="long-60d.corp.internal"' not in prometheus.stdout


def test_nagios_names_the_critical_one_before_a_sooner_warning(
    home_cli: Cli, tmp_path: Path
) -> None:
    """The soonest certificate is no longer the worst: a 7-day one with 2 days left is a
    warning, a 730-day one with 5 days left is critical, and the line names that one."""
    fleet = {name: FLEET[name] for name in ("week-2d.corp.internal", "long-5d.corp.internal")}
    _import(home_cli, tmp_path, fleet)

    nagios = home_cli("check", "--format", "nagios")
    assert nagios.exit_code == 2, nagios.output
    assert nagios.stdout.startswith(
        "PRIVCA CRITICAL - 2 certificates, 1 critical, 1 warning; first: long-5d.corp.internal"
    ), nagios.stdout
    text = home_cli("check")
    assert text.stdout.splitlines()[1].split()[:3] == [
        "CRITICAL",
        "certificate",
        "long-5d.corp.internal",
    ], text.stdout
