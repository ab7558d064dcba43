"""Entries beyond the inventory's own: settings edited by hand, trust changes on this host,
and automatic checkpoints every [audit] checkpoint_every entries."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.conftest import Cli


def _log(run_cli: Cli, *args: str) -> list[dict]:
    result = run_cli("audit", "log", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_hand_edited_settings_file_is_noticed(run_cli: Cli, audited_home: Path) -> None:
    settings = audited_home / "privca.toml"
    before = hashlib.sha256(settings.read_bytes()).hexdigest()
    with settings.open("a") as handle:
        handle.write("\n[audit]\ncheckpoint_every = 3\n")
    after = hashlib.sha256(settings.read_bytes()).hexdigest()
    changed = [e for e in _log(run_cli) if e["action"] == "settings-changed"]
    assert changed[-1]["detail"] == {"sha256": after, "previous": before}
    assert len([e for e in _log(run_cli) if e["action"] == "settings-changed"]) == len(changed)


def test_checkpoints_come_by_themselves(run_cli: Cli, audited_home: Path) -> None:
    with (audited_home / "privca.toml").open("a") as handle:
        handle.write("\n[audit]\ncheckpoint_every = 3\n")
    published = audited_home / "certs" / "audit-checkpoint.json"
    first = json.loads(json.loads(published.read_text())["statement"])["entries"]
    out = str(audited_home.parent / "more")
    for name in ("four", "five", "six"):
        result = run_cli("issue", f"{name}.corp.internal", "--out", out,
                         "--passphrase-file", str(run_cli.passphrase_file))  # fmt: skip
        assert result.exit_code == 0, result.stderr
    latest = json.loads(json.loads(published.read_text())["statement"])["entries"]
    assert latest > first
    verdict = json.loads(run_cli("audit", "verify", "--json").stdout)
    assert verdict["intact"] and verdict["checkpoints"] >= 2


def test_trust_install_on_this_host_is_logged(
    run_cli: Cli, audited_home: Path, tmp_path: Path
) -> None:
    store = ["--stores", "java", "--java-truststore", str(tmp_path / "truststore.p12")]
    assert run_cli("trust", "install", *store).exit_code == 0
    assert run_cli("trust", "uninstall", *store).exit_code == 0
    root = audited_home / "certs" / "root.crt"
    fingerprint = x509.load_pem_x509_certificate(root.read_bytes()).fingerprint(hashes.SHA256())
    entries = [e for e in _log(run_cli) if e["action"].startswith("trust-")]
    assert [e["action"] for e in entries] == ["trust-installed", "trust-uninstalled"]
    assert entries[0]["detail"]["roots"] == [fingerprint.hex()]
    assert entries[0]["detail"]["outcomes"][0]["store"] == "java"
