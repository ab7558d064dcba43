"""The README advises taking the root key offline once the issuing CA and the root's CRL
are signed; doctor called that critical ("does not exist") and exited 1. A missing
issuing key is still critical: nothing can be signed without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import Cli


def _findings(cli: Cli) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli("doctor", "--json")
    return result.exit_code, {f["code"]: f for f in json.loads(result.stdout)}


def test_a_root_key_taken_offline_is_news_not_a_fault(home_cli: Cli, tmp_path: Path) -> None:
    private = home_cli.home / "private"
    shutil.move(private / "root.key", tmp_path / "root.key")  # to the safe
    code, found = _findings(home_cli)
    assert code == 0, found
    assert found["root-key-offline"]["severity"] == "info"
    assert "ca-key-file" not in found
    issued = home_cli("issue", "a.corp.internal", "--out", str(tmp_path / "out"),
                      "--passphrase-file", str(home_cli.passphrase_file))  # fmt: skip
    assert issued.exit_code == 0, issued.stderr

    shutil.move(private / "issuing.key", tmp_path / "issuing.key")
    code, found = _findings(home_cli)
    assert code == 1
    assert found["ca-key-file"]["severity"] == "critical"
    assert "issuing.key" in found["ca-key-file"]["message"]
