"""privca scan: what does a live service actually serve?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from privca.cli.options import Seconds, json_option
from privca.cli.render import decide_exit, print_json, progress
from privca.tls_scan import STARTTLS_PROTOCOLS

if TYPE_CHECKING:
    from privca.cli.main import AppContext


@click.command("scan")
@click.argument("targets", nargs=-1, required=True, metavar="HOST:PORT...")
@click.option("--name", help="Server name to send (SNI) and check (default: the host).")
@click.option(
    "--timeout",
    type=Seconds(0.1, 600),
    default=5.0,
    show_default=True,
    help="Seconds allowed for each target, connection to handshake.",
)
@click.option(
    "--starttls",
    type=click.Choice([*STARTTLS_PROTOCOLS, "none"]),
    default=None,
    help="Speak this protocol before TLS, as openssl s_client -starttls does (default: "
    "from the port: 5432 postgres, 25/587 smtp, 143 imap, 389 ldap, 3306 mysql; "
    "none: TLS at once).",
)
@json_option
@click.pass_obj
def scan_command(
    app: AppContext,
    targets: tuple[str, ...],
    name: str | None,
    timeout: float,
    starttls: str | None,
    as_json: bool,
) -> None:
    """Connect, show the served chain, names and days left, whether the leaf is ours and
    current, superseded or revoked, and whether the chain is complete. Exit 1 if any
    service serves something that needs attention."""
    import sys

    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.home import CAHome
    from privca.tls_scan import fetch_chain, judge, record_scans, scanned_endpoint

    now = utcnow()
    ca = open_authority(app) if CAHome(app.home_path).exists() else None
    results = []
    try:
        with progress(len(targets), "scanning") as tick:
            for index, target in enumerate(targets, start=1):
                served = fetch_chain(target, name, timeout, starttls)
                results.append(judge(served, ca, now))
                tick(index)
        if ca is not None:  # for `privca rotate status`: who still serves the old root
            seen = [scanned_endpoint(r, now) for r in results]
            record_scans(ca.home.scans, [e for e in seen if e is not None])
    finally:
        if ca is not None:
            ca.close()
    code = 0 if all(r.ok for r in results) else 1
    decide_exit(code)
    if as_json:
        print_json([r.document() for r in results])
    else:
        for result in results:
            click.echo(result.text())
    sys.exit(code)
