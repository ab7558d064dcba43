"""privca list | show: the inventory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import json_option
from privca.cli.render import print_json, print_table
from privca.store.status import LISTED_STATUSES

if TYPE_CHECKING:
    from privca.cli.main import AppContext


@click.command("list")
@click.option("--expiring", metavar="DURATION", help="Only those expiring within, e.g. 30d.")
@click.option(
    "--status",
    type=click.Choice([str(status) for status in LISTED_STATUSES]),
    help="Only those in this state (superseded: renewed, the old one still unexpired).",
)
@click.option("--name", "name_pattern", metavar="PATTERN", help="Names containing PATTERN (* ok).")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also the certificates privca renews by itself (its server and OCSP responders).",
)
@json_option
@click.pass_obj
def list_command(
    app: AppContext,
    expiring: str | None,
    status: str | None,
    name_pattern: str | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """List issued certificates, soonest expiry first."""
    from privca._time import utcnow
    from privca.cli.options import open_authority, record_document
    from privca.cli.render import parse_duration
    from privca.x509.profiles import SELF_RENEWING_PROFILES

    window = parse_duration(expiring) if expiring else None
    now = utcnow()
    with open_authority(app) as ca:
        records = ca.certificates(
            expiring_within=window, status=status, name_pattern=name_pattern, now=now
        )
        documents = [
            record_document(ca, record, now)
            for record in records
            if show_all or record.profile not in SELF_RENEWING_PROFILES
        ]
    if as_json:
        print_json(documents)
        return
    rows = [
        [
            d["serial"],
            ", ".join(d["names"]),
            d["profile"],
            d["not_after"][:10],
            str(d["days_left"]),
            d["status"],
        ]
        for d in documents
    ]
    print_table(
        f"{len(rows)} certificate(s)",
        ["serial", "names", "profile", "not after", "days", "status"],
        rows,
    )


@click.command("show")
@click.argument("serial_or_name")
@click.option("--pem", is_flag=True, help="Print the certificate as PEM.")
@json_option
@click.pass_obj
def show_command(app: AppContext, serial_or_name: str, pem: bool, as_json: bool) -> None:
    """Show one certificate by hex serial or by name (the newest valid one)."""
    from cryptography import x509

    from privca._time import utcnow
    from privca.cli.options import open_authority, record_document
    from privca.x509.encoding import pem_certificate

    now = utcnow()
    with open_authority(app) as ca:
        record = ca.lookup(serial_or_name, now)
        document = record_document(ca, record, now)
    certificate = x509.load_der_x509_certificate(record.der) if record.der else None
    if pem and certificate is not None:
        click.echo(pem_certificate(certificate).decode(), nl=False)
        return
    if as_json:
        if certificate is not None:
            document["pem"] = pem_certificate(certificate).decode()
        print_json(document)
        return
    for key in (
        "serial",
        "names",
        "profile",
        "subject",
        "issuer",
        "not_before",
        "not_after",
        "days_left",
        "status",
        "revoked_at",
        "revocation_reason",
    ):
        value = document[key]
        if value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(value)
        click.echo(f"{key.replace('_', ' '):18}{printable(str(value))}")
