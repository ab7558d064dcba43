"""privca verify: chain, name, key pair, expiry and inventory status of a certificate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import json_option
from privca.cli.render import decide_exit, print_json
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from privca.cli.main import AppContext
    from privca.registry import CaCertificate
    from privca.x509.verify import VerificationReport


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
    from privca._time import utcnow
    from privca.cli.options import open_authority
    from privca.home import CAHome, read_input_file
    from privca.x509.encoding import load_certificates

    certificates = load_certificates(read_input_file(cert, "certificate file"), f"'{cert}'")
    leaf, extra = certificates[0], certificates[1:]
    host = _host_name(name) if name is not None else None
    private_key = _private_key(key) if key is not None else None
    roots = None
    if ca_file is not None:
        roots = load_certificates(read_input_file(ca_file, "CA file"), f"CA file '{ca_file}'")
    now = utcnow()
    status = "unknown"
    revoked_cas: list[str] = []
    if CAHome(app.home_path).exists():
        with open_authority(app) as ca:
            report, status = ca.verify(
                leaf, intermediates=extra, name=host, private_key=private_key, roots=roots, now=now
            )
            revoked_cas = [_revoked_ca(entry) for entry in ca.registry.revoked_above(leaf)]
    else:
        report = _check_without_home(app, leaf, extra, roots, host, private_key, now)
    problems = [*report.problems, *revoked_cas, *_inventory_problems(status, report, ca_file)]
    decide_exit(1 if problems else 0)
    if as_json:
        print_json(_document(cert, leaf, host, report, status, problems))
    else:
        _print_verdict(app, cert, leaf, report, status, problems)
    if problems:
        raise SystemExit(1)


def _host_name(name: str) -> str:
    """--name as the canonical host name or address it denotes."""
    from privca.errors import InputError
    from privca.x509.names import parse_name

    parsed = parse_name(name, allow_wildcard=False)
    if parsed.kind not in ("dns", "ip"):
        raise InputError(f"--name '{name}' must be a host name or an IP address")
    return parsed.value


def _private_key(path: Path) -> PrivateKeyTypes:
    from privca.home import read_input_file
    from privca.x509.encoding import load_private_key

    return load_private_key(read_input_file(path, "key file"), None, source=f"key '{path}'")


def _check_without_home(
    app: AppContext,
    leaf: x509.Certificate,
    extra: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate] | None,
    name: str | None,
    private_key: PrivateKeyTypes | None,
    now: dt.datetime,
) -> VerificationReport:
    """On a machine with no CA home: against --ca-file alone (no inventory status)."""
    from privca.errors import NotFound
    from privca.x509.encoding import public_key_der
    from privca.x509.verify import check_certificate

    if roots is None:
        raise NotFound(
            f"no CA at '{app.home_path}' and no --ca-file to verify against",
            "pass --ca-file ROOT.crt, or --home of the CA",
        )
    key_der = public_key_der(private_key.public_key()) if private_key is not None else None
    return check_certificate(leaf, roots, extra, now, name, key_der)


def _revoked_ca(entry: CaCertificate) -> str:
    when = f"{entry.revoked_at:%Y-%m-%d}" if entry.revoked_at is not None else "?"
    return (
        f"revoked CA: the issuing CA {serial_hex(entry.serial)} above it was revoked on "
        f"{when} ({entry.revocation_reason}); clients that check the root's CRL reject it"
    )


def _inventory_problems(status: str, report: VerificationReport, ca_file: Path | None) -> list[str]:
    if status == "revoked":
        return ["revoked: the inventory marks this certificate revoked"]
    if status == "unknown" and ca_file is None and report.chain.ok:
        from privca.authority_records import OUTSIDE_RECORDS

        return [
            f"{OUTSIDE_RECORDS}: it chains to this CA but the inventory does not hold it "
            "(signed with the CA key behind privca's back, or lost in a restore: privca import)"
        ]
    return []


def _document(
    cert: Path,
    leaf: x509.Certificate,
    name: str | None,
    report: VerificationReport,
    status: str,
    problems: Sequence[str],
) -> dict[str, object]:
    from privca._time import isoformat

    return {
        "file": str(cert),
        "ok": not problems,
        "serial": serial_hex(leaf.serial_number),
        "name": name,
        "chain": report.chain.ok,
        "key_matches": report.key_matches,
        "not_after": isoformat(report.not_after),
        "days_left": report.days_left,
        "status": status,
        "problems": list(problems),
    }


def _print_verdict(
    app: AppContext,
    cert: Path,
    leaf: x509.Certificate,
    report: VerificationReport,
    status: str,
    problems: Sequence[str],
) -> None:
    if problems:
        click.echo(f"{printable(str(cert))}: FAILED")
        for problem in problems:
            click.echo(f"  {printable(problem)}")
        return
    click.echo(f"{printable(str(cert))}: OK")
    if app.verbosity >= 0:
        click.echo(
            f"  serial {serial_hex(leaf.serial_number)}, {report.days_left} days left "
            f"(until {report.not_after:%Y-%m-%d}), inventory status {status}"
        )
