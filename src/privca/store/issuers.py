"""The writes about named issuers: a new issuer with its first issuing CA (all or none),
disabling and enabling one, and choosing the default. Reads are in view.py."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from privca.errors import AlreadyExists, NotFound, PolicyError
from privca.store.authorities import AuthorityWrites, NewAuthorityRow, insert_authorities
from privca.store.database import Change
from privca.store.schema import issuers


@dataclass(frozen=True)
class NewIssuerRow:
    """A named issuer about to be recorded (texts as `IssuerRecord` holds them)."""

    name: str
    permitted: Sequence[str] = ()
    excluded: Sequence[str] = ()
    profiles: Sequence[str] = ()


def _existing(change: Change, name: str) -> tuple[bool, bool]:
    """(disabled, is_default) of issuer `name`; NotFound when there is none."""
    found = change.execute(
        sa.select(issuers.c.disabled, issuers.c.is_default).where(issuers.c.name == name)
    ).first()
    if found is None:
        raise NotFound(f"no issuer named '{name}'", "see privca issuer list")
    return bool(found._mapping["disabled"]), bool(found._mapping["is_default"])


class IssuerWrites(AuthorityWrites):
    """Named issuers, over the Store's database."""

    def add_issuer(self, issuer: NewIssuerRow, first: NewAuthorityRow, now: dt.datetime) -> int:
        """Record a new issuer and its first issuing CA in one transaction; returns the CA's
        id. AlreadyExists when the name is taken (also by a process racing this one)."""
        with self.database.change(now) as change:
            try:
                with change.connection.begin_nested():
                    change.execute(
                        issuers.insert().values(
                            name=issuer.name,
                            disabled=False,
                            is_default=False,
                            permitted=json.dumps(list(issuer.permitted)),
                            excluded=json.dumps(list(issuer.excluded)),
                            profiles=json.dumps(list(issuer.profiles)),
                            created_at=now,
                        )
                    )
            except sa.exc.IntegrityError:
                raise AlreadyExists(
                    f"an issuer named '{issuer.name}' exists", "see privca issuer list"
                ) from None
            change.record("issuer-created", detail=issuer.name)
            return insert_authorities(change, [first], now)[0]

    def set_issuer_disabled(self, name: str, disabled: bool, now: dt.datetime) -> bool:
        """Disable (or enable) an issuer; False when it already was. The default issuer
        cannot be disabled (PolicyError)."""
        with self.database.change(now) as change:
            was_disabled, is_default = _existing(change, name)
            if disabled and is_default:
                raise PolicyError(
                    f"issuer '{name}' is the default issuer and cannot be disabled",
                    "make another issuer the default first: privca issuer default NAME",
                )
            if was_disabled == disabled:
                return False
            change.execute(issuers.update().where(issuers.c.name == name).values(disabled=disabled))
            change.record("issuer-disabled" if disabled else "issuer-enabled", detail=name)
        return True

    def set_default_issuer(self, name: str, now: dt.datetime) -> None:
        """Make `name` the default issuer (exactly one is). A disabled issuer cannot be
        the default (PolicyError)."""
        with self.database.change(now) as change:
            disabled, _ = _existing(change, name)
            if disabled:
                raise PolicyError(
                    f"issuer '{name}' is disabled and cannot be the default",
                    f"enable it first: privca issuer enable {name}",
                )
            change.execute(issuers.update().values(is_default=issuers.c.name == name))
            change.record("issuer-default", detail=name)


__all__ = ["IssuerWrites", "NewIssuerRow"]
