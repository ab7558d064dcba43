"""Backups carry the log and the audit key; a restore appends an entry saying what came
back and how old it is, and the restored log still verifies."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_restore_appends_its_entry_and_the_log_verifies(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "backup.tar.gz"
    assert run_cli("backup", "--out", str(archive)).exit_code == 0
    target = tmp_path / "restored"
    result = run_cli("restore", str(archive), "--home", str(target))
    assert result.exit_code == 0, result.stderr

    log = run_cli("audit", "log", "--json", home=target)
    entries = json.loads(log.stdout)
    restored = entries[-1]
    assert restored["action"] == "restored"
    assert restored["detail"]["age_seconds"] >= 0
    assert restored["detail"]["certificates"] == 4  # three leaves and the audit certificate
    audit_key = (audited_home / "certs" / "audit-key.ref").read_text().strip()
    assert audit_key in restored["detail"]["keys"]["included"]
    assert {"issued", "revoked", "crl-issued"} <= {e["action"] for e in entries}

    verify = run_cli("audit", "verify", home=target)
    assert verify.exit_code == 0, verify.stderr
    # The audit key came back with the CA keys: the restored CA signs checkpoints.
    kept = audited_home / "certs" / "audit-checkpoint.json"
    checkpoint = run_cli(
        "audit", "checkpoint", "--passphrase-file", str(run_cli.passphrase_file), home=target
    )
    assert checkpoint.exit_code == 0, checkpoint.stderr
    again = run_cli("audit", "verify", "--checkpoint", str(kept), home=target)
    assert again.exit_code == 0, again.stderr
