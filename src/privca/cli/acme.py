"""privca acme: EAB keys, ACME accounts and orders of this CA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from privca.cli.options import LEAF_PROFILE_NAMES, MAX_COUNT, json_option
from privca.cli.render import print_json, print_table

if TYPE_CHECKING:
    from privca.cli.main import AppContext
    from privca.store.acme import AcmeStore


def _acme_store(ca: Any) -> AcmeStore:
    store: AcmeStore = ca.acme_repository()
    return store


def _time(value: Any) -> str | None:
    from privca._time import isoformat

    return isoformat(value) if value is not None else None


@click.group("acme")
def acme_group() -> None:
    """Manage ACME accounts, orders and EAB keys."""


@acme_group.group("eab")
def eab_group() -> None:
    """External account binding keys (give one to each ACME client you admit)."""


MAX_LABEL_LENGTH = 200


def _check_label(label: str) -> None:
    """A label is shown in every listing of the keys: printable, and a line's worth."""
    from privca._text import shows_as_itself
    from privca.errors import InputError

    if len(label) > MAX_LABEL_LENGTH or not shows_as_itself(label):
        raise InputError(
            f"--label must be at most {MAX_LABEL_LENGTH} printable characters (no control, "
            "bidirectional or invisible ones)",
            "describe what the key is for, e.g. --label 'k8s cluster prod'",
        )


@eab_group.command("create")
@click.option("--label", default="", help="What the key is for (shown in listings).")
@click.option(
    "--profile",
    type=click.Choice(LEAF_PROFILE_NAMES),
    default=None,
    help="The only ACME profile the key's accounts may order (default: any offered).",
)
@click.option(
    "--issuer",
    default=None,
    metavar="NAME",
    help="The only issuer the key's accounts may order from (/acme/NAME/...; default: any).",
)
@click.option(
    "--max-accounts",
    type=click.IntRange(min=1, max=MAX_COUNT),
    default=1,
    show_default=True,
    help="How many ACME accounts the key may create.",
)
@json_option
@click.pass_obj
def eab_create(
    app: AppContext,
    label: str,
    profile: str | None,
    issuer: str | None,
    max_accounts: int,
    as_json: bool,
) -> None:
    """Create a key id and HMAC key. The HMAC key is printed now and never again; the
    inventory keeps it sealed under private/eab.key."""
    import base64
    import secrets

    from privca._time import utcnow
    from privca.acme.repository import EabKeyRow
    from privca.cli.options import open_authority

    _check_label(label)
    kid = "kid-" + secrets.token_urlsafe(12)
    secret = secrets.token_bytes(32)
    hmac_key = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    with open_authority(app) as ca:
        if issuer is not None:
            issuer = ca.registry.issuer(issuer).name  # NotFound for an unknown name
        _acme_store(ca).add_eab_key(
            EabKeyRow(
                kid=kid,
                label=label,
                profile=profile,
                created_at=utcnow(),
                revoked_at=None,
                accounts=0,
                max_accounts=max_accounts,
                issuer=issuer,
            ),
            secret,
        )
    if as_json:
        print_json(
            {
                "kid": kid,
                "hmac_key": hmac_key,
                "label": label,
                "profile": profile,
                "issuer": issuer,
                "max_accounts": max_accounts,
            }
        )
        return
    click.echo(f"key id:   {kid}")
    click.echo(f"HMAC key: {hmac_key}")
    click.echo(
        f"It may create {max_accounts} account(s)"
        + (f", which may order profile '{profile}' only" if profile else "")
        + (f", from issuer {issuer} only (/acme/{issuer}/directory)." if issuer else ".")
    )
    click.echo("The HMAC key is shown only now; give both to the ACME client (e.g. certbot")
    click.echo("--eab-kid/--eab-hmac-key, lego --eab --kid/--hmac).")


@eab_group.command("list")
@json_option
@click.pass_obj
def eab_list(app: AppContext, as_json: bool) -> None:
    """List EAB keys and the accounts each created (never their HMAC keys)."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        store = _acme_store(ca)
        keys = store.eab_keys()
        accounts = store.accounts_of_eab_keys()
    documents = [
        {
            "kid": k.kid,
            "label": k.label,
            "profile": k.profile,
            "issuer": k.issuer,
            "created_at": _time(k.created_at),
            "revoked_at": _time(k.revoked_at),
            "accounts": k.accounts,
            "max_accounts": k.max_accounts,
            "account_ids": [{"id": a.id, "status": a.status} for a in accounts.get(k.kid, [])],
        }
        for k in keys
    ]
    if as_json:
        print_json(documents)
        return
    print_table(
        f"{len(keys)} EAB key(s)",
        ["key id", "label", "profile", "issuer", "created", "revoked", "accounts", "account ids"],
        [
            [
                k.kid,
                k.label,
                k.profile or "any",
                k.issuer or "any",
                _time(k.created_at) or "",
                _time(k.revoked_at) or "",
                f"{k.accounts}/{k.max_accounts}",
                ", ".join(f"{a.id} ({a.status})" for a in accounts.get(k.kid, [])),
            ]
            for k in keys
        ],
    )


@eab_group.command("revoke")
@click.argument("kid")
@json_option
@click.pass_obj
def eab_revoke(app: AppContext, kid: str, as_json: bool) -> None:
    """Revoke an EAB key: no new account can bind with it, and the accounts it created
    are revoked too (their requests are refused as unauthorized)."""
    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.errors import NotFound

    with open_authority(app) as ca:
        store = _acme_store(ca)
        if store.eab_key(kid) is None:
            raise NotFound(f"no EAB key with id '{kid}'", "see `privca acme eab list`")
        changed, accounts = store.revoke_eab_key(kid, utcnow())
    if as_json:
        print_json({"kid": kid, "revoked": True, "changed": changed, "accounts_revoked": accounts})
    else:
        click.echo(
            f"EAB key {kid} "
            + ("revoked" if changed else "was already revoked")
            + (f"; {accounts} account(s) it created revoked" if accounts else "")
        )


@acme_group.group("accounts")
def accounts_group() -> None:
    """ACME accounts."""


def _account_document(account: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "status": account.status,
        "contact": list(account.contact),
        "eab_kid": account.eab_kid,
        "thumbprint": account.thumbprint,
        "created_at": _time(account.created_at),
    }


@accounts_group.command("list")
@json_option
@click.pass_obj
def accounts_list(app: AppContext, as_json: bool) -> None:
    """List ACME accounts."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        documents = [_account_document(a) for a in _acme_store(ca).accounts()]
    if as_json:
        print_json(documents)
        return
    print_table(
        f"{len(documents)} account(s)",
        ["id", "status", "contact", "EAB key", "created"],
        [
            [d["id"], d["status"], ", ".join(d["contact"]), d["eab_kid"] or "", d["created_at"]]
            for d in documents
        ],
    )


@accounts_group.command("deactivate")
@click.argument("account_id")
@json_option
@click.pass_obj
def accounts_deactivate(app: AppContext, account_id: str, as_json: bool) -> None:
    """Deactivate an account: it can no longer order, finalize or revoke."""
    from privca.acme.state import account_deactivated
    from privca.cli.options import open_authority
    from privca.errors import NotFound

    with open_authority(app) as ca:
        store = _acme_store(ca)
        if store.account(account_id) is None:
            raise NotFound(f"no ACME account '{account_id}'", "see `privca acme accounts list`")
        account = store.update_account(account_id, transition=account_deactivated())
    if as_json:
        print_json(_account_document(account))
    else:
        click.echo(f"account {account_id} deactivated")


@acme_group.group("orders")
def orders_group() -> None:
    """ACME orders."""


@orders_group.command("list")
@click.option("--account", "account_id", default=None, help="Only this account's orders.")
@json_option
@click.pass_obj
def orders_list(app: AppContext, account_id: str | None, as_json: bool) -> None:
    """List ACME orders, newest first."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        orders = _acme_store(ca).orders(account_id)
    documents = [
        {
            "id": o.id,
            "account": o.account_id,
            "status": o.status,
            "profile": o.profile,
            "identifiers": [v for _t, v in o.identifiers],
            "serial": o.certificate_serial,
            "created_at": _time(o.created_at),
        }
        for o in orders
    ]
    if as_json:
        print_json(documents)
        return
    print_table(
        f"{len(documents)} order(s)",
        ["id", "account", "status", "profile", "identifiers", "serial", "created"],
        [
            [
                o.id,
                o.account_id,
                o.status,
                o.profile,
                ", ".join(v for _t, v in o.identifiers),
                o.certificate_serial or "",
                _time(o.created_at) or "",
            ]
            for o in orders
        ],
    )
