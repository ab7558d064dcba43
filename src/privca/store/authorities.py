"""CA certificates and their CRL numbers in the inventory (records are never deleted:
old CAs keep answering for what they signed).

The CRLNumber rule lives here (`crl_number_floor`, `following_crl_number`): a new number
is one more than the last one stored, and never less than thisUpdate's seconds since 1970
times 1000. The stored counter keeps numbers growing when the clock goes back; the time
floor keeps them growing when the store goes back (a restore from a backup, a VM snapshot
rolled back): whatever the lost store published after its copy was made, it published in
an earlier second than the restored CA's first CRL, so that CRL's number is larger. The
factor 1000 leaves room for 1000 CRLs of one CA in one second before the counter would
run ahead of the clock; every number is reserved in a write transaction that reaches the
disk, so one store cannot go that fast. (Same-second publication by the lost CA and the
restored one is the one case the rule does not cover: a restore takes longer.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from privca.errors import AlreadyExists, NotFound, StoreUnavailable
from privca.store.auditlog import der_fingerprint
from privca.store.database import Change, Database
from privca.store.schema import authorities, crl_state, issuers
from privca.x509.encoding import serial_hex

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def crl_number_floor(this_update: dt.datetime) -> int:
    """The smallest CRLNumber a CRL made at `this_update` may carry (see the module)."""
    return max(1, (this_update - EPOCH) // dt.timedelta(seconds=1) * 1000)


def following_crl_number(last: int | None, this_update: dt.datetime) -> int:
    """The CRLNumber after `last` (None: the CA's first CRL) for a CRL made at `this_update`."""
    return max((last or 0) + 1, crl_number_floor(this_update))


def _first_crl_number(change: Change, issuer_id: int) -> int | None:
    """Insert the number of a CA's first CRL; None if another process just did. Its
    dates say "due now" until `crl_signed` records the CRL that was made."""
    number = following_crl_number(None, change.now)
    try:
        with change.connection.begin_nested():
            change.execute(
                crl_state.insert().values(
                    issuer_id=issuer_id,
                    number=number,
                    this_update=change.now,
                    next_update=change.now,
                )
            )
    except sa.exc.IntegrityError:
        return None  # another replica published its first CRL at the same moment
    return number


@dataclass(frozen=True)
class StoredCrl:
    """The newest CRL a server published for a CA (crl_state.published_*), and the
    revocation fingerprint it was built against (None: not known)."""

    number: int
    der: bytes
    basis: str | None

    def built_on(self, fingerprint: tuple[int, str] | None) -> bool:
        """Whether this CRL was built against `fingerprint` (and so lists every
        revocation a reader with that fingerprint knows of)."""
        return self.basis is not None and self.basis == crl_basis(fingerprint)


def crl_basis(fingerprint: tuple[int, str] | None) -> str | None:
    """A CA's revocation fingerprint (`InventoryView.revocation_fingerprints`) as the text
    kept beside a published CRL: read before the CRL is signed, it names no revocation
    the CRL does not list, so a replica with the same fingerprint may serve that CRL."""
    return None if fingerprint is None else f"{fingerprint[0]}|{fingerprint[1]}"


@dataclass(frozen=True)
class NewAuthorityRow:
    """A CA certificate about to be recorded."""

    role: str
    common_name: str
    serial: int
    der: bytes
    key_ref: str
    not_after: dt.datetime
    active: bool = True
    # The named issuer of an issuing CA (None: the default issuer).
    issuer: str | None = None


def default_issuer_name(change: Change) -> str | None:
    """The default issuer's name, read inside a write transaction."""
    found = change.execute(sa.select(issuers.c.name).where(issuers.c.is_default.is_(True))).first()
    return str(found[0]) if found is not None else None


def _issuer_of_row(change: Change, row: NewAuthorityRow) -> str | None:
    """The issuer an issuing CA row joins: the one named, else the default issuer."""
    if row.role != "issuing":
        return None
    name = row.issuer or default_issuer_name(change)
    if name is None:
        raise NotFound("the inventory has no default issuer", "see privca issuer list")
    known = change.execute(sa.select(issuers.c.name).where(issuers.c.name == name)).first()
    if known is None:
        raise NotFound(f"no issuer named '{name}'", "see privca issuer list")
    return name


def _refuse_if_active(change: Change, role: str) -> None:
    if change.connection.dialect.name == "postgresql":
        # Nothing to lock before the row exists: serialise the check-then-insert instead
        # (SQLite's BEGIN IMMEDIATE already does).
        change.execute(sa.text("SELECT pg_advisory_xact_lock(7280)"))
    found = change.execute(
        sa.select(authorities.c.serial).where(
            authorities.c.role == role, authorities.c.active.is_(True)
        )
    ).first()
    if found is not None:
        raise AlreadyExists(
            f"an active {role} CA certificate was recorded meanwhile (serial {found[0]})",
            "see privca rotate status",
        )


def insert_authorities(
    change: Change, rows: Sequence[NewAuthorityRow], now: dt.datetime, cause: str | None = None
) -> list[int]:
    """Insert CA certificate rows inside `change`; each active one replaces the active CA
    of its role (for an issuing CA: of its issuer). Ids in the order given; `cause` says
    why, in the audit log."""
    ids: list[int] = []
    for row in rows:
        issuer = _issuer_of_row(change, row)
        if row.active:
            same_issuer = (
                authorities.c.issuer.is_(None) if issuer is None else authorities.c.issuer == issuer
            )
            change.execute(
                authorities.update()
                .where(authorities.c.role == row.role, same_issuer)
                .values(active=False)
            )
        result = change.execute(
            authorities.insert().values(
                role=row.role,
                common_name=row.common_name,
                serial=serial_hex(row.serial),
                der=row.der,
                key_ref=row.key_ref,
                active=row.active,
                not_after=row.not_after,
                created_at=now,
                issuer=issuer,
            )
        )
        detail = {
            "common_name": row.common_name,
            "key_ref": row.key_ref,
            "fingerprint": der_fingerprint(row.der),
            "active": row.active,
            "issuer": issuer,
            "cause": cause,
        }
        change.record(f"{row.role}-ca-created", row.serial, detail)
        key = result.inserted_primary_key
        if key is None:
            raise StoreUnavailable("the inventory did not return the new CA's id")
        ids.append(int(key[0]))
    return ids


class AuthorityWrites:
    """The writes about CA certificates, over the Store's database."""

    database: Database

    def add_authority(
        self,
        role: str,
        common_name: str,
        serial: int,
        der: bytes,
        key_ref: str,
        not_after: dt.datetime,
        now: dt.datetime,
        *,
        active: bool = True,
    ) -> int:
        """Record a CA certificate (the active one of its role, unless `active` is False)
        and return its id."""
        row = NewAuthorityRow(role, common_name, serial, der, key_ref, not_after, active)
        return self.add_authorities([row], now)[0]

    def add_authorities(
        self,
        rows: Sequence[NewAuthorityRow],
        now: dt.datetime,
        *,
        unless_active: str | None = None,
        cause: str | None = None,
    ) -> list[int]:
        """Record several CA certificates in one transaction (a root rollover's new root,
        cross-certificate and issuing CA: all or none); ids in the order given.

        `unless_active`: a role that must have no active CA, checked in the same
        transaction (AlreadyExists otherwise), so that of two processes starting a root
        rollover at once exactly one records it. `cause` says why, in the audit log.
        """
        with self.database.change(now) as change:
            if unless_active is not None:
                _refuse_if_active(change, unless_active)
            return insert_authorities(change, rows, now, cause)

    def end_role(self, role: str, now: dt.datetime, cause: str | None = None) -> int:
        """No CA of `role` is active any more (a root rollover ends: its cross-certificate
        stops being served); returns how many records changed. Records stay."""
        with self.database.change(now) as change:
            result = change.execute(
                authorities.update()
                .where(authorities.c.role == role, authorities.c.active.is_(True))
                .values(active=False)
            )
            change.record(f"{role}-ca-ended", None, {"cause": cause})
            return int(result.rowcount or 0)

    def revoke_authority(self, authority_id: int, reason: str, now: dt.datetime) -> None:
        """Revoke an issuing CA certificate: it signs nothing more (no longer active) and
        the CRL of the root that signed it lists it from the next one on. Once only.

        Raises:
            AlreadyExists: it was revoked already (by this or another process).
            NotFound: no issuing CA certificate has that id.
        """
        a = authorities.c
        with self.database.change(now) as change:
            row = change.execute(
                sa.select(a.serial, a.der, a.issuer, a.active, a.revoked_at).where(
                    a.id == authority_id, a.role == "issuing"
                )
            ).first()
            if row is None:
                raise NotFound("no issuing CA has that serial", "see privca issuer list")
            updated = change.execute(
                authorities.update()
                .where(a.id == authority_id, a.revoked_at.is_(None))
                .values(revoked_at=now, revocation_reason=reason, active=False)
            )
            if not updated.rowcount:
                raise AlreadyExists(
                    f"the issuing CA {row.serial} was revoked already",
                    "see privca issuer show, and publish the root's CRL: privca crl --root",
                )
            detail = {
                "reason": reason,
                "issuer": row.issuer,
                "was_active": bool(row.active),
                "fingerprint": der_fingerprint(bytes(row.der)),
            }
            change.record("issuing-ca-revoked", str(row.serial), detail)

    def next_crl_number(self, issuer_id: int, this_update: dt.datetime) -> int:
        """Reserve the next CRLNumber for a CA: strictly increasing across processes, and
        above every number a store restored from an older copy could have published. A
        number reserved and never used is a gap, which RFC 5280 allows; the CA's CRL dates
        and the `crl-issued` entry wait for `crl_signed`, so a signing that fails leaves
        `check` and /metrics reporting the CRL that really is the newest."""
        with self.database.change(this_update) as change:
            query = sa.select(crl_state.c.number).where(crl_state.c.issuer_id == issuer_id)
            if change.connection.dialect.name == "postgresql":
                query = query.with_for_update()
            current = change.execute(query).scalar()
            if current is None:
                first = _first_crl_number(change, issuer_id)
                if first is not None:
                    return first
                current = change.execute(query).scalar()
            if current is None:
                raise StoreUnavailable("the CRL number of a CA vanished while it was read")
            number = following_crl_number(int(current), this_update)
            change.execute(
                crl_state.update().where(crl_state.c.issuer_id == issuer_id).values(number=number)
            )
        return number

    def crl_signed(
        self, issuer_id: int, number: int, this_update: dt.datetime, next_update: dt.datetime
    ) -> None:
        """Record that CRL `number` of a CA was signed, valid until `next_update`: what
        `check` and /metrics watch, and its `crl-issued` entry. Of two replicas signing
        at once, the later-made CRL's dates stay."""
        c = crl_state.c
        with self.database.change(this_update) as change:
            change.execute(
                crl_state.update()
                .where(c.issuer_id == issuer_id, c.this_update <= this_update)
                .values(this_update=this_update, next_update=next_update)
            )
            change.record("crl-issued", None, {"issuer": issuer_id, "number": number})

    def publish_crl(
        self, issuer_id: int, number: int, der: bytes, basis: str | None, now: dt.datetime
    ) -> StoredCrl | None:
        """Keep `der` (CRLNumber `number`) as the CA's published CRL unless one with a
        higher number is there already; returns the one the store holds afterwards (None:
        the CA has no crl_state row). One conditional UPDATE, so two replicas publishing
        at once leave the higher number, whichever commits last."""
        c = crl_state.c
        with self.database.change(now) as change:
            change.execute(
                crl_state.update()
                .where(
                    c.issuer_id == issuer_id,
                    sa.or_(c.published_number.is_(None), c.published_number < number),
                )
                .values(published_number=number, published_der=der, published_basis=basis)
            )
            row = change.execute(
                sa.select(c.published_number, c.published_der, c.published_basis).where(
                    c.issuer_id == issuer_id
                )
            ).first()
        if row is None or row.published_number is None or row.published_der is None:
            return None
        return StoredCrl(int(row.published_number), bytes(row.published_der), row.published_basis)

    def published_crl(self, issuer_id: int) -> StoredCrl | None:
        """The CA's published CRL (see `publish_crl`), or None."""
        c = crl_state.c
        with self.database.read() as connection:
            row = connection.execute(
                sa.select(c.published_number, c.published_der, c.published_basis).where(
                    c.issuer_id == issuer_id, c.published_number.is_not(None)
                )
            ).first()
        if row is None or row.published_der is None:
            return None
        return StoredCrl(int(row.published_number), bytes(row.published_der), row.published_basis)

    def published_crl_numbers(self) -> dict[int, int]:
        """CA id -> CRLNumber of its published CRL, for every CA that has one: what a
        replica compares its own CRLs with (one small query, no CRL bytes)."""
        c = crl_state.c
        with self.database.read() as connection:
            rows = connection.execute(
                sa.select(c.issuer_id, c.published_number).where(c.published_number.is_not(None))
            ).all()
        return {int(r.issuer_id): int(r.published_number) for r in rows}

    def continue_crl_numbers(
        self, issuer_id: int, number: int, this_update: dt.datetime, next_update: dt.datetime
    ) -> None:
        """Continue another CA's CRLNumber sequence: the next CRL privca publishes is
        number+1, so clients that cached the old CA's CRL take privca's as newer."""
        with self.database.change(this_update) as change:
            change.execute(
                crl_state.insert().values(
                    issuer_id=issuer_id,
                    number=number,
                    this_update=this_update,
                    next_update=next_update,
                )
            )


__all__ = [
    "AuthorityWrites",
    "NewAuthorityRow",
    "StoredCrl",
    "crl_basis",
    "crl_number_floor",
    "default_issuer_name",
    "following_crl_number",
    "insert_authorities",
]
