"""Store URLs as operators give them: checked before anything else happens, and never
carrying a password (a URL on a command line is visible in `ps`; privca.toml keeps it)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from privca._text import printable
from privca.errors import InputError

STORE_DRIVERS = ("sqlite", "postgresql", "postgresql+psycopg")
_USERINFO = re.compile(r"//([^/@:]*):[^/@]*@")
_PASSWORD_PARAMETER = re.compile(r"(password=)[^&]*", re.IGNORECASE)
PASSWORD_HINT = (
    "put the password in ~/.pgpass (or the file $PGPASSFILE names), in "
    "$PRIVCA_STORE_PASSWORD, or in a file given with --store-password-file"
)


def check_store_url(text: str) -> str:
    """A store URL as given, refused (InputError, exit 2) when malformed or when it carries
    a password: a URL on a command line is visible in `ps`, and privca.toml keeps it."""
    text = text.strip()
    shown = printable(_PASSWORD_PARAMETER.sub(r"\1***", _USERINFO.sub(r"//\1:***@", text)), 200)
    try:
        url = sa.engine.make_url(text)
        port = url.port
    except (sa.exc.ArgumentError, ValueError) as exc:
        reason = "invalid port" if "int()" in str(exc) else "not a URL"
        raise InputError(
            f"store URL '{shown}' is malformed ({reason})",
            "use postgresql://USER@HOST[:PORT]/DATABASE",
        ) from None
    if url.drivername not in STORE_DRIVERS:
        raise InputError(
            f"store URL '{shown}' is neither PostgreSQL nor SQLite",
            "use postgresql://USER@HOST[:PORT]/DATABASE",
        )
    if url.password is not None or "password" in url.query:
        raise InputError(f"store URL '{shown}' carries a password", PASSWORD_HINT)
    if port is not None and not 0 < port < 65536:
        raise InputError(f"store URL '{shown}' has port {port}, outside 1-65535")
    if url.drivername != "sqlite" and not url.database:
        raise InputError(
            f"store URL '{shown}' names no database", "e.g. postgresql://privca@db/privca"
        )
    return text


def redact(url: str) -> str:
    """`url` with any password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid>"


__all__ = ["PASSWORD_HINT", "STORE_DRIVERS", "check_store_url", "redact"]
