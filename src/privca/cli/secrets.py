"""Where secrets come from: a file, an environment variable, or a prompt. Never argv."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from privca.errors import InputError

PASSPHRASE_ENV = "PRIVCA_PASSPHRASE"


def passphrase_file_option(
    help_text: str = "Read the CA key passphrase from this file.",
) -> Callable:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help=help_text + f" Else ${PASSPHRASE_ENV}, else a prompt.",
    )


def read_secret(
    path: Path | None,
    env_name: str,
    *,
    missing: str,
    hint: str,
    prompt: str,
    confirm: bool = False,
) -> bytes:
    """A secret from a file, else an environment variable, else a prompt on a terminal."""
    if path is not None:
        from privca.home import read_secret_file

        return read_secret_file(path, "passphrase file")
    env = os.environ.get(env_name)
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise InputError(f"{missing} and no terminal to ask on", hint)
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True).encode()


def new_passphrase(path: Path | None, what: str = "CA key passphrase") -> bytes:
    """A passphrase for keys being created: file, env, or a prompt asked twice."""
    return read_secret(
        path,
        PASSPHRASE_ENV,
        missing=f"no {what.removeprefix('CA key ')} for the new CA keys",
        hint=f"use --passphrase-file FILE or ${PASSPHRASE_ENV}, or --no-passphrase",
        prompt=f"New {what}",
        confirm=True,
    )


def existing_passphrase(path: Path | None) -> Callable[[], bytes | None]:
    """A passphrase source for an existing key, asked only when the key is actually used."""
    return lambda: read_secret(
        path,
        PASSPHRASE_ENV,
        missing="the CA key is encrypted and there is no passphrase",
        hint=f"use --passphrase-file FILE or ${PASSPHRASE_ENV}",
        prompt="CA key passphrase",
    )
