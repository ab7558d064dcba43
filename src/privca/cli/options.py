"""Options and helpers shared by several commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from privca.keys.types import KeyType
from privca.policy import DEFAULT_LEAF_KEY_TYPES
from privca.x509.profiles import LEAF_PROFILES

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority
    from privca.cli.main import AppContext

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

# Choices come from the one definition of each (command modules load cryptography anyway;
# `privca --help` never imports this module).
KEY_TYPES = [key_type.value for key_type in KeyType]
# Services get what the default policy certifies. Ed25519 is left out on purpose: browsers
# and NSS do not accept Ed25519 TLS certificates, so a key privca offers would not work in
# Firefox or Chrome. CA keys may still be Ed25519 (init, rotate issuing).
SERVICE_KEY_TYPES = [key_type.value for key_type in DEFAULT_LEAF_KEY_TYPES]
LEAF_PROFILE_NAMES = list(LEAF_PROFILES)


def key_type_option(
    default: str | None, help_text: str, *, for_services: bool = True
) -> Callable[[Any], Any]:
    return click.option(
        "--key-type",
        type=click.Choice(SERVICE_KEY_TYPES if for_services else KEY_TYPES, case_sensitive=False),
        default=default,
        show_default=default is not None,
        help=help_text,
    )


profile_option = click.option(
    "--profile",
    type=click.Choice(LEAF_PROFILE_NAMES),
    default="server-client",
    show_default=True,
    help="Certificate profile: server, client, or both (internal mTLS).",
)

issuer_option = click.option(
    "--issuer",
    default=None,
    metavar="NAME",
    help="The named issuer that signs (default: the default issuer; see privca issuer list).",
)

days_option = click.option(
    "--days",
    type=int,
    default=None,
    help="Validity in days (default 730, shortened to the issuing CA's remaining life). "
    "More than the policy's max_days (825 unless privca.toml says otherwise) is refused.",
)


def store_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--store-url and --store-password-file, for the commands that establish a CA."""
    function = click.option(
        "--store-password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="File with the PostgreSQL password (recorded in privca.toml as a path; "
        "else $PRIVCA_STORE_PASSWORD, else ~/.pgpass or $PGPASSFILE).",
    )(function)
    return click.option(
        "--store-url",
        default="",
        callback=_checked_store_url,
        help="PostgreSQL URL without a password, postgresql://USER@HOST[:PORT]/DB "
        "(default: SQLite in the home).",
    )(function)


def _checked_store_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Refused before anything else happens (a passphrase prompt, key generation)."""
    from privca.store.address import check_store_url

    return check_store_url(value) if value else ""


class Seconds(click.FloatRange):
    """Seconds between `low` and `high`: FloatRange lets nan through (every comparison with
    it is false), which then reached socket timeouts as an internal error."""

    name = "seconds"

    def __init__(self, low: float, high: float) -> None:
        super().__init__(min=low, max=high)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


# Large enough for any real page or count, small enough for every store's integer columns
# (a bigger one was an internal error, exit 70).
MAX_COUNT = 2**31 - 1


def check_outputs_free(paths: Iterable[Path], force: bool) -> None:
    """Refuse, before any work is done, to replace files unless --force was given, and a
    directory where a file goes even with it (the write would fail after the certificate
    was recorded, with some of its files written and others not). Messages carry paths
    as they are: report_error escapes what it prints."""
    from privca.errors import AlreadyExists, InputError

    for path in paths:
        if path.is_dir():
            raise InputError(
                f"'{path}' is a directory, where a file is to be written",
                "move the directory away, or choose another --out",
            )
        # A link counts even when it leads nowhere: replacing it is a change too.
        if not force and (path.exists() or path.is_symlink()):
            raise AlreadyExists(
                f"'{path}' already exists",
                "use --force to replace it, or another --out",
            )


def open_authority(app: AppContext, passphrase_file: Path | None = None) -> CertificateAuthority:
    from privca.authority import CertificateAuthority
    from privca.cli.secrets import existing_passphrase

    return CertificateAuthority.open(app.home_path, existing_passphrase(passphrase_file))


def record_document(ca: CertificateAuthority, record: Any, now: Any) -> dict[str, Any]:
    """The JSON shape of one inventory entry (list and show)."""
    from privca._time import days_left, isoformat
    from privca.x509.encoding import serial_hex

    issuer = ca.issuer_of(record)
    # A scheduled revocation that is due is one (status says revoked): its date and
    # reason are the schedule's, as the CRL and OCSP give them, written yet or not.
    revocation = record.revocation_at(now)
    return {
        "serial": serial_hex(record.serial),
        "names": list(record.names),
        "profile": record.profile,
        "subject": record.subject,
        "issuer": issuer.common_name if issuer else None,
        "issuer_name": ca.registry.issuer_name_of(issuer),
        "not_before": isoformat(record.not_before),
        "not_after": isoformat(record.not_after),
        "days_left": days_left(record.not_after, now),
        "status": record.status_at(now),
        "revoked_at": isoformat(revocation.revoked_at) if revocation else None,
        "revocation_reason": revocation.reason if revocation else None,
        # The certificate's own status stays its own (a CRL lists it by itself); that its
        # CA was revoked (`issuer revoke`, the root's CRL) is said beside it.
        "issuer_revoked_at": isoformat(issuer.revoked_at) if issuer and issuer.revoked_at else None,
        "issuer_revocation_reason": issuer.revocation_reason if issuer else None,
    }


def check_out_directory(directory: Path) -> None:
    """Before any work: `directory` is a directory, or can be made (its nearest existing
    parent is a writable directory). Errors name the real path, never a temporary file."""
    import os

    from privca.errors import EnvironmentRefused, InputError

    if os.path.islink(directory) and not directory.exists():
        raise InputError(
            f"--out '{directory}' is a symbolic link to nothing",
            "point it at a directory, remove it, or choose another --out",
        )
    if directory.exists():
        if not directory.is_dir():
            raise InputError(
                f"--out '{directory}' exists and is not a directory", "choose another --out"
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise EnvironmentRefused(
                f"cannot write into '{directory}': permission denied",
                "choose another --out, or fix the directory's permissions",
            )
        return
    parent = directory.absolute().parent
    while not parent.exists():
        if os.path.islink(parent):
            raise InputError(
                f"--out '{directory}' cannot be created: '{parent}' is a symbolic link to nothing",
                "point it at a directory, remove it, or choose another --out",
            )
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--out '{directory}' cannot be created: '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EnvironmentRefused(
            f"cannot create '{directory}': '{parent}' is not writable",
            "choose another --out, or create the directory first",
        )


def make_out_directory(directory: Path, *, private: bool) -> None:
    """Create a missing output directory, 0700 when it will hold private keys (its
    missing parents get the usual 0755 less the umask). An existing one is left as it is."""
    from privca.errors import EnvironmentRefused, InputError

    if directory.is_dir():
        return
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700 if private else 0o755, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"--out '{directory}' cannot be created: {exc.strerror}") from exc
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot create '{directory}': {exc.strerror}",
            "choose another --out, or create the directory first",
        ) from exc
    if private:
        directory.chmod(0o700)  # mkdir's mode is masked by the umask; 0700 is meant
