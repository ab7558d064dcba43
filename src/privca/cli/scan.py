"""privca scan: what does a live service actually serve?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from privca.cli.options import json_option
from privca.cli.render import print_json, progress

if TYPE_CHECKING:
    from privca.cli.main import AppContext


@click.command("scan")
@click.argument("targets", nargs=-1, required=True, metavar="HOST:PORT...")
@click.option("--name", help="Server name to send (SNI) and check (default: the host).")
@click.option(
    "--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for each target."
)
@json_option
@click.pass_obj
def scan_command(
    app: AppContext, targets: tuple[str, ...], name: str | None, timeout: float, as_json: bool
) -> None:
    """Connect, show the served chain, names and days left, whether the leaf is ours and
    current, superseded or revoked, and whether the chain is complete. Exit 1 if any
    service serves something that needs attention."""
    import sys

    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.home import CAHome
    from privca.tls_scan import fetch_chain, judge

    now = utcnow()
    ca = open_authority(app) if CAHome(app.home_path).exists() else None
    results = []
    try:
        with progress(len(targets), "scanning") as tick:
            for index, target in enumerate(targets, start=1):
                served = fetch_chain(target, name, timeout)
                results.append(judge(served, ca, now))
                tick(index)
    finally:
        if ca is not None:
            ca.close()
    if as_json:
        print_json([r.document() for r in results])
    else:
        for result in results:
            click.echo(result.text())
    sys.exit(0 if all(r.ok for r in results) else 1)
