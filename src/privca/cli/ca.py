"""privca init | quickstart | export: establish a CA and hand out its certificates."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import json_option, key_type_option, store_options
from privca.cli.render import note, print_json, shown_path, warn
from privca.cli.secrets import new_passphrase, passphrase_file_option
from privca.x509.encoding import serial_hex

if TYPE_CHECKING:
    from privca.cli.main import AppContext
    from privca.home import CAHome


@click.command("init")
@click.option("--name", required=True, help="CA name, e.g. 'Example Internal CA'.")
@click.option(
    "--single-tier",
    is_flag=True,
    help="Root signs services directly (the runbook's shape). Default: root + issuing CA.",
)
@key_type_option(
    None, "CA key type (default: ec-p384 root, ec-p256 issuing CA).", for_services=False
)
@click.option(
    "--root-days", type=int, default=3650, show_default=True, help="Validity of the root, in days."
)
@click.option(
    "--issuing-days",
    type=int,
    default=1825,
    show_default=True,
    help="Validity of the issuing CA, in days (at most the root's).",
)
@click.option(
    "--permit",
    multiple=True,
    metavar="NAME|CIDR",
    help="Permitted subtree (repeatable): critical nameConstraints and the issuance policy.",
)
@click.option(
    "--exclude", multiple=True, metavar="NAME|CIDR", help="Excluded subtree (repeatable)."
)
@passphrase_file_option("Read the passphrase for the new CA keys from this file.")
@click.option("--no-passphrase", is_flag=True, help="Store CA keys unencrypted (not recommended).")
@click.option("--url", "base_url", default="", help="Base URL of `privca serve` (CRL, OCSP, AIA).")
@store_options
@click.option("--hsm-module", default="", help="PKCS#11 module: generate the CA keys in an HSM.")
@click.option("--hsm-token", default="", help="Label of the PKCS#11 token (PIN = passphrase).")
@json_option
@click.pass_obj
def init_command(
    app: AppContext,
    name: str,
    single_tier: bool,
    key_type: str | None,
    root_days: int,
    issuing_days: int,
    permit: tuple[str, ...],
    exclude: tuple[str, ...],
    passphrase_file: Path | None,
    no_passphrase: bool,
    base_url: str,
    store_url: str,
    store_password_file: Path | None,
    hsm_module: str,
    hsm_token: str,
    as_json: bool,
) -> None:
    """Establish a new CA: an offline-able root and an issuing CA, keys encrypted 0400."""
    from privca.authority import CertificateAuthority
    from privca.errors import AlreadyExists, InputError
    from privca.home import CAHome
    from privca.keys.types import KeyType

    home = CAHome(app.home_path)
    if no_passphrase and passphrase_file is not None:
        raise InputError(
            "--no-passphrase and --passphrase-file contradict each other", "choose one"
        )
    if home.exists():
        raise AlreadyExists(
            f"a CA already exists at '{home.root}'",
            "choose another --home; privca never overwrites a CA",
        )
    passphrase = _new_ca_secret(passphrase_file, no_passphrase=no_passphrase, hsm=bool(hsm_module))
    ca = CertificateAuthority.init(
        home.root,
        name,
        single_tier=single_tier,
        key_type=KeyType.parse(key_type) if key_type else None,
        root_days=root_days,
        issuing_days=issuing_days,
        permitted=permit,
        excluded=exclude,
        passphrase=passphrase,
        store_url=store_url,
        store_password_file=store_password_file,
        base_url=base_url,
        hsm_module=hsm_module,
        hsm_token=hsm_token,
    )
    if passphrase is None:
        warn("CA keys are stored unencrypted; anyone who copies private/ can issue.")
    summary = {
        "home": str(home.root),
        "root": str(home.root_cert),
        "issuing": None if single_tier else str(home.issuing_cert),
        "chain": str(home.chain),
        "root_subject": ca.root.subject.rfc4514_string(),
        "root_not_after": ca.root.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permitted": list(permit),
        "excluded": list(exclude),
        "encrypted_keys": passphrase is not None,
    }
    ca.close()
    if as_json:
        print_json(summary)
    elif not app.quiet:
        _print_created(name, home, single_tier, encrypted=passphrase is not None,
                       permit=permit, exclude=exclude,
                       hsm_token=hsm_token if hsm_module else "")  # fmt: skip


def _new_ca_secret(passphrase_file: Path | None, *, no_passphrase: bool, hsm: bool) -> bytes | None:
    """The HSM PIN, or the passphrase for the new CA keys (None: unencrypted)."""
    from privca.errors import InputError

    if hsm and no_passphrase:
        raise InputError("an HSM needs its PIN; --no-passphrase does not apply", "drop it")
    if hsm:
        return new_passphrase(passphrase_file, "HSM user PIN", minimum=0)
    if not no_passphrase:
        return new_passphrase(passphrase_file)
    return None  # init warns once the CA is made: not before every input error


def _print_created(
    name: str,
    home: CAHome,
    single_tier: bool,
    *,
    encrypted: bool,
    permit: Sequence[str],
    exclude: Sequence[str],
    hsm_token: str = "",
) -> None:
    click.echo(f"Created CA '{printable(name)}' in {shown_path(home.root)}")
    click.echo(f"  root certificate:  {shown_path(home.root_cert)}  (install this on clients)")
    if not single_tier:
        click.echo(f"  issuing CA:        {shown_path(home.issuing_cert)}")
    click.echo(f"  keys:              {_where_keys_are(home, encrypted, hsm_token)}")
    if permit or exclude:
        click.echo(
            f"  name constraints:  permit {', '.join(permit) or '-'}; "
            f"exclude {', '.join(exclude) or '-'}"
        )
    click.echo("Next: privca issue NAME ...   |   privca trust install")


def _where_keys_are(home: CAHome, encrypted: bool, hsm_token: str) -> str:
    """Where the CA keys are, as the summary of init says it: on the token (private/ then
    holds only the key that seals EAB secrets), or files in private/."""
    if hsm_token:
        return f"on PKCS#11 token '{printable(hsm_token, 80)}' (non-extractable; PIN to use them)"
    protection = "encrypted" if encrypted else "UNENCRYPTED"
    return f"{shown_path(home.private)}/ (0700, keys 0400, {protection})"


@click.command("export")
@click.argument("what", type=click.Choice(["chain", "root", "roots", "cross", "openssl-index"]))
@click.option(
    "--out", type=click.Path(path_type=Path), help="Write to FILE (a DIR for openssl-index)."
)
@click.option(
    "--for",
    "clients",
    type=click.Choice(["new", "old"]),
    default=None,
    help="chain: for clients that trust the new root (default) or only the old one "
    "(during a root rollover: with the cross-certificate and the old root).",
)
@click.option(
    "--ca",
    "authority",
    metavar="CA",
    default=None,
    help="openssl-index: the CA whose certificates to list (a hex serial, `issuing`, or an "
    "issuer's name; default: the default issuer's issuing CA). One index per CA, as "
    "`openssl ocsp -index` answers for one CA.",
)
@click.pass_obj
def export_command(
    app: AppContext, what: str, out: Path | None, clients: str | None, authority: str | None
) -> None:
    """Print (or write) PEM for distribution: the root, every root to trust now (roots:
    two during a root rollover), the rollover's cross-certificates (cross: the new root
    signed by the old, then the reverse one if made; empty when none),
    or the CA chain; or the inventory as OpenSSL's index.txt (openssl ca, openssl ocsp
    -index)."""
    from privca.errors import InputError

    if clients is not None and what != "chain":
        raise InputError("--for goes with `export chain`", "e.g. privca export chain --for old")
    if authority is not None and what != "openssl-index":
        raise InputError(
            "--ca goes with `export openssl-index`", "e.g. privca export openssl-index --ca team-a"
        )
    if what == "openssl-index":
        from privca.cli.adopt import export_index_command

        return export_index_command(app, out, authority)
    from privca.cli.options import check_out_directory, make_out_directory, open_authority
    from privca.home import atomic_write
    from privca.x509.encoding import pem_certificate, pem_certificates

    if out is not None:
        check_out_directory(out.parent)
    with open_authority(app) as ca:
        registry = ca.registry
        if what == "root":
            data = pem_certificate(ca.root)
        elif what == "roots":
            data = pem_certificates([r.certificate for r in registry.trusted_roots])
        elif what == "cross":
            data = pem_certificates([c.certificate for c in registry.crosses])
        elif clients == "old":
            data = pem_certificates(list(registry.chain_for_old_clients()))
        else:
            data = pem_certificates(list(ca.chain))
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        make_out_directory(out.parent, private=False)
        atomic_write(out, data, 0o644)
        note(f"wrote {shown_path(out)}", app.quiet)


@click.command("quickstart")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("privca-quickstart"),
    show_default=True,
    help="Where to create the demo CA and certificate.",
)
@click.pass_obj
def quickstart_command(app: AppContext, directory: Path) -> None:
    """Make a demo CA, issue a localhost certificate, prove it with a real TLS handshake.

    Run it again and it reuses its CA and issues a fresh localhost certificate (the old
    one is marked superseded)."""
    from privca.authority import CertificateAuthority
    from privca.cli.options import make_out_directory
    from privca.cli.tls_probe import handshake_over_loopback
    from privca.errors import CheckFailed, InputError
    from privca.home import CAHome, atomic_write_many
    from privca.x509.encoding import pem_private_key_unencrypted

    home = directory / "ca"
    out = directory / "certs"
    names = ["localhost", "127.0.0.1", "::1"]
    if CAHome(directory).exists():
        # Its certs/ would get the demo's unencrypted localhost key, and ca/ a second CA.
        raise InputError(
            f"--dir '{directory}' is a CA home: the demo writes its own CA and keys there",
            "give the demo a directory of its own, e.g. --dir privca-quickstart",
        )
    if CAHome(home).exists():
        ca = CertificateAuthority.open(home, passphrase=None)
        click.echo(f"1. Reusing the demo CA in {shown_path(home)} (demo: keys unencrypted)")
        previous = [r for r in ca.certificates(status="valid") if sorted(r.names) == sorted(names)]
        # A fresh certificate each run; the last one is superseded, not left valid.
        issued = ca.renew(serial_hex(previous[-1].serial)) if previous else ca.issue(names)
    else:
        ca = CertificateAuthority.init(home, "privca Quickstart CA", passphrase=None)
        click.echo(f"1. Created a two-tier CA in {shown_path(home)} (demo: keys unencrypted)")
        issued = ca.issue(names)
    make_out_directory(out, private=True)
    key_path, cert_path, chain_path = (
        out / "localhost.key",
        out / "localhost.crt",
        out / "localhost.chain.pem",
    )
    atomic_write_many(
        [
            (key_path, pem_private_key_unencrypted(issued.generated_key()), 0o600),
            (cert_path, issued.certificate_pem(), 0o644),
            (chain_path, issued.chain_pem(), 0o644),
        ]
    )
    click.echo(
        f"2. Issued {shown_path(cert_path)} for localhost, 127.0.0.1, ::1 "
        f"(serial {serial_hex(issued.serial)}, recorded in the inventory)"
    )
    report, status = ca.verify(issued.certificate, name="localhost", private_key=issued.private_key)
    if not report.ok:
        raise CheckFailed(
            "quickstart certificate failed verification: " + "; ".join(report.problems)
        )
    click.echo(f"3. Verified: chain to the root, name, key pair, status {status}")
    handshake_over_loopback(chain_path, key_path, home / "certs" / "root.crt", "localhost")
    click.echo("4. A TLS 1.3 handshake on 127.0.0.1 trusting only the new root succeeded")
    ca.close()
    _print_next_steps(home)


def _print_next_steps(home: Path) -> None:
    click.echo("")
    click.echo("Next steps:")
    click.echo(f"  export PRIVCA_HOME={printable(shlex.quote(str(home.resolve())))}")
    click.echo("  privca list                       # the inventory")
    click.echo("  privca issue db.example.internal  # a certificate for a service")
    # Not `privca trust install`: the demo root has no name constraints and its keys lie
    # unencrypted on disk, so trusting it lets whoever reads them mint any site's certificate.
    click.echo(
        "The demo's root may sign any name and its keys are not encrypted: "
        "never install it in a trust store."
    )
    click.echo(
        "For a real CA: privca init --name 'Example Internal CA' --permit corp.internal, "
        "then privca trust install"
    )
