"""A root that signs leaves (`init --single-tier`) keeps its leaves' CRL period under
`privca crl --root`: the README's `privca crl --root` line gave a single-tier CA's one CRL
a nextUpdate 180 days out, so clients that cache a CRL until then missed every revocation
of a leaf for months. A root that signs only CAs keeps root_crl_days (read back with
`openssl crl`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import Cli, openssl


def _days_to_next_update(crl: Path) -> float:
    result = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-lastupdate",
                     "-nextupdate", "-dateopt", "iso_8601")  # fmt: skip
    assert result.returncode == 0, result.stderr
    dates = dict(line.split("=", 1) for line in result.stdout.splitlines())
    last, next_ = (dt.datetime.fromisoformat(dates[k]) for k in ("lastUpdate", "nextUpdate"))
    return (next_ - last).total_seconds() / 86400


@pytest.mark.parametrize(("tier", "days"), [(["--single-tier"], 7), ([], 180)])
def test_crl_root_keeps_the_period_of_what_the_root_signs(
    run_cli: Cli, tier: list[str], days: int
) -> None:
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    made = run_cli("init", "--name", "Period CA", "--permit", "corp.internal", *tier, *secret)
    assert made.exit_code == 0, made.stderr
    issued = run_cli("issue", "a.corp.internal", "--out", str(run_cli.home.parent / "o"), *secret)
    assert issued.exit_code == 0, issued.stderr
    result = run_cli("crl", "--root", *secret)
    assert result.exit_code == 0, result.stderr
    assert _days_to_next_update(run_cli.home / "crl" / "root.crl") == pytest.approx(days)
