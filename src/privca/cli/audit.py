"""privca audit log | verify | checkpoint | export | verify-export: the audit log."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from privca._text import printable
from privca.cli.options import (
    check_out_directory,
    check_outputs_free,
    json_option,
    make_out_directory,
    open_authority,
)
from privca.cli.render import decide_exit, note, print_json, print_json_array, print_table
from privca.cli.secrets import passphrase_file_option
from privca.errors import InputError

if TYPE_CHECKING:
    from privca.cli.main import AppContext


def _since(value: str | None) -> dt.datetime | None:
    """A date (2026-12-01), a UTC time (2026-12-01T10:00:00Z) or a duration ago (7d)."""
    if value is None:
        return None
    from privca._time import utcnow
    from privca.settings import DurationTooLong, parse_duration

    out_of_range = InputError(
        f"'{printable(value, 40)}' is out of range",
        "give a time since the CA began, e.g. 2026-12-01 or 7d",
    )
    not_understood = InputError(
        f"'{printable(value, 40)}' is neither a date nor a duration",
        "give e.g. 2026-12-01, 2026-12-01T10:00:00Z or 7d",
    )
    if not value.isascii():  # other scripts' digits, which `\d` and int() would take
        raise not_understood
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return utcnow() - parse_duration(value)
        except (OverflowError, DurationTooLong):
            raise out_of_range from None
        except InputError:
            raise not_understood from None
    try:
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except OverflowError:
        raise out_of_range from None


_HEX_DIGITS = frozenset("0123456789abcdef")
_SERIAL_DIGITS = 40  # RFC 5280: a serial is at most 20 octets


def _serial(value: str | None) -> str | None:
    """A hex serial as `privca list` prints it (colons and 0x allowed). ASCII hex digits
    only: int() would also take a sign, underscores, spaces and other scripts' digits."""
    if value is None:
        return None
    digits = value.strip().lower().removeprefix("0x").replace(":", "")
    if not digits or not digits.isascii() or not set(digits) <= _HEX_DIGITS:
        raise InputError(
            f"'{printable(value, 40)}' is not a hex serial",
            "give the serial as `privca list` shows it, e.g. 7f3a09 (colons allowed)",
        )
    significant = digits.lstrip("0") or "0"
    if len(significant) > _SERIAL_DIGITS:
        raise InputError(
            f"'{printable(value, 40)}' is too long for a serial",
            f"a serial has at most {_SERIAL_DIGITS} hex digits; see `privca list`",
        )
    return significant


@click.group("audit")
def audit_group() -> None:
    """The audit log: every change of state, hash-chained, with signed checkpoints."""


@audit_group.command("log")
@click.option("--since", metavar="DATE|DURATION", help="Entries from then on (2026-12-01, 7d).")
@click.option("--actor", help="Entries by this actor (an OS user, serve, acme:<account>).")
@click.option("--serial", help="Entries about this certificate (hex serial).")
@json_option
@click.pass_obj
def log_command(
    app: AppContext, since: str | None, actor: str | None, serial: str | None, as_json: bool
) -> None:
    """Show the audit log, oldest first."""
    from privca.authority import CertificateAuthority

    start, hex_serial = _since(since), _serial(serial)
    with CertificateAuthority.open(app.home_path) as ca, ca.inventory.audit_snapshot() as log:
        entries = log.entries(since=start, actor=actor, serial=hex_serial)
        if as_json:
            from privca.auditing import entry_document

            print_json_array(entry_document(e) for e in entries)
            return
        rows = (
            (
                str(e.seq),
                e.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                printable(e.actor, 60),
                e.action,
                e.serial or "",
                printable(e.detail, 200),
            )
            for e in entries
        )
        print_table("Audit log", ["seq", "at", "actor", "action", "serial", "detail"], rows)


@audit_group.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint file kept elsewhere to check the log against (repeatable).",
)
@json_option
@click.pass_obj
def verify_command(app: AppContext, checkpoint_files: tuple[Path, ...], as_json: bool) -> None:
    """Recompute the chain, check the checkpoints and the inventory against the log.

    Exit 0 when intact; 1 naming the first entry altered, deleted or reordered, the
    checkpoint the log contradicts (or a revoked issuing CA's key leaves unproven), or
    the certificate row the log does not explain."""
    from privca.audit.verify import verify_audit
    from privca.authority import CertificateAuthority
    from privca.home import read_input_file

    given = [(str(p), read_input_file(p, "checkpoint file")) for p in checkpoint_files]
    with CertificateAuthority.open(app.home_path) as ca:
        verdict = verify_audit(ca, given)
    decide_exit(0 if verdict.intact else 1)
    if as_json:
        print_json(verdict.document())
    elif verdict.intact:
        note(
            f"audit log intact: {verdict.entries} entries, head {verdict.head[:16]}…, "
            f"{verdict.checkpoints} checkpoint(s), {verdict.certificates} certificate(s) "
            "cross-checked",
            app.quiet,
        )
    else:
        state = "NOT PROVEN" if verdict.unproven else "TAMPERED"
        click.echo(f"privca: audit log {state}: {printable(verdict.problem or '', 400)}", err=True)
    if not verdict.intact:
        sys.exit(1)


@audit_group.command("checkpoint")
@passphrase_file_option("Read the passphrase of the CA keys (the audit key shares it).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the checkpoint here (it is always kept and published in the home).",
)
@json_option
@click.pass_obj
def checkpoint_command(
    app: AppContext, passphrase_file: Path | None, out: Path | None, as_json: bool
) -> None:
    """Sign a checkpoint (entry count, head hash, time) with the audit key."""
    from privca.home import atomic_write

    if out is not None:
        # Before the checkpoint is signed and kept (and an audit key made on first need).
        check_out_directory(out.parent)
        check_outputs_free([out], force=True)
    with open_authority(app, passphrase_file) as ca:
        checkpoint = ca.audit_checkpoint()
        published = ca.home.audit_checkpoint
    if out is not None:
        make_out_directory(out.parent, private=False)
        atomic_write(out, checkpoint.text().encode(), 0o644)
    if as_json:
        print_json({"entries": checkpoint.entries, "head": checkpoint.head, "file": str(published)})
        return
    note(f"checkpoint: {checkpoint.entries} entries, head {checkpoint.head}", app.quiet)
    note(printable(f"  published: {published}"), app.quiet)
    if out is not None:
        # The copy the reader asked for is the one meant to leave the CA: say where it is.
        note(printable(f"  copy:      {out}"), app.quiet)


@audit_group.command("export")
@click.option("--since", required=True, metavar="DATE|DURATION", help="Entries from then on.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The export to write; its signature goes to OUT.p7s.",
)
@passphrase_file_option("Read the passphrase of the CA keys (the audit key shares it).")
@click.pass_obj
def export_command(app: AppContext, since: str, out: Path, passphrase_file: Path | None) -> None:
    """Write the entries since DATE and the certificates they name as signed JSON: OUT and
    its detached CMS signature OUT.p7s (`openssl cms -verify -binary` checks it)."""
    from privca.home import atomic_write_many

    start = _since(since)
    if start is None:
        raise InputError("--since is required")
    signature_file = out.with_name(out.name + ".p7s")
    # Before an audit key is made on first need, and the export is signed.
    check_out_directory(out.parent)
    check_outputs_free([out, signature_file], force=True)
    with open_authority(app, passphrase_file) as ca:
        data, signature = ca.audit_export(start)
    make_out_directory(out.parent, private=False)
    atomic_write_many([(out, data, 0o644), (signature_file, signature, 0o644)])
    note(f"export:    {out}", app.quiet)
    note(f"signature: {signature_file}", app.quiet)


@audit_group.command("verify-export")
@click.argument("export_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The detached signature (default: EXPORT_FILE.p7s).",
)
@click.option(
    "--root",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The root(s) to trust (default: this home's roots).",
)
@click.option(
    "--crl",
    "crl_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A CRL of the root (repeatable): the issuing CAs it revoked (default with no "
    "--root: the ones this home revoked).",
)
@json_option
@click.pass_obj
def verify_export_command(
    app: AppContext,
    export_file: Path,
    signature: Path | None,
    root: Path | None,
    crl_files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Check an export: its signature (by an audit key our root vouches for, under an
    issuing CA not revoked for a compromise, nor before the export), every entry's hash
    and link, every certificate against its entry. Exit 1 if it fails."""
    from privca.auditing import IssuerRevocation, check_export, crl_revocations, read_roots_file
    from privca.authority import CertificateAuthority
    from privca.errors import CheckFailed
    from privca.home import read_input_file

    limit = 1 << 31
    data = read_input_file(export_file, "export file", limit)
    signature_file = signature or export_file.with_name(export_file.name + ".p7s")
    cms = read_input_file(signature_file, "signature file")
    revocations: dict[int, IssuerRevocation] = {}
    if root is not None:
        roots = read_roots_file(root)
    else:
        with CertificateAuthority.open(app.home_path) as ca:
            roots = [r.certificate for r in ca.registry.roots]
            revocations = {
                a.serial: IssuerRevocation(a.revocation_reason or "", a.revoked_at)
                for a in ca.registry.authorities
                if a.revoked_at is not None
            }
    for path in crl_files:
        # Stated as printable: a file name is the user's, but never echoed raw.
        source = f"CRL file '{printable(str(path), 200)}'"
        revocations |= crl_revocations(read_input_file(path, "CRL file"), roots, source)
    try:
        summary = check_export(data, cms, roots, str(export_file), revocations)
    except CheckFailed as exc:
        # The message may quote the export's own text (its signer's name): never raw.
        click.echo(f"privca: export does NOT verify: {printable(exc.message)}", err=True)
        sys.exit(1)
    if as_json:
        print_json(
            {
                "verified": True,
                "entries": summary.entries,
                "certificates": summary.certificates,
                "since": summary.since,
                "first_seq": summary.first_seq,
                "last_seq": summary.last_seq,
                "signer": summary.signer,
            }
        )
        return
    note(
        printable(
            f"export verified: {summary.entries} entries "
            f"(seq {summary.first_seq}..{summary.last_seq}), {summary.certificates} "
            f"certificate(s), signed by {summary.signer}"
        ),
        app.quiet,
    )
