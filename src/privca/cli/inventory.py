"""privca list | show | tidy: the inventory."""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import MAX_COUNT, json_option
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
@click.option(
    "--limit",
    type=click.IntRange(max=MAX_COUNT),  # a negative one is refused below, with a hint
    metavar="N",
    help="At most N certificates (a page).",
)
@click.option(
    "--after",
    metavar="SERIAL",
    help="Continue after this certificate (the last serial of the previous page).",
)
@json_option
@click.option("--jsonl", "as_jsonl", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_command(
    app: AppContext,
    expiring: str | None,
    status: str | None,
    name_pattern: str | None,
    show_all: bool,
    limit: int | None,
    after: str | None,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """List issued certificates, soonest expiry first.

    Rows are read from the inventory in chunks and printed as they come (piped, --json
    and --jsonl), so memory does not grow with the inventory. Page with --limit N and
    --after SERIAL (the serial of the last certificate of the previous page).
    """
    from privca._time import utcnow
    from privca.cli.options import open_authority, record_document
    from privca.cli.render import (
        is_terminal,
        parse_duration,
        print_json_array,
        print_json_lines,
    )
    from privca.errors import InputError
    from privca.x509.profiles import SELF_RENEWING_PROFILES

    if as_json and as_jsonl:
        raise InputError("--json and --jsonl are exclusive", "pick one of them")
    if limit is not None and limit < 0:
        raise InputError(f"--limit {limit} is negative", "give 0 or more, e.g. --limit 100")
    after_serial = _parse_serial(after) if after is not None else None
    window = parse_duration(expiring) if expiring else None
    now = utcnow()
    with (
        open_authority(app) as ca,
        contextlib.closing(
            ca.inventory.stream(
                status=status,
                name_pattern=name_pattern,
                expiring_before=now + window if window is not None else None,
                now=now,
                after=after_serial,
                with_der=False,  # a listing shows no certificate
            )
        ) as records,
    ):
        shown = (r for r in records if show_all or r.profile not in SELF_RENEWING_PROFILES)
        documents = (record_document(ca, r, now) for r in itertools.islice(shown, limit))
        if as_json:
            print_json_array(documents)
            return
        if as_jsonl:
            print_json_lines(documents)
            return
        # The issuer column only where there is a choice (two issuers or more), and last,
        # so scripts that cut the first six columns keep working.
        named = len(ca.registry.issuers) > 1
        rows = (
            [
                d["serial"],
                ", ".join(d["names"]),
                d["profile"],
                d["not_after"][:10],
                str(d["days_left"]),
                d["status"],
                *([d["issuer_name"] or ""] if named else []),
            ]
            for d in documents
        )
        columns = ["serial", "names", "profile", "not after", "days", "status"]
        columns += ["issuer"] if named else []
        if is_terminal():
            table = list(rows)  # rich sizes the columns from every row
            print_table(f"{len(table)} certificate(s)", columns, table)
        else:
            print_table(None, columns, rows)


def _parse_serial(text: str) -> int:
    """A hex serial as `list` prints it (colons allowed), for --after."""
    from privca.errors import InputError

    digits = text.strip().lower().replace(":", "")
    if not digits or len(digits) > 40 or any(c not in "0123456789abcdef" for c in digits):
        raise InputError(
            f"--after {printable(text, 60)!r} is not a serial",
            "give the hex serial of the last certificate of the previous page",
        )
    return int(digits, 16)


# What the issuing CA's revocation is called in `show`'s columns.
_SHOW_LABELS = {"issuer_revoked_at": "CA revoked at", "issuer_revocation_reason": "CA revoked for"}


@click.command("show")
@click.argument("serial_or_name")
@click.option("--pem", is_flag=True, help="Print the certificate as PEM.")
@json_option
@click.pass_obj
def show_command(app: AppContext, serial_or_name: str, pem: bool, as_json: bool) -> None:
    """Show one certificate by hex serial or by name (its valid one; a name with several
    valid certificates, e.g. from two issuers, is refused with their serials, as revoke
    and renew refuse it)."""
    from cryptography import x509

    from privca._time import utcnow
    from privca.cli.options import open_authority, record_document
    from privca.x509.encoding import pem_certificate

    now = utcnow()
    with open_authority(app) as ca:
        record = ca.lookup(serial_or_name, now, unique=True)
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
        "issuer_name",
        "not_before",
        "not_after",
        "days_left",
        "status",
        "revoked_at",
        "revocation_reason",
        "issuer_revoked_at",
        "issuer_revocation_reason",
    ):
        value = document[key]
        if value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(value)
        label = _SHOW_LABELS.get(key, key.replace("_", " "))
        click.echo(f"{label:18}{printable(str(value))}")


@click.command("tidy")
@click.option(
    "--expired-for",
    default="90d",
    show_default=True,
    metavar="DURATION",
    help="Tidy the certificates that expired longer ago than DURATION (e.g. 90d, 26w).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be tidied.")
@json_option
@click.pass_obj
def tidy_command(app: AppContext, expired_for: str, dry_run: bool, as_json: bool) -> None:
    """Drop certificates that expired long ago from the inventory, keeping a tombstone.

    A tombstone keeps the serial (never reused), the issuer, the status (a revoked
    certificate stays revoked), the dates and the revocation date and reason; the names,
    subject, public key hash and the certificate itself go. Tidied certificates no longer
    show in list, show, check or /metrics' per-certificate series; CRLs never listed them.
    """
    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.cli.render import parse_duration

    retention = parse_duration(expired_for)
    now = utcnow()
    with open_authority(app) as ca:
        count = ca.tidy(retention, now, dry_run=dry_run)
    if as_json:
        print_json({"tidied": 0 if dry_run else count, "would_tidy": count if dry_run else 0})
    elif app.verbosity >= 0:
        verb = "would tidy" if dry_run else "tidied"
        click.echo(f"{verb} {count} certificate(s) expired more than {retention.days} days ago")
