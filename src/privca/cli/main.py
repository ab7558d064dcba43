"""The `privca` command group: global options, lazy subcommands, and the one error boundary.

Subcommand modules are imported only when their command runs, so `privca --help` and
`privca --version` do not pay for importing cryptography or SQLAlchemy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from privca import __version__
from privca._text import printable
from privca.errors import PrivcaError

# command name -> ("module:attribute" under privca.cli, one-line help for `privca --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("ca:init_command", "Establish a new CA (root + issuing CA) in the home."),
    "quickstart": ("ca:quickstart_command", "Make a demo CA, issue and verify a localhost cert."),
    "export": ("ca:export_command", "Print or write the root or the chain for distribution."),
    "issue": ("issue:issue_command", "Generate a key and issue a certificate for names."),
    "csr": ("issue:csr_command", "Make a key and CSR on a service host (no CA needed)."),
    "sign": ("issue:sign_command", "Sign CSRs, taking only their public key and names."),
    "verify": ("verify:verify_command", "Verify a certificate: chain, name, key, expiry, status."),
    "inspect": (
        "inspect:inspect_command",
        "Show what a certificate, chain, CSR or CRL file says (no CA needed).",
    ),
    "list": ("inventory:list_command", "List the certificates in the inventory."),
    "show": ("inventory:show_command", "Show one certificate of the inventory."),
    "tidy": ("inventory:tidy_command", "Drop long-expired certificates, keeping tombstones."),
    "serve": ("serve:serve_command", "Serve CRL, OCSP, CA certificates and metrics over HTTPS."),
    "trust": ("trust:trust_group", "Install, check and remove the CA in client trust stores."),
    "revoke": ("lifecycle:revoke_command", "Revoke a certificate by serial or name."),
    "crl": ("lifecycle:crl_command", "Publish a new CRL for each issuing CA."),
    "renew": ("lifecycle:renew_command", "Re-issue a certificate: same names, new serial."),
    "rotate": ("lifecycle:rotate_group", "Replace the issuing CA, or roll over the root."),
    "issuer": ("issuer:issuer_group", "Named issuing CAs under one root (create, list, ...)."),
    "needs-renewal": (
        "lifecycle:needs_renewal_command",
        "Exit 0 if a certificate file is due for renewal (for ExecCondition=).",
    ),
    "check": ("lifecycle:check_command", "Expiry of certificates, CAs and CRLs (nagios/prom)."),
    "scan": ("scan:scan_command", "Connect to TLS services and report what they serve."),
    "acme": ("acme:acme_group", "Manage ACME accounts, orders and EAB keys."),
    "import": ("adopt:import_group", "Adopt a CA built with OpenSSL or easy-rsa."),
    "doctor": ("adopt:doctor_command", "Find weaknesses in the CA and its certificates."),
    "backup": ("backup:backup_group", "Write one archive of the CA while it works; verify one."),
    "restore": ("backup:restore_command", "Bring a CA back from a backup archive into a new home."),
    "audit": ("audit:audit_group", "Show, verify, checkpoint and export the audit log."),
}


@dataclass
class AppContext:
    """What every command receives: the CA home it works on and how chatty to be."""

    home_path: Path
    verbosity: int = 0

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0


class LazyGroup(click.Group):
    def __init__(
        self, *args: object, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: object
    ):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][1]) for name in sorted(self.lazy)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attribute = self.lazy[cmd_name][0].split(":")
            module = importlib.import_module(f"privca.cli.{module_name}")
            command: click.Command = getattr(module, attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def _named_command(self, args: Sequence[str]) -> str:
        """The command the raw arguments name ("privca issuer revoke"), for the hint of a
        usage error: click raises some (an option missing its value) before it has a
        context to say which command it was parsing."""
        path = ["privca"]
        command: click.Command = self
        words = iter(args)
        for word in words:
            if word == "--":
                break
            if word.startswith("-"):
                if "=" not in word and _takes_value(command, word):
                    next(words, None)
                continue
            if not isinstance(command, click.Group):
                break
            found = command.get_command(click.Context(command), word)
            if found is None:
                break
            path.append(word)
            command = found
        return " ".join(path)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Report usage errors in privca's one-line form instead of click's usage block
        (as a Nagios plugin's UNKNOWN line when the command line is `check --format
        nagios`)."""
        raw = list(sys.argv[1:] if args is None else args)
        undecodable = _undecodable(raw)
        if undecodable is not None:
            if _asks_for_nagios(raw):
                _nagios_unknown("an argument is not UTF-8 text")
            refuse_undecodable(undecodable)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()  # a reader that went away is noticed here, not at exit
        except click.UsageError as exc:
            command = self._named_command(raw)
            if _asks_for_nagios(raw):
                _nagios_unknown(f"{_click_message(exc)} (see '{command} --help')", escaped=True)
            click.echo(f"privca: error: {_click_message(exc)}", err=True)
            click.echo(f"  hint: see '{command} --help'", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if _asks_for_nagios(raw):
                _nagios_unknown(_click_message(exc), escaped=True)
            click.echo(f"privca: error: {_click_message(exc)}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("privca: aborted", err=True)
            sys.exit(1)
        except BrokenPipeError:
            end_quietly_on_closed_pipe()
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> object:
        from privca.cli.render import decide_exit

        decide_exit(0)  # no verdict yet: an earlier command's (in one process) is not this one's
        try:
            return super().invoke(ctx)
        except PrivcaError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # `privca list | head -1`: the reader has all it wanted. Like other Unix
            # tools, stop writing and end quietly (status 0, not "internal error").
            end_quietly_on_closed_pipe()
        except KeyboardInterrupt:
            click.echo("privca: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # the one place an unexpected bug is reported as a bug
            verbose = isinstance(ctx.obj, AppContext) and ctx.obj.verbosity > 0
            if verbose:
                import traceback

                traceback.print_exc()
            click.echo(
                f"privca: internal error: {type(exc).__name__}: {printable(str(exc), 500)}",
                err=True,
            )
            click.echo(
                "  hint: this is a bug in privca; please report it with the command you ran"
                + ("" if verbose else " and the output of the same command with -v"),
                err=True,
            )
            ctx.exit(70)
        return None


# `check --format`'s choices, here for reading a command line click has not parsed.
CHECK_FORMATS = ("text", "json", "nagios", "prometheus")


def _asks_for_nagios(args: Sequence[str]) -> bool:
    """Whether the command line, as typed, runs `check --format nagios`: read from the
    raw arguments, as click fails before it has parsed them. The last --format with a
    known value decides, as click's last one wins (`--format nagios --format xml` is
    still a Nagios plugin called wrongly)."""
    words = iter(args)
    for word in words:  # the group's options, then the command's name
        if word == "--home":
            next(words, None)
        elif not word.startswith("-"):
            if word != "check":
                return False
            break
    else:
        return False
    chosen = None
    for word in words:
        if word == "--":
            break
        if word == "--format":
            value = next(words, "")
        elif word.startswith("--format="):
            value = word.removeprefix("--format=")
        else:
            continue
        if value.lower() in CHECK_FORMATS:
            chosen = value.lower()
    return chosen == "nagios"


def _takes_value(command: click.Command, option: str) -> bool:
    return any(
        isinstance(param, click.Option)
        and option in param.opts
        and not (param.is_flag or param.count)
        for param in command.params
    )


def _click_message(exc: click.ClickException) -> str:
    """click's message, each character a terminal acts on escaped once: click quotes the
    values it names with repr(), which has escaped some already (a doubled escape printed
    `--bogus\\\\x1b`), and an unknown option or value echoed whole could be 100 KB."""
    return _escaped_once(exc.format_message(), limit=300)


def _nagios_unknown(message: str, escaped: bool = False) -> NoReturn:
    from privca.cli.render import nagios_unknown  # not at start-up: --help stays light

    nagios_unknown(message, escaped)


def _undecodable(args: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 text, or None.

    Python hands over the bytes of such an argument as lone surrogates, which pass every
    check on the way and then fail where text is encoded (a database lookup, a file's
    contents) as an internal error. Refused here, once, for every command."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None


def refuse_undecodable(arg: str) -> None:
    """Exit 2 naming the argument, its undecodable bytes shown as \\xNN."""
    click.echo(f"privca: error: argument '{_bytes_escaped(arg)}' is not UTF-8 text", err=True)
    click.echo(
        "  hint: privca takes names, serials and paths as UTF-8; give the argument "
        "in UTF-8 (or rename the file)",
        err=True,
    )
    sys.exit(2)


def _bytes_escaped(arg: str, limit: int = 80) -> str:
    """`arg` through printable(), each byte that was not UTF-8 (a surrogate U+DC80..U+DCFF,
    as os.fsdecode makes it) shown as the \\xNN byte it was, not as \\udcNN."""
    parts: list[str] = []
    plain = ""
    for ch in arg:
        if "\udc80" <= ch <= "\udcff":
            parts += [printable(plain), f"\\x{ord(ch) - 0xDC00:02x}"]
            plain = ""
        else:
            plain += ch
    shown = "".join([*parts, printable(plain)])
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def report_error(exc: PrivcaError) -> None:
    """The one place errors are printed. Messages quote names from CSRs, ACME requests and
    imported files, so every character a terminal would act on is escaped here."""
    click.echo(f"privca: error: {_escaped_once(exc.message)}", err=True)
    if exc.hint:
        click.echo(f"  hint: {_escaped_once(exc.hint)}", err=True)


def _escaped_once(text: str, limit: int | None = None) -> str:
    """printable(), but a backslash stays one: many messages quote a value already passed
    through printable() (it is theirs to show safely in JSON and logs too), and doubling
    its backslashes printed `subject CN 'a\\\\x07'`. Every control character is still
    escaped; only the backslashes of the text are left as they are."""
    return printable(text, limit).replace("\\\\", "\\")


def end_quietly_on_closed_pipe() -> None:
    """Exit once stdout's reader has gone: 0, or the verdict a checking command decided on
    before printing (render.decide_exit), which a pipe must not lose."""
    from privca.cli.render import decided_exit

    _detach_stdout()
    sys.exit(decided_exit())


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what is still
    buffered cannot fail a second time ("Exception ignored ... BrokenPipeError")."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. an in-process runner)
        pass


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="PRIVCA_HOME",
    help="CA home directory (default: $PRIVCA_HOME, else the platform user data dir).",
)
@click.option("-v", "--verbose", count=True, help="More output; -v shows tracebacks of bugs.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(__version__, "--version", prog_name="privca")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int, quiet: bool) -> None:
    """privca: a private certificate authority for internal services."""
    if home is None:
        from privca.home import default_home

        home = default_home()
    ctx.obj = AppContext(home_path=home, verbosity=-1 if quiet else verbose)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="privca", standalone_mode=True)
    except SystemExit as exc:
        # click's usage errors exit 2 already; keep explicit exit codes (needs-renewal's
        # 1 means "not due" even when its reader stopped reading).
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _detach_stdout()
        raise SystemExit(exc.code) from None


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
