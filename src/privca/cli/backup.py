"""`privca backup [--out FILE]`, `privca backup verify FILE`, `privca restore FILE --home DIR`."""

from __future__ import annotations

import contextlib
import datetime as dt
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca._text import printable
from privca.cli.main import AppContext
from privca.cli.options import json_option, store_options
from privca.cli.render import note, print_json, warn
from privca.cli.secrets import passphrase_file_option

if TYPE_CHECKING:
    from privca.backup.restore import RestoreResult
    from privca.backup.snapshot import StoreSummary


class _Terminated(BaseException):
    """A signal that ends the process, raised where the process is, so that the
    clean-up on the way out runs (BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def cleaned_up_when_terminated() -> Iterator[None]:
    """SIGTERM and SIGHUP (systemd stopping a unit, timeout(1), a closed terminal) end
    the block through its clean-up, as Ctrl-C does, then end the process by that signal
    as it would have: killed outright, a restore left its staging directory, the CA's
    keys in it, beside the target. SIGKILL cannot be caught (backup/restore.py removes
    what it leaves)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and privca's CLI runs there
        return

    def terminate(signum: int, _frame: object) -> None:
        raise _Terminated(signum)

    caught = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {signum: signal.signal(signum, terminate) for signum in caught}
    try:
        yield
    except _Terminated as exc:
        _restore_handlers(previous)
        signal.signal(exc.signum, signal.SIG_DFL)
        signal.raise_signal(exc.signum)
        raise  # reached only where the signal does not end the process
    finally:
        _restore_handlers(previous)


def _restore_handlers(previous: dict[signal.Signals, Any]) -> None:
    for signum, handler in previous.items():
        # None: a handler set outside Python, which cannot be put back; the default is.
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _age(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    if seconds < 172800:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"


def _summary_lines(summary: StoreSummary) -> list[str]:
    lines = []
    for authority in summary.authorities:
        state = "active" if authority.active else "retired"
        number = summary.crl_numbers.get(authority.id)
        crl = f", last CRL number {number}" if number is not None else ""
        lines.append(
            f"  {authority.role} CA '{authority.common_name}' ({state}, serial "
            f"{authority.serial}, until {authority.not_after:%Y-%m-%d}{crl})"
        )
    newest = f"{summary.newest_record:%Y-%m-%d %H:%M:%S}Z" if summary.newest_record else "none"
    lines.append(f"  certificates: {summary.certificates}, newest record: {newest}")
    return lines


def _restore_document(result: RestoreResult) -> dict[str, Any]:
    return {
        "home": str(result.home),
        "created_at": result.manifest.document()["created_at"],
        "age_seconds": int(result.age.total_seconds()),
        "store": result.store_url or "sqlite",
        "keys": result.manifest.keys,
        "summary": result.summary.document(),
    }


@click.group("backup", invoke_without_command=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write (mode 0600, atomically), e.g. privca-$(date +%F).tar.gz.",
)
@click.option(
    "--exclude-keys",
    is_flag=True,
    help="Leave private/ (CA key files, eab.key) out: for copies kept apart from the keys.",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@json_option
@click.pass_context
def backup_group(
    ctx: click.Context, out: Path | None, exclude_keys: bool, force: bool, as_json: bool
) -> None:
    """Write one archive of the CA (store snapshot, settings, certificates, CRLs, encrypted
    keys) while it keeps working. `privca backup verify FILE` proves an archive restores."""
    if ctx.invoked_subcommand is not None:
        if out is not None or exclude_keys or force:
            raise click.UsageError("--out, --exclude-keys and --force go without a subcommand")
        return
    if out is None:
        raise click.UsageError("missing option '--out' (the archive to write)")
    from privca._time import utcnow
    from privca.backup.create import write_backup

    app: AppContext = ctx.obj
    result = write_backup(app.home_path, out, utcnow(), exclude_keys=exclude_keys, force=force)
    manifest = result.manifest
    if as_json:
        print_json({"path": str(result.path), "size": result.size, **manifest.document()})
        return
    click.echo(f"Wrote {result.path} ({result.size} bytes, {len(manifest.members)} files)")
    for role_line in (
        f"  keys included: {', '.join(manifest.keys.get('included', [])) or 'none'}",
        *(
            f"  key not included ({k}): {', '.join(v)}"
            for k, v in manifest.keys.items()
            if k != "included"
        ),
    ):
        click.echo(role_line)
    if "hsm" in manifest.keys:
        note(
            "HSM keys are referenced, not copied: back up the token as its vendor says.", app.quiet
        )
    if exclude_keys:
        note(
            "Keys left out: keep a copy of private/ apart, or the CA cannot sign again.", app.quiet
        )
    note(f"Check it restores: privca backup verify {result.path}", app.quiet)


@backup_group.command("verify")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--check-keys",
    is_flag=True,
    help="Also decrypt every CA key file in the archive (in memory) and match it to its "
    "certificate: proves the passphrase you hold opens this backup.",
)
@passphrase_file_option("With --check-keys: read the CA key passphrase from this file.")
@json_option
@click.pass_obj
def verify_command(
    app: AppContext,
    archive: Path,
    check_keys: bool,
    passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Check an archive's hashes, restore it into a temporary home, migrate it, run doctor
    there and check every certificate against its CA. Exit 1 with the first problem."""
    from privca._time import utcnow
    from privca.backup.verify import verify_backup
    from privca.cli.secrets import existing_passphrase

    if passphrase_file is not None and not check_keys:
        raise click.UsageError("--passphrase-file goes with --check-keys")
    passphrase = existing_passphrase(passphrase_file) if check_keys else None
    with cleaned_up_when_terminated():
        result = verify_backup(archive, utcnow(), passphrase=passphrase)
    restored = result.restored
    if as_json:
        document = _restore_document(restored)
        document.pop("home")
        document["certificates_verified"] = result.certificates_checked
        document["keys_verified"] = list(result.keys_checked)
        document["findings"] = [f.document() for f in result.findings]
        print_json(document)
        return
    _show(
        f"{archive}: OK, a backup of {restored.manifest.created_at:%Y-%m-%d %H:%M:%S}Z "
        f"({_age(restored.age)} old), privca {restored.manifest.privca_version}"
    )
    for line in _summary_lines(restored.summary):
        _show(line)
    _show(f"  every certificate verifies against its CA ({result.certificates_checked})")
    if result.keys_checked:
        _show(f"  keys open and match their CAs: {', '.join(result.keys_checked)}")
    for finding in result.findings:
        _show(f"  doctor [{finding.severity}] {finding.message}")
    if not restored.manifest.keys_complete:
        missing = [
            *restored.manifest.keys.get("excluded", []),
            *restored.manifest.keys.get("offline", []),
        ]
        _show(f"  not in the archive: {', '.join(missing)}")


def _show(line: str) -> None:
    """A line of what an archive says (names, versions, findings): its text comes from the
    archive, which anyone may have made, so it is never printed raw."""
    click.echo(printable(line))


@click.command("restore")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--home",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="New CA home to create (must not exist, or be empty). Default: the global --home.",
)
@store_options
@json_option
@click.pass_obj
def restore_command(
    app: AppContext,
    archive: Path,
    target: Path | None,
    store_url: str,
    store_password_file: Path | None,
    as_json: bool,
) -> None:
    """Bring a CA back from a `privca backup` archive into a new home; --store-url loads
    its store into an empty PostgreSQL database instead of SQLite in the home."""
    from privca._time import utcnow
    from privca.backup.restore import restore
    from privca.settings import Settings

    password_file = str(store_password_file.absolute()) if store_password_file else ""
    # The password rule of privca.toml ($PRIVCA_STORE_PASSWORD, else the file, else libpq's).
    store = Settings(name="", store_url=store_url, store_password_file=password_file)
    with cleaned_up_when_terminated():
        result = restore(
            archive,
            target or app.home_path,
            utcnow(),
            store_url=store_url,
            store_password=store.store_password() if store_url else None,
            store_password_file=password_file,
        )
    if as_json:
        print_json(_restore_document(result))
        return
    manifest = result.manifest
    _show(
        f"Restored the CA into {result.home} from a backup of "
        f"{manifest.created_at:%Y-%m-%d %H:%M:%S}Z ({_age(result.age)} old)"
    )
    for line in _summary_lines(result.summary):
        _show(line)
    missing = [*manifest.keys.get("excluded", []), *manifest.keys.get("offline", [])]
    if missing:
        warn(
            printable(
                f"not in the backup, copy into {result.home}/private/ yourself: "
                f"{', '.join(missing)}"
            )
        )
    if manifest.keys.get("hsm"):
        note(
            printable(f"  HSM keys (must be on the token): {', '.join(manifest.keys['hsm'])}"),
            app.quiet,
        )
    # The restored home is rarely $PRIVCA_HOME yet: a bare `privca crl` (or revoke, scan)
    # would act on whichever CA that names (often the old one), so each command names it.
    privca = f"privca --home {shlex.quote(str(result.home))}"
    note(
        printable(
            f"May be missing: everything after {manifest.created_at:%Y-%m-%d %H:%M:%S}Z "
            "(certificates issued, revocations, ACME accounts and orders). Revoke again what "
            f"was revoked since ({privca} revoke SERIAL), run `{privca} scan HOST:PORT` on your "
            f"services to find certificates issued since, and publish a CRL now: {privca} crl "
            "(its number continues above any the lost CA published)."
        ),
        app.quiet,
    )


__all__ = ["backup_group", "restore_command", "verify_command"]
