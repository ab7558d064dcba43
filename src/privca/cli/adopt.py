"""privca import openssl|easyrsa | doctor | export openssl-index: adopt a hand-built CA."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca._text import printable
from privca.cli.options import Seconds, json_option, store_options
from privca.cli.render import decide_exit, note, print_json, warn
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.adopt.doctor import Finding
    from privca.adopt.plan import AdoptionPlan
    from privca.cli.main import AppContext
    from privca.home import CAHome

IMPORT_PASSPHRASE_ENV = "PRIVCA_IMPORT_PASSPHRASE"


def _old_passphrase(path: Path | None) -> Callable[[], bytes | None]:
    """The passphrase of the key being imported, asked only if that key is encrypted."""
    from privca.cli.secrets import read_secret

    return lambda: read_secret(
        path,
        IMPORT_PASSPHRASE_ENV,
        missing="the CA key to import is encrypted and there is no passphrase",
        hint=f"use --passphrase-file FILE or ${IMPORT_PASSPHRASE_ENV}",
        prompt="Passphrase of the CA key to import",
    )


def _new_key_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--passphrase-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Passphrase of the key being imported (else ${IMPORT_PASSPHRASE_ENV}, "
            "else a prompt; asked only if the key is encrypted).",
        ),
        click.option(
            "--new-passphrase-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Passphrase for privca's copy of the key (else $PRIVCA_PASSPHRASE, else a "
            "prompt).",
        ),
        click.option(
            "--no-passphrase", is_flag=True, help="Store privca's copy unencrypted (not advised)."
        ),
        click.option("--name", default=None, help="CA name (default: the CA certificate's CN)."),
        click.option(
            "--certs",
            "cert_globs",
            multiple=True,
            metavar="GLOB",
            help="More certificate files this CA signed (repeatable; quote the pattern).",
        ),
        json_option,
    ]
    for option in reversed(options):
        function = option(function)
    return store_options(function)


class _ImportGroup(click.Group):
    """`privca import FILE...` and `privca import --from-scan TARGET` mean `privca import
    certificates ...`; `privca import openssl|easyrsa` adopt a CA."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["certificates", *args]
        return super().parse_args(ctx, args)


@click.group("import", cls=_ImportGroup)
def import_group() -> None:
    """Put lost certificates back (FILE... or --from-scan), or adopt a CA built with
    OpenSSL or easy-rsa, keeping its root and certificates.

    `privca import FILE...` records certificates this CA signed that its inventory lacks
    (after a restore from an older backup), each with an audit entry; a certificate not
    signed by this CA's keys is refused, and so is a CA certificate (a batch holding one
    imports nothing), and importing twice changes nothing.

    Adopting: the old CA certificate becomes the root of a new single-tier privca home,
    unchanged, so no client trust store changes and nothing is re-issued. Everything is
    checked before anything is written; a failure leaves the new home absent.
    """


@import_group.command("certificates")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--from-scan",
    "targets",
    multiple=True,
    metavar="HOST:PORT",
    help="Import what this TLS service serves, if our CA signed it (repeatable).",
)
@click.option(
    "--timeout", type=Seconds(0.1, 600), default=10.0, show_default=True, help="Per service."
)
@json_option
@click.pass_obj
def import_certificates_command(
    app: AppContext, files: tuple[Path, ...], targets: tuple[str, ...], timeout: float,
    as_json: bool,
) -> None:  # fmt: skip
    """Record certificates this CA signed that its inventory lacks (FILE... or --from-scan)."""
    from privca.adopt.lost import from_scan, read_lost
    from privca.authority import CertificateAuthority
    from privca.errors import EnvironmentRefused, InputError

    if not files and not targets:
        raise InputError("nothing to import", "give certificate files, or --from-scan HOST:PORT")
    found = read_lost(list(files))
    if targets:
        from privca.tls_scan import fetch_chain

        chains = []
        for target in targets:
            served = fetch_chain(target, None, timeout)
            if served.error:
                # The network or the other end refused, not the request: exit 3.
                raise EnvironmentRefused(
                    f"cannot scan {printable(target, 80)}: {printable(served.error, 200)}",
                    "check that it serves TLS and is reachable from here, or import the "
                    "certificate file instead",
                )
            chains.append((target, served.chain))
        found += from_scan(chains)
    with CertificateAuthority.open(app.home_path) as ca:
        added, known = ca.import_lost(found)
    if as_json:
        print_json(
            {"imported": [serial_hex(s) for s in added], "already": [serial_hex(s) for s in known]}
        )
        return
    for serial in added:
        note(f"imported {serial_hex(serial)}", app.quiet)
    for serial in known:
        note(f"already in the inventory: {serial_hex(serial)}", app.quiet)
    note(f"{len(added)} imported, {len(known)} already there", app.quiet)


@import_group.command("openssl")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="CA key file.")
@click.option(
    "--cert", type=click.Path(dir_okay=False, path_type=Path), help="CA certificate file."
)
@_new_key_options
@click.pass_obj
def import_openssl_command(
    app: AppContext,
    directory: Path,
    key: Path | None,
    cert: Path | None,
    passphrase_file: Path | None,
    new_passphrase_file: Path | None,
    no_passphrase: bool,
    name: str | None,
    cert_globs: tuple[str, ...],
    store_url: str,
    store_password_file: Path | None,
    as_json: bool,
) -> None:
    """A CA directory from the OpenSSL runbook or `openssl ca` (certs/ca.crt,
    private/ca.key, index.txt, serial, newcerts/), plus certificates given with --certs."""
    from privca.adopt.openssl import read_openssl_ca

    def read(source: Callable[[], bytes | None]) -> AdoptionPlan:
        return read_openssl_ca(
            directory, passphrase=source, key=key, cert=cert, cert_globs=cert_globs, name=name
        )

    store = (store_url, store_password_file)
    _adopt(app, read, passphrase_file, new_passphrase_file, no_passphrase, store, as_json)


@import_group.command("easyrsa")
@click.argument("pki_dir", type=click.Path(path_type=Path))
@_new_key_options
@click.pass_obj
def import_easyrsa_command(
    app: AppContext,
    pki_dir: Path,
    passphrase_file: Path | None,
    new_passphrase_file: Path | None,
    no_passphrase: bool,
    name: str | None,
    cert_globs: tuple[str, ...],
    store_url: str,
    store_password_file: Path | None,
    as_json: bool,
) -> None:
    """An easy-rsa 3 PKI directory (ca.crt, private/ca.key, index.txt, issued/, revoked/)."""
    from privca.adopt.easyrsa import read_easyrsa_pki

    def read(source: Callable[[], bytes | None]) -> AdoptionPlan:
        return read_easyrsa_pki(pki_dir, passphrase=source, cert_globs=cert_globs, name=name)

    store = (store_url, store_password_file)
    _adopt(app, read, passphrase_file, new_passphrase_file, no_passphrase, store, as_json)


def _adopt(
    app: AppContext,
    read: Callable[[Callable[[], bytes | None]], AdoptionPlan],
    passphrase_file: Path | None,
    new_passphrase_file: Path | None,
    no_passphrase: bool,
    store: tuple[str, Path | None],
    as_json: bool,
) -> None:
    from privca._time import utcnow
    from privca.adopt.adoption import check_new_passphrase, check_target, establish
    from privca.adopt.doctor import examine_plan
    from privca.cli.secrets import new_passphrase
    from privca.errors import InputError

    if no_passphrase and new_passphrase_file is not None:
        raise InputError(
            "--no-passphrase and --new-passphrase-file contradict each other", "choose one"
        )
    home = check_target(app.home_path)  # before any prompt: a taken home fails at once
    plan = read(_old_passphrase(passphrase_file))
    passphrase = None if no_passphrase else new_passphrase(new_passphrase_file)
    check_new_passphrase(passphrase)
    now = utcnow()
    findings = examine_plan(plan, now)
    ca = establish(
        plan, home.root, passphrase, now, store_url=store[0], store_password_file=store[1]
    )
    ca.close()
    if no_passphrase:
        warn("privca's copy of the CA key is stored unencrypted.")
    counts = _certificate_counts(plan, now)
    if as_json:
        print_json(
            _adoption_document(plan, home, counts, findings, encrypted=passphrase is not None)
        )
    elif not app.quiet:
        _print_adopted(plan, home, counts, findings, encrypted=passphrase is not None)


def _certificate_counts(plan: AdoptionPlan, now: dt.datetime) -> dict[str, int]:
    counts = {"valid": 0, "expired": 0, "revoked": 0}
    for item in plan.certificates:
        if item.status == "revoked":
            counts["revoked"] += 1
        elif item.certificate.not_valid_after_utc <= now:
            counts["expired"] += 1
        else:
            counts["valid"] += 1
    return counts


def _adoption_document(
    plan: AdoptionPlan,
    home: CAHome,
    counts: dict[str, int],
    findings: list[Finding],
    *,
    encrypted: bool,
) -> dict[str, object]:
    from privca._time import isoformat

    return {
        "home": str(home.root),
        "source": str(plan.source),
        "kind": plan.kind,
        "name": plan.name,
        "root": str(home.root_cert),
        "root_subject": plan.ca_certificate.subject.rfc4514_string(),
        "root_not_after": isoformat(plan.ca_certificate.not_valid_after_utc),
        "encrypted_keys": encrypted,
        "certificates": counts,
        "revocations_without_certificate": len(plan.revoked_without_certificate),
        "not_imported": [
            {"line": e.line, "serial": serial_hex(e.serial), "subject": e.subject}
            for e in plan.missing
        ],
        "crl_number": plan.crl_number,
        "findings": [f.document() for f in findings],
    }


def _print_adopted(
    plan: AdoptionPlan,
    home: CAHome,
    counts: dict[str, int],
    findings: list[Finding],
    *,
    encrypted: bool,
) -> None:
    click.echo(f"Adopted CA '{printable(plan.name)}' from {plan.source} into {home.root}")
    click.echo(f"  root certificate:  {home.root_cert}  (the original, unchanged)")
    click.echo(
        f"  key:               {home.root / 'private' / 'root.key'} (0400"
        f"{', encrypted' if encrypted else ', UNENCRYPTED'})"
    )
    without = len(plan.revoked_without_certificate)
    click.echo(
        f"  certificates:      {counts['valid']} valid, {counts['expired']} expired, "
        f"{counts['revoked']} revoked"
        + (f"; {without} revocation(s) without a certificate file" if without else "")
    )
    if findings:
        click.echo("Findings (privca doctor shows again those about the new home):")
        _echo_findings(findings)
    click.echo("Next: privca list   |   privca crl   |   privca rotate issuing (two tiers)")


def _echo_findings(findings: list[Finding]) -> None:
    for finding in findings:
        # Messages quote names and subjects read from the imported files.
        click.echo(f"  [{finding.severity}] {printable(finding.message)}")
        click.echo(f"      fix: {printable(finding.fix)}")


@click.command("doctor")
@json_option
@click.pass_obj
def doctor_command(app: AppContext, as_json: bool) -> None:
    """Find weaknesses in the CA and its certificates, each with a fix.

    Exit 0 if only informational findings, 1 if any warning or critical one.
    """
    from privca._time import utcnow
    from privca.adopt.doctor import examine_home, has_problems
    from privca.cli.options import open_authority

    now = utcnow()
    with open_authority(app) as ca:
        findings = examine_home(ca, now)
    decide_exit(1 if has_problems(findings) else 0)
    if as_json:
        print_json([f.document() for f in findings])
    elif findings:
        _echo_findings(findings)
    elif not app.quiet:
        click.echo("No findings.")
    sys.exit(1 if has_problems(findings) else 0)


def export_index_command(app: AppContext, out: Path | None, authority: str | None) -> None:
    """`privca export openssl-index [--ca CA] [--out DIR]`: the certificates of one CA as
    index.txt (+ .attr and serial with --out). One CA's only: `openssl ocsp -index` with
    another CA's serials in it answered "good" for serials that CA never issued."""
    from privca._text import printable
    from privca._time import utcnow
    from privca.adopt.export import index_entries, write_openssl_index
    from privca.adopt.index import format_index
    from privca.cli.options import open_authority
    from privca.errors import NotFound

    now = utcnow()
    with open_authority(app) as ca:
        chosen = ca.registry.select(authority or "issuing")
        if chosen is None:
            raise NotFound(
                f"no CA '{printable(authority or 'issuing', 80)}' in this home",
                "give a CA's hex serial, `issuing`, or an issuer's name (privca issuer list)",
            )
        records = [r for r in ca.inventory.find(now=now) if r.issuer_id == chosen.id]
    if out is None:
        click.echo(format_index(index_entries(records, now)), nl=False)
        return
    written = write_openssl_index(records, out, now)
    note("wrote " + ", ".join(str(path) for path in written), app.quiet)
