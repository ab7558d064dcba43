"""privca verify: chain, name, key pair, expiry and inventory status of a certificate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import json_option
from privca.cli.render import print_json
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.cli.main import AppContext


@click.command("verify")
@click.argument("cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", help="Host name or IP address the certificate must be valid for.")
@click.option(
    "--key", type=click.Path(dir_okay=False, path_type=Path), help="Private key that must match."
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust this root instead of the home's (works without a CA home).",
)
@json_option
@click.pass_obj
def verify_command(
    app: AppContext,
    cert: Path,
    name: str | None,
    key: Path | None,
    ca_file: Path | None,
    as_json: bool,
) -> None:
    """Exit 0 and print OK if CERT is good; exit 1 with the reasons if not."""
    from privca._time import isoformat, utcnow
    from privca.cli.options import open_authority
    from privca.home import CAHome, read_input_file
    from privca.x509.encoding import load_certificates, load_private_key
    from privca.x509.names import parse_name
    from privca.x509.verify import check_certificate

    certificates = load_certificates(read_input_file(cert, "certificate file"), f"'{cert}'")
    leaf, extra = certificates[0], certificates[1:]
    if name is not None:
        parsed = parse_name(name, allow_wildcard=False)
        if parsed.kind not in ("dns", "ip"):
            from privca.errors import InputError

            raise InputError(f"--name '{name}' must be a host name or an IP address")
        name = parsed.value
    private_key = None
    if key is not None:
        private_key = load_private_key(
            read_input_file(key, "key file"), None, source=f"key '{key}'"
        )
    roots = None
    if ca_file is not None:
        roots = load_certificates(read_input_file(ca_file, "CA file"), f"CA file '{ca_file}'")
    now = utcnow()
    status = "unknown"
    if CAHome(app.home_path).exists():
        with open_authority(app) as ca:
            report, status = ca.verify(
                leaf, intermediates=extra, name=name, private_key=private_key, roots=roots, now=now
            )
    else:
        if roots is None:
            from privca.errors import NotFound

            raise NotFound(
                f"no CA at '{app.home_path}' and no --ca-file to verify against",
                "pass --ca-file ROOT.crt, or --home of the CA",
            )
        from privca.x509.encoding import public_key_der

        report = check_certificate(
            leaf,
            roots,
            extra,
            now,
            name,
            public_key_der(private_key.public_key()) if private_key is not None else None,
        )
    problems = list(report.problems)
    if status == "revoked":
        problems.append("revoked: the inventory marks this certificate revoked")
    elif status == "unknown" and ca_file is None and report.chain.ok:
        problems.append(
            "not in the inventory, although it chains to this CA (a lost record, or a "
            "certificate signed outside privca with the CA key?)"
        )
    ok = not problems
    if as_json:
        print_json(
            {
                "file": str(cert),
                "ok": ok,
                "serial": serial_hex(leaf.serial_number),
                "name": name,
                "chain": report.chain.ok,
                "key_matches": report.key_matches,
                "not_after": isoformat(report.not_after),
                "days_left": report.days_left,
                "status": status,
                "problems": problems,
            }
        )
    elif ok:
        click.echo(f"{printable(str(cert))}: OK")
        if app.verbosity >= 0:
            click.echo(
                f"  serial {serial_hex(leaf.serial_number)}, {report.days_left} days left "
                f"(until {report.not_after:%Y-%m-%d}), inventory status {status}"
            )
    else:
        click.echo(f"{printable(str(cert))}: FAILED")
        for problem in problems:
            click.echo(f"  {printable(problem)}")
    if not ok:
        raise SystemExit(1)
