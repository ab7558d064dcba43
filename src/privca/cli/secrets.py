"""Where secrets come from: a file, an environment variable, or a prompt. Never argv."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from privca.errors import InputError

PASSPHRASE_ENV = "PRIVCA_PASSPHRASE"

_Command = TypeVar("_Command", bound=Callable[..., Any])


def passphrase_file_option(
    help_text: str = "Read the CA key passphrase from this file.",
) -> Callable[[_Command], _Command]:
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
    minimum: int = 0,
) -> bytes:
    """A secret from a file, else an environment variable, else a prompt on a terminal.

    A new secret (`confirm`) is typed twice; one shorter than `minimum` is refused at
    once, before the confirmation is asked for."""
    if path is not None:
        from privca.home import read_secret_file

        return read_secret_file(path, "passphrase file")
    env = _environment_bytes(env_name)
    if env:
        return env
    if not sys.stdin.isatty():
        raise InputError(f"{missing} and no terminal to ask on", hint)
    if confirm:
        return _ask_new_secret(prompt, minimum)
    return click.prompt(prompt, hide_input=True, err=True).encode()


def _environment_bytes(name: str) -> bytes | None:
    """The variable's bytes as the shell set them: a passphrase need not be UTF-8 (PBES2
    takes bytes), and os.environ's text holds what is not as lone surrogates, which
    str.encode refuses."""
    environb = getattr(os, "environb", None)  # POSIX; Windows keeps the environment as text
    if environb is not None:
        value: bytes | None = environb.get(name.encode())
        return value
    text = os.environ.get(name)
    return text.encode("utf-8", "surrogatepass") if text is not None else None


PROMPT_ATTEMPTS = 3


def _ask_new_secret(prompt: str, minimum: int) -> bytes:
    """Ask for a new secret until it is long enough and typed the same twice, at most
    PROMPT_ATTEMPTS times: a typo costs a retry, not the whole command."""
    for attempt in range(1, PROMPT_ATTEMPTS + 1):
        left = PROMPT_ATTEMPTS - attempt
        again = f"; try again ({left} attempt{'s' if left != 1 else ''} left)" if left else ""
        secret = click.prompt(prompt, hide_input=True, err=True).encode()
        if len(secret) < minimum:
            click.echo(f"privca: it is shorter than {minimum} characters{again}.", err=True)
            continue
        repeated = click.prompt("Repeat for confirmation", hide_input=True, err=True).encode()
        if repeated == secret:
            return secret
        click.echo(f"privca: the two entries differ{again}.", err=True)
    raise InputError(
        f"no usable {prompt[0].lower() + prompt[1:]} after {PROMPT_ATTEMPTS} attempts",
        "nothing was changed; run the command again"
        + (f" with at least {minimum} characters" if minimum else ""),
    )


def new_passphrase(
    path: Path | None, what: str = "CA key passphrase", *, minimum: int | None = None
) -> bytes:
    """A passphrase for keys being created: file, env, or a prompt asked twice.

    `minimum` defaults to the rule for CA key passphrases; an HSM PIN passes 0."""
    from privca.authority import MIN_PASSPHRASE_LENGTH

    return read_secret(
        path,
        PASSPHRASE_ENV,
        missing=f"no {what.removeprefix('CA key ')} for the new CA keys",
        hint=f"use --passphrase-file FILE or ${PASSPHRASE_ENV}, or --no-passphrase",
        prompt=f"New {what}",
        confirm=True,
        minimum=MIN_PASSPHRASE_LENGTH if minimum is None else minimum,
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
