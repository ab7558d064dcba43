"""Durations are bounded (100 years) where they are read, so no command can carry a date
past the year 9999: `renew --revoke-old-after 999999999d` committed the renewal and then
crashed (exit 70, the new key lost), check/list exited 70, and serve started with a
metrics window that made every /metrics a 500."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.errors import InputError
from privca.settings import MAX_DURATION, parse_duration
from tests.conftest import Cli, assert_user_error

NAME = "db.corp.internal"
HUGE = "999999999d"


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


def test_the_maximum_is_accepted_and_one_more_second_is_not() -> None:
    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION
    with pytest.raises(InputError, match="too long"):
        parse_duration(f"{int(MAX_DURATION.total_seconds()) + 1}s")


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--warn", HUGE, "--crit", "1d"),
        ("check", "--warn", HUGE, "--crit", "1d", "--format", "nagios"),
        ("check", "--warn", HUGE, "--crit", "1d", "--format", "prometheus"),
        ("check", "--warn", "30d", "--crit", HUGE, "--json"),
        ("list", "--expiring", HUGE),
        ("list", "--expiring", HUGE, "--json"),
        ("tidy", "--expired-for", HUGE),
        ("needs-renewal", "--within", HUGE, "{crt}"),
    ],
    ids=[
        "check", "check-nagios", "check-prometheus", "check-json-crit", "list", "list-json",
        "tidy", "needs-renewal",
    ],
)  # fmt: skip
def test_commands_refuse_a_duration_past_the_maximum(
    home_cli: Cli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    issued = home_cli("issue", NAME, "--out", str(out), *_pass(home_cli))
    assert issued.exit_code == 0, issued.stderr
    crt = str(out / f"{NAME}.crt")
    result = home_cli(*(a.replace("{crt}", crt) for a in args))
    if "nagios" in args:  # the plugin contract: one UNKNOWN line, exit 3
        assert result.exit_code == 3, (result.stdout, result.stderr)
        assert result.stdout.startswith("PRIVCA UNKNOWN - ") and "too long" in result.stdout
        return
    assert_user_error(result, "too long")
    assert "100 years" in result.stderr
    assert result.stdout == ""  # refused before any header or report


def test_renew_refuses_a_grace_past_the_maximum_before_anything_is_recorded(
    home_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    issued = home_cli("issue", NAME, "--out", str(out), *_pass(home_cli))
    assert issued.exit_code == 0, issued.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    result = home_cli(
        "renew", NAME, "--revoke-old-after", HUGE, "--out", str(out), *_pass(home_cli)
    )
    assert_user_error(result, "too long")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    listed = home_cli("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert listed.output.count('"serial"') == 1 and '"valid"' in listed.output


def test_the_authority_works_out_the_revocation_time_before_it_renews(
    ca: CertificateAuthority,
) -> None:
    """A caller of the library (not the CLI) with a grace past the year 9999: refused
    before the successor is signed or the old one marked superseded."""
    old = ca.issue([NAME])
    with pytest.raises(InputError, match="9999"):
        ca.renew(NAME, revoke_old_after=dt.timedelta(days=999_999_999))
    record = ca.lookup(NAME)
    assert record.serial == old.serial
    assert record.status_at(utcnow()) == "valid"


def test_serve_refuses_a_metrics_window_past_the_maximum_at_start(run_cli: Cli) -> None:
    """Run as a process: before the fix serve started (and the timeout fails the test)."""
    init = run_cli("init", "--name", "T", "--no-passphrase")
    assert init.exit_code == 0, init.stderr
    env = {**os.environ, "PRIVCA_HOME": str(run_cli.home)}
    with socket.socket() as probe:  # a free high port; nothing may answer on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "privca",
            "serve",
            "--no-tls",
            "--listen",
            listen,
            "--metrics-window",
            HUGE,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("privca: error: duration '999999999d' is too long")


def test_keep_expired_past_the_maximum_is_refused_in_privca_toml(run_cli: Cli) -> None:
    init = run_cli("init", "--name", "T", "--no-passphrase")
    assert init.exit_code == 0, init.stderr
    toml = run_cli.home / "privca.toml"
    text = toml.read_text().replace("[store]\n", f'[store]\nkeep_expired = "{HUGE}"\n', 1)
    toml.write_text(text)
    assert_user_error(run_cli("list"), "keep_expired")
