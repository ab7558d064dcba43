"""`privca audit checkpoint --out FILE` says where the copy went: docs/audit.md has the
reader keep that copy where operators cannot write, and the output named only the home's
published file, as if --out had been ignored."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def test_checkpoint_out_names_the_copy(run_cli: Cli, audited_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "kept" / "checkpoint-kept.json"
    result = run_cli(
        "audit", "checkpoint", "--out", str(out), "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.stderr
    assert f"copy:      {out}" in result.stderr, result.stderr
    assert json.loads(out.read_text())["statement"]
    # Without --out there is no copy to name.
    again = run_cli("audit", "checkpoint", "--passphrase-file", str(run_cli.passphrase_file))
    assert again.exit_code == 0 and "copy:" not in again.stderr, again.stderr
