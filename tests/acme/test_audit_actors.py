"""The audit log names who acted through ACME: `acme:<account> eab:<kid>` on the account
and on the certificate lego gets; the EAB key's creation and revocation by the operator."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acme.conftest import AcmeServer
from tests.acme.test_eab import eab_create, eab_server, run_lego  # noqa: F401  (fixture)
from tests.conftest import Cli


def test_acme_actors_in_the_log(
    eab_server: AcmeServer,  # noqa: F811
    tmp_path: Path,
    passphrase_file: Path,
) -> None:
    cli = Cli(eab_server.ca.home.root, passphrase_file)
    key = eab_create(eab_server.ca, passphrase_file)
    assert run_lego(eab_server, tmp_path / "a", key, "audited.test").returncode == 0
    assert cli("acme", "eab", "revoke", key["kid"]).exit_code == 0

    entries = json.loads(cli("audit", "log", "--json").stdout)
    by_action: dict[str, list[dict]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
    [account] = by_action["acme-account-created"]
    actor = f"acme:{account['detail']['account']} eab:{key['kid']}"
    assert account["actor"] == actor
    issued = [e for e in by_action["issued"] if e["detail"].get("names") == ["audited.test"]]
    assert [e["actor"] for e in issued] == [actor]
    [created] = by_action["eab-key-created"]
    assert created["detail"]["kid"] == key["kid"]
    assert not created["actor"].startswith("acme:")
    [revoked] = by_action["eab-key-revoked"]
    assert revoked["detail"] == {"kid": key["kid"], "accounts_revoked": 1}
    assert cli("audit", "verify").exit_code == 0
