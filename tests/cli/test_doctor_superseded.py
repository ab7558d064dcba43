"""doctor and check agree on which certificates are expiring: a certificate already
renewed (superseded) is not, as check has always said; doctor listed it as critical."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_check_nagios import signed_by_the_ca
from tests.conftest import Cli


def _run(cli: Cli, *args: str) -> str:
    result = cli(*args, "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_a_renewed_certificate_is_not_expiring_for_doctor(home_cli: Cli, tmp_path: Path) -> None:
    """An expiring certificate (2 days left of 32) is critical for both; renewed, neither
    names it (its successor, just issued, is not expiring)."""
    leaf = signed_by_the_ca(home_cli, tmp_path / "s1.crt", "s1.corp.internal")
    imported = home_cli("import", "certificates", str(leaf))
    assert imported.exit_code == 0, imported.output + imported.stderr
    assert _expiring(home_cli) == ({"s1.corp.internal"}, 1)

    out = str(tmp_path / "out")
    _run(home_cli, "renew", "s1.corp.internal", "--days", "5", "--out", out)
    assert _expiring(home_cli) == (set(), 0)


def _expiring(cli: Cli) -> tuple[set[str], int]:
    """What check lists as expiring, and how many doctor finds expiring."""
    checked = cli("check", "--format", "json")
    listed = {i["label"] for i in json.loads(checked.stdout)["items"] if i["kind"] == "certificate"}
    doctor = cli("doctor", "--json")
    found = [f for f in json.loads(doctor.stdout) if f["code"] == "leaf-expiring"]
    counted = sum(int(f["message"].split()[0]) for f in found)
    return listed, counted
