"""Who is acting: the actor the audit log (store/auditlog.py) names in each entry.

The OS user for the CLI (the default), `serve` for the server's own scheduler, and
`acme:<account id>` (with ` eab:<key id>` when an EAB key created the account) for an
ACME request. A context variable, so each request thread and task names its own."""

from __future__ import annotations

import contextlib
import contextvars
import os
import pwd
from collections.abc import Iterator

_ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("privca_actor", default=None)


def os_user() -> str:
    """The user the kernel runs this process as (not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def current_actor() -> str:
    actor = _ACTOR.get()
    return actor if actor is not None else os_user()


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Entries appended inside the block name `actor`."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def set_actor(actor: str) -> None:
    """Name `actor` for the rest of this context (a server process and the tasks and
    threads it starts afterwards)."""
    _ACTOR.set(actor)


def acme_actor(account_id: str | None, eab_kid: str | None = None) -> str:
    """An ACME request's actor: its account (and the EAB key that made the account)."""
    actor = f"acme:{account_id}" if account_id else "acme:certificate-key"
    return f"{actor} eab:{eab_kid}" if eab_kid else actor


__all__ = ["acme_actor", "acting_as", "current_actor", "os_user", "set_actor"]
