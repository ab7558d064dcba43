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


def test_an_operator_deactivates_a_valid_account_and_never_revives_a_revoked_one(
    ca: CertificateAuthority, passphrase_file
) -> None:
    import dataclasses

    from privca._time import utcnow
    from privca.acme.repository import AccountRow

    repository = ca.acme_repository()
    valid = AccountRow("acct-v", "thumb-v", "{}", "valid", (), None, utcnow())
    repository.add_account(valid)
    repository.add_account(dataclasses.replace(valid, id="acct-r", thumbprint="t-r"))
    with repository.transaction() as connection:  # as `privca acme eab revoke` leaves it
        connection.exec_driver_sql("UPDATE acme_accounts SET status='revoked' WHERE id='acct-r'")
    cli = Cli(ca.home.root, passphrase_file)
    for account_id, expected in [("acct-v", "deactivated"), ("acct-v", "deactivated"),
                                 ("acct-r", "revoked")]:  # fmt: skip
        result = cli("acme", "accounts", "deactivate", account_id, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["status"] == expected
        stored = repository.account(account_id)
        assert stored is not None and stored.status == expected


def test_eab_create_refuses_a_label_no_listing_should_show(
    ca: CertificateAuthority, passphrase_file
) -> None:
    """Escapes, bells and newlines were stored and shown (escaped) in every listing, and a
    5,000-character label made every line of it: refused, and nothing is created."""
    from tests.conftest import assert_user_error

    cli = Cli(ca.home.root, passphrase_file)
    for label in ("\x1b[31mred\x07", "one\nline two", "right\u202eleft", "x" * 201):
        assert_user_error(cli("acme", "eab", "create", "--label", label), "--label must be")
    assert json.loads(cli("acme", "eab", "list", "--json").output) == []
    assert cli("acme", "eab", "create", "--label", "k8s prod \\ eu", "--json").exit_code == 0
