"""--deploy-hook: a command run once the files of a certificate are in place, to reload the
service that uses them. The environment follows certbot's idea (RENEWED_LINEAGE,
RENEWED_DOMAINS) with privca's names:

    PRIVCA_CERT    the certificate file (absolute path)
    PRIVCA_CHAIN   the certificate + issuing CA file, what a server sends
    PRIVCA_KEY     the private key file; empty when there is none next to the certificate
                   (sign: the key stayed on the service host)
    PRIVCA_NAMES   the certificate's names, separated by spaces
    PRIVCA_SERIAL  its serial, hex

A failing hook is reported with its exit status, and privca exits 1: the certificate is
issued and written, so the codes that promise "nothing changed" (2, 3) would be wrong.

The hook inherits privca's environment without privca's own secrets (SECRET_VARIABLES):
it is a reload command, often shared or copied from a how-to, and needs neither the CA
key's passphrase nor the store's password; whatever it logs (`env`, `set -x`) stays clean.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from privca._text import printable
from privca.errors import DeployHookFailed

# Every variable privca reads a secret from (tests/cli/test_renew_files.py finds them all
# in the source, so a new one cannot be forgotten here).
SECRET_VARIABLES = frozenset(
    {
        "PRIVCA_PASSPHRASE",  # the CA key passphrase, or the HSM PIN
        "PRIVCA_STORE_PASSWORD",  # the PostgreSQL store's password
        "PRIVCA_IMPORT_PASSPHRASE",  # import: the passphrase of the keys taken over
        "PRIVCA_P12_PASSPHRASE",  # issue --p12
        "PRIVCA_TRUSTSTORE_PASSWORD",  # trust bundle's PKCS#12 truststore
        "PRIVCA_JAVA_STOREPASS",  # trust install: the Java keystores' password
        "PRIVCA_KEYTOOL_STOREPASS",  # what privca hands keytool (never set in its own env)
        "PGPASSWORD",  # libpq's: the PostgreSQL store's password when set the libpq way
    }
)

deploy_hook_option = click.option(
    "--deploy-hook",
    metavar="CMD",
    default=None,
    help="Run CMD (with sh) once the files are in place, e.g. 'systemctl reload nginx'. "
    "It gets $PRIVCA_CERT, $PRIVCA_CHAIN, $PRIVCA_KEY, $PRIVCA_NAMES and $PRIVCA_SERIAL. "
    "If it fails, privca reports its exit status and exits 1 (the files stay).",
)


@dataclass(frozen=True)
class Deployed:
    """The files of one certificate, as the hook sees them."""

    certificate: Path
    chain: Path
    key: Path | None
    names: Sequence[str]
    serial: str

    def environment(self) -> dict[str, str]:
        key = self.key if self.key is not None and self.key.exists() else None
        return {
            "PRIVCA_CERT": str(self.certificate.absolute()),
            "PRIVCA_CHAIN": str(self.chain.absolute()),
            "PRIVCA_KEY": str(key.absolute()) if key is not None else "",
            "PRIVCA_NAMES": " ".join(self.names),
            "PRIVCA_SERIAL": self.serial,
        }


def _stdout_of_hook() -> Any:
    """The hook's output goes to privca's stderr, so that stdout (--json) stays parseable."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, io.UnsupportedOperation):  # an in-process test runner
        return subprocess.PIPE


def hook_environment(deployed: Deployed) -> dict[str, str]:
    """privca's environment without its secrets, plus the hook's own variables."""
    inherited = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    return {**inherited, **deployed.environment()}


def run_deploy_hook(command: str, deployed: Deployed) -> int:
    """Run the hook for one certificate; its exit status (negative: killed by a signal)."""
    target = _stdout_of_hook()
    done = subprocess.run(
        command,
        shell=True,  # the operator's own command line, run as certbot runs its hooks
        env=hook_environment(deployed),
        stdin=subprocess.DEVNULL,
        stdout=target,
        stderr=subprocess.STDOUT if target == subprocess.PIPE else None,
        check=False,
    )
    if done.stdout:
        click.echo(done.stdout.decode(errors="replace"), err=True, nl=False)
    return done.returncode


def deploy_each(command: str | None, deployments: Sequence[Deployed]) -> list[tuple[Deployed, int]]:
    """Run the hook (when one was given) for each certificate, in order; every exit status."""
    if command is None:
        return []
    return [(deployed, run_deploy_hook(command, deployed)) for deployed in deployments]


def describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    text = f"exited with status {status}"
    if status == 127:
        text += " (command not found)"
    elif status == 126:
        text += " (not executable)"
    return text


def check_deploy_results(command: str | None, results: Sequence[tuple[Deployed, int]]) -> None:
    """Raise DeployHookFailed naming the first failure, once every hook has run."""
    if command is None:
        return
    failed = [(deployed, status) for deployed, status in results if status != 0]
    if not failed:
        return
    deployed, status = failed[0]
    more = f" (and for {len(failed) - 1} more)" if len(failed) > 1 else ""
    raise DeployHookFailed(
        f"the deploy hook {describe_status(status)} for {deployed.certificate}{more}: "
        f"{printable(command, 200)}",
        "the certificate is issued and its files are in place; fix the hook and run it "
        "again by hand",
    )
