"""Store URLs as operators give them: checked before anything else happens, and never
carrying a password (a URL on a command line is visible in `ps`; privca.toml keeps it)."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

import sqlalchemy as sa

from privca._text import printable
from privca.errors import InputError

STORE_DRIVERS = ("sqlite", "postgresql", "postgresql+psycopg")
# A query key as written, before percent-decoding: `pass%77ord` is SQLAlchemy's `password`.
_PARAMETER = re.compile(r"[?&;]([^=&?;#]*)=")
_USERNAME = re.compile(r"[^:@/?#]*")
# Also the hint of a store that asks for a password at open, where most commands have no
# --store-password-file: the file then comes from privca.toml.
PASSWORD_HINT = (
    "put the password in ~/.pgpass (or the file $PGPASSFILE names), in "
    "$PRIVCA_STORE_PASSWORD, or in a file given with --store-password-file (init, restore; "
    "kept in privca.toml as [store] password_file)"
)


def check_store_url(text: str) -> str:
    """A store URL as given, refused (InputError, exit 2) when malformed or when it carries
    a password: a URL on a command line is visible in `ps`, and privca.toml keeps it."""
    text = text.strip()
    shown = printable(hide_passwords(text), 200)
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
    if url.password is not None or any(_is_password_key(key) for key in url.query):
        raise InputError(f"store URL '{shown}' carries a password", PASSWORD_HINT)
    if port is not None and not 0 < port < 65536:
        raise InputError(f"store URL '{shown}' has port {port}, outside 1-65535")
    if url.drivername != "sqlite" and not url.database:
        raise InputError(
            f"store URL '{shown}' names no database", "e.g. postgresql://privca@db/privca"
        )
    return text


def _is_password_key(key: str) -> bool:
    """`password` in any case, and libpq's `sslpassword`: either is a secret on argv."""
    return "password" in unquote_plus(key).lower()


def hide_passwords(text: str) -> str:
    """`text`, a store URL however malformed, with every form of a password hidden, for
    messages. Stricter than parsing it would be: a password may hold '/', ':', '?' or '@'
    (where a parser and the operator disagree about where it ends), so everything between
    the username and the last '@' is hidden, and everything after a password parameter
    (its key in any case or percent-encoded), whatever the separators in its value."""
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    userinfo, at, host_and_rest = rest.rpartition("@")
    if at and ":" in userinfo:
        username = _USERNAME.match(userinfo)
        rest = f"{username.group() if username else ''}:***@{host_and_rest}"
    for parameter in _PARAMETER.finditer(rest):
        if _is_password_key(parameter.group(1)):
            rest = rest[: parameter.end()] + "***"
            break
    return scheme + separator + rest


def redact(url: str) -> str:
    """`url` with any password hidden, for messages."""
    return printable(hide_passwords(url), 200)


__all__ = ["PASSWORD_HINT", "STORE_DRIVERS", "check_store_url", "hide_passwords", "redact"]
