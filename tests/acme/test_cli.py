"""privca acme: EAB keys shown once, accounts and orders listed, all with --json."""

from __future__ import annotations

import json

from privca.authority import CertificateAuthority
from tests.conftest import Cli


def test_eab_create_list_revoke(ca: CertificateAuthority, passphrase_file) -> None:
    cli = Cli(ca.home.root, passphrase_file)
    result = cli("acme", "eab", "create", "--label", "web", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["kid"] and len(created["hmac_key"]) >= 43

    listed = cli("acme", "eab", "list", "--json")
    assert listed.exit_code == 0
    assert created["hmac_key"] not in listed.output
    [key] = json.loads(listed.output)
    assert key["kid"] == created["kid"] and key["label"] == "web"

    assert cli("acme", "eab", "revoke", created["kid"]).exit_code == 0
    [key] = json.loads(cli("acme", "eab", "list", "--json").output)
    assert key["revoked_at"]
    assert cli("acme", "eab", "revoke", "nope").exit_code == 2


def test_accounts_and_orders_listing(ca: CertificateAuthority, passphrase_file) -> None:
    cli = Cli(ca.home.root, passphrase_file)
    assert json.loads(cli("acme", "accounts", "list", "--json").output) == []
    assert json.loads(cli("acme", "orders", "list", "--json").output) == []
    assert cli("acme", "accounts", "deactivate", "missing").exit_code == 2
