"""privca issuer: named issuing CAs under one root (create, list, show, disable, enable,
default, revoke)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca.cli.options import KEY_TYPES, LEAF_PROFILE_NAMES, json_option
from privca.cli.render import note, print_json, print_table, warn
from privca.cli.secrets import passphrase_file_option
from privca.x509.crl import CA_REASONS

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.cli.main import AppContext
    from privca.registry import CaCertificate
    from privca.store.records import IssuerRecord


@click.group("issuer")
def issuer_group() -> None:
    """Named issuing CAs under one root, each with its own constraints and profiles."""


def _document(ca: CertificateAuthority, issuer: IssuerRecord) -> dict[str, Any]:
    from privca._time import isoformat
    from privca.x509.encoding import serial_hex

    registry = ca.registry
    current = registry.active_issuing(issuer.name)
    if current is None and issuer.default:
        current = registry.issuing_of(issuer.name)  # single-tier: the root signs
    cas = [a for a in registry.authorities if a.issuer == issuer.name]
    return {
        "name": issuer.name,
        "default": issuer.default,
        "disabled": issuer.disabled,
        "permitted": list(issuer.permitted),
        "excluded": list(issuer.excluded),
        "profiles": list(issuer.profiles),
        "created_at": isoformat(issuer.created_at),
        "issuing_ca": None
        if current is None
        else {
            "subject": current.common_name,
            "serial": serial_hex(current.serial),
            "not_after": isoformat(current.not_after),
        },
        "issuing_cas": [serial_hex(a.serial) for a in cas],
        "revoked_cas": [
            {
                "serial": serial_hex(a.serial),
                "revoked_at": isoformat(a.revoked_at),
                "reason": a.revocation_reason,
            }
            for a in cas
            if a.revoked_at is not None
        ],
    }


@issuer_group.command("create")
@click.argument("name")
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES, case_sensitive=False),
    default=None,
    help="Key type of its issuing CA (default: as the current issuing CA).",
)
@click.option(
    "--days",
    type=int,
    default=1825,
    show_default=True,
    help="Validity of its issuing CA, in days (cut to the root's remaining life).",
)
@click.option(
    "--permit",
    "permitted",
    multiple=True,
    metavar="SUBTREE",
    help="A DNS domain or IP network it may sign (repeatable; inside the root's).",
)
@click.option(
    "--exclude",
    "excluded",
    multiple=True,
    metavar="SUBTREE",
    help="A DNS domain or IP network it may not sign (repeatable).",
)
@click.option(
    "--profile",
    "allowed",
    multiple=True,
    type=click.Choice(LEAF_PROFILE_NAMES),
    help="A leaf profile it may issue (repeatable; default: every one).",
)
@passphrase_file_option()
@json_option
@click.pass_obj
def create_command(
    app: AppContext,
    name: str,
    key_type: str | None,
    days: int,
    permitted: tuple[str, ...],
    excluded: tuple[str, ...],
    allowed: tuple[str, ...],
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Create issuer NAME: a new issuing CA signed by the root (its key kept like the
    root's: an encrypted file or the HSM), constrained to --permit/--exclude."""
    from privca.cli.options import open_authority
    from privca.issuers import NewIssuer, check_issuer_name
    from privca.keys.types import KeyType
    from privca.x509.names import parse_subtree

    # Refuse bad input before a passphrase is asked for.
    check_issuer_name(name)
    for text in (*permitted, *excluded):
        parse_subtree(text)
    request = NewIssuer(
        name=name,
        permitted=permitted,
        excluded=excluded,
        profiles=allowed,
        key_type=KeyType.parse(key_type) if key_type else None,
        days=days,
    )
    with open_authority(app, passphrase_file) as ca:
        ca.create_issuer(request)
        document = _document(ca, ca.registry.issuer(name))
    if as_json:
        print_json(document)
        return
    issuing = document["issuing_ca"] or {}
    click.echo(
        f"Issuer {name}: issuing CA {issuing.get('subject')} (serial {issuing.get('serial')}, "
        f"until {str(issuing.get('not_after'))[:10]})."
    )
    note(
        f"Issue from it with --issuer {name}; ACME clients use /acme/{name}/directory.",
        app.quiet,
    )


@issuer_group.command("list")
@json_option
@click.pass_obj
def list_command(app: AppContext, as_json: bool) -> None:
    """List the issuers: default, state, constraints, profiles, current issuing CA."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        documents = [_document(ca, issuer) for issuer in ca.issuers()]
    if as_json:
        print_json(documents)
        return
    rows = [
        (
            d["name"] + (" *" if d["default"] else ""),
            "disabled" if d["disabled"] else "enabled",
            ", ".join(d["permitted"]) or "(the root's)",
            ", ".join(d["excluded"]) or "-",
            ", ".join(d["profiles"]) or "all",
            d["issuing_ca"]["serial"] if d["issuing_ca"] else "-",
        )
        for d in documents
    ]
    print_table(
        "Issuers (* = default)",
        ["name", "state", "permitted", "excluded", "profiles", "issuing CA"],
        rows,
    )


@issuer_group.command("show")
@click.argument("name")
@json_option
@click.pass_obj
def show_command(app: AppContext, name: str, as_json: bool) -> None:
    """Show issuer NAME and its issuing CAs."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        document = _document(ca, ca.registry.issuer(name))
    if as_json:
        print_json(document)
        return
    issuing = document["issuing_ca"]
    revoked = document["revoked_cas"]
    lines = [
        ("name", document["name"]),
        ("default", "yes" if document["default"] else "no"),
        ("state", "disabled" if document["disabled"] else "enabled"),
        ("permitted", ", ".join(document["permitted"]) or "(the root's)"),
        ("excluded", ", ".join(document["excluded"]) or "-"),
        ("profiles", ", ".join(document["profiles"]) or "all"),
        ("issuing CA", f"{issuing['subject']} ({issuing['serial']})" if issuing else "-"),
        ("until", issuing["not_after"] if issuing else "-"),
        ("all its CAs", ", ".join(document["issuing_cas"]) or "-"),
        (
            "revoked",
            ", ".join(f"{r['serial']} ({r['reason']}, {r['revoked_at'][:10]})" for r in revoked)
            or "-",
        ),
    ]
    for label, value in lines:
        click.echo(f"{label + ':':13}{value}")


@issuer_group.command("disable")
@click.argument("name")
@click.pass_obj
def disable_command(app: AppContext, name: str) -> None:
    """Stop issuer NAME from issuing new certificates (its CRL and OCSP go on)."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        changed = ca.disable_issuer(name)
        shown = ca.registry.issuer(name).name
    note(f"Issuer {shown} {'disabled' if changed else 'was already disabled'}.", app.quiet)


@issuer_group.command("enable")
@click.argument("name")
@click.pass_obj
def enable_command(app: AppContext, name: str) -> None:
    """Let issuer NAME issue new certificates again."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        changed = ca.disable_issuer(name, disabled=False)
        shown = ca.registry.issuer(name).name
    note(f"Issuer {shown} {'enabled' if changed else 'was already enabled'}.", app.quiet)


@issuer_group.command("default")
@click.argument("name")
@click.pass_obj
def default_command(app: AppContext, name: str) -> None:
    """Make NAME the issuer used when none is named (issue, sign, /acme/directory)."""
    from privca.cli.options import open_authority

    with open_authority(app) as ca:
        ca.set_default_issuer(name)
        shown = ca.registry.issuer(name).name
    note(f"Issuer {shown} is now the default.", app.quiet)


@issuer_group.command("revoke")
@click.argument("ca_name", metavar="CA")
@click.option(
    "--reason",
    required=True,
    type=click.Choice(CA_REASONS),
    help="RFC 5280 reason on the root's CRL: caCompromise when its key may be known to "
    "others, cessationOfOperation or superseded when it is simply withdrawn.",
)
@passphrase_file_option()
@json_option
@click.pass_obj
def revoke_command(
    app: AppContext, ca_name: str, reason: str, passphrase_file: Path | None, as_json: bool
) -> None:
    """Revoke issuing CA CA (its serial, or an issuer's name for its current one): it
    signs nothing more and the root's CRL lists it, so clients that check that CRL stop
    trusting everything it signed. The root's CRL is published at once when the root key
    is here (else run `privca crl --root` where it is)."""
    from privca._time import isoformat, utcnow
    from privca.cli.options import open_authority
    from privca.x509.encoding import serial_hex
    from privca.x509.profiles import SELF_RENEWING_PROFILES

    now = utcnow()
    with open_authority(app, passphrase_file) as ca:
        outcome = ca.revoke_issuing_ca(_issuing_ca(ca, ca_name), reason, now=now)
        revoked = outcome.revoked
        issuer = revoked.issuer
        successor = ca.registry.active_issuing(issuer)
        # privca's own (OCSP responders, the audit signer) are renewed by privca itself.
        left = ca.inventory.valid_by_issuer([revoked.id], now, SELF_RENEWING_PROFILES)
        still_valid = left[revoked.id].count if revoked.id in left else 0
    document = {
        "serial": serial_hex(revoked.serial),
        "subject": revoked.common_name,
        "issuer": issuer,
        "reason": reason,
        "revoked_at": isoformat(now),
        "root_crls": [str(path) for path in outcome.published],
        "roots_to_publish": [serial_hex(r.serial) for r in outcome.unpublished],
        "issuing_ca_now": serial_hex(successor.serial) if successor is not None else None,
        "valid_certificates_signed": still_valid,
    }
    if as_json:
        print_json(document)
        return
    click.echo(f"Issuing CA {revoked.label} (serial {document['serial']}) revoked: {reason}.")
    for path in outcome.published:
        click.echo(f"The root's CRL lists it -> {path}")
    for root in outcome.unpublished:
        warn(
            f"the key of root {serial_hex(root.serial)} is not here: its CRL lists the "
            "revocation once `privca crl --root` runs where that key is"
        )
    shown = issuer or "default"
    if successor is None:
        note(
            f"Issuer {shown} has no issuing CA now: privca rotate issuing --issuer {shown}",
            app.quiet,
        )
    if still_valid:
        note(
            f"{still_valid} certificate(s) it signed are still unexpired: renew them "
            "(privca renew NAME), for clients that check the root's CRL reject them",
            app.quiet,
        )


def _issuing_ca(ca: CertificateAuthority, name: str) -> CaCertificate:
    """The CA `issuer revoke` names: a serial, or an issuer's name (its current CA)."""
    from privca._text import printable
    from privca.errors import NotFound

    if ca.registry.select(name) is None and any(i.name == name for i in ca.registry.issuers):
        raise NotFound(
            f"issuer '{printable(name, 63)}' has no current issuing CA",
            f"name the one to revoke by its serial: privca issuer show {printable(name, 63)}",
        )
    return ca.authority_by_serial(name)
