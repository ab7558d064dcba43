"""doctor and check agree on which certificates are expiring: a certificate already
renewed (superseded) is not, as check has always said; doctor listed it as critical."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def _run(cli: Cli, *args: str) -> str:
    result = cli(*args, "--passphrase-file", str(cli.passphrase_file))
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_a_renewed_certificate_is_not_expiring_for_doctor(home_cli: Cli, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    _run(home_cli, "issue", "s1.corp.internal", "--days", "5", "--out", out)
    _run(home_cli, "renew", "s1.corp.internal", "--days", "5", "--out", out)

    checked = home_cli("check", "--format", "json")
    expiring = {
        i["serial"] for i in json.loads(checked.stdout)["items"] if i["kind"] == "certificate"
    }
    assert len(expiring) == 1, checked.stdout
    (new_serial,) = expiring

    doctor = home_cli("doctor", "--json")
    found = [f for f in json.loads(doctor.stdout) if f["code"] == "leaf-expiring"]
    assert len(found) == 1, found
    assert found[0]["message"].startswith("1 valid certificate(s) expire within 7 days"), found
    assert new_serial in found[0]["message"]
