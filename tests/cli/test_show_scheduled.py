"""`show --json` of a certificate whose scheduled revocation is due: revoked, with the
date and reason its CRL and OCSP give (it said revoked with no date and no reason until
something wrote the revocation down)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Cli


def test_a_due_scheduled_revocation_shows_its_date_and_reason(run_cli: Cli, tmp_path: Path) -> None:
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Show Test", "--passphrase-file", secret).exit_code == 0
    out = str(tmp_path / "out")
    issued = run_cli("issue", "s.corp.internal", "--out", out, "--passphrase-file", secret,
                     "--json")  # fmt: skip
    assert issued.exit_code == 0, issued.stderr
    old = json.loads(issued.stdout)["serial"]
    renewed = run_cli("renew", "s.corp.internal", "--out", out, "--revoke-old-after", "1s",
                      "--passphrase-file", secret)  # fmt: skip
    assert renewed.exit_code == 0, renewed.stderr
    time.sleep(1.5)
    shown = json.loads(run_cli("show", old, "--json").stdout)
    assert shown["status"] == "revoked"
    assert shown["revocation_reason"] == "superseded"
    assert shown["revoked_at"] is not None
