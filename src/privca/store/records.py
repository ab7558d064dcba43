"""The values the inventory hands out and takes in: plain frozen records, no database.

Code outside the authority layer reads these (through `CertificateAuthority.inventory`)
and never writes the store itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from privca.store.status import SCHEDULED_REASON, CertificateStatus, is_due, status_at

# The CA revocation reasons that say its key may be in other hands: every certificate it
# signed could be forged, so each one is revoked for cACompromise.
CA_COMPROMISE = "caCompromise"
_COMPROMISED_CA = frozenset({CA_COMPROMISE, "keyCompromise"})


class RevocationOutcome(StrEnum):
    """What one revoke call did."""

    REVOKED = "revoked"  # it was valid; now it is revoked
    REASON_CHANGED = "reason-changed"  # it was revoked; now for keyCompromise
    UNCHANGED = "unchanged"  # it was already revoked for this very reason

    @property
    def changed(self) -> bool:
        return self is not RevocationOutcome.UNCHANGED


@dataclass(frozen=True)
class AuthorityRecord:
    """One CA certificate as the inventory keeps it (the registry parses it once)."""

    id: int
    role: str
    common_name: str
    serial: int
    der: bytes
    key_ref: str
    active: bool
    not_after: dt.datetime
    # The named issuer of an issuing CA certificate (None for roots and cross-certificates).
    issuer: str | None = field(default=None, kw_only=True)
    # Set once the CA certificate is revoked (its root's CRL lists it from then on).
    revoked_at: dt.datetime | None = field(default=None, kw_only=True)
    revocation_reason: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class IssuerRecord:
    """A named issuer: a lineage of issuing CA certificates, and what it may sign.

    `permitted`/`excluded` are subtree texts as --permit/--exclude take them (empty
    permitted: the home's policy alone); `profiles` the leaf profiles it may issue (empty:
    every one)."""

    name: str
    disabled: bool
    default: bool
    permitted: tuple[str, ...]
    excluded: tuple[str, ...]
    profiles: tuple[str, ...]
    created_at: dt.datetime


@dataclass(frozen=True)
class Intent:
    """What is about to be signed, recorded before the CA key is used."""

    issuer_id: int
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str


@dataclass(frozen=True)
class Revocation:
    """When and why a certificate stopped being trustworthy."""

    revoked_at: dt.datetime
    reason: str | None


@dataclass(frozen=True)
class CertificateRecord:
    serial: int
    issuer_id: int
    status: str  # the stored status (store.status.StoredStatus); see status_at
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str
    der: bytes | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    superseded_by: int | None = None
    # renew --revoke-old-after: revoked (superseded) from this time on
    revoke_after: dt.datetime | None = None

    def status_at(self, now: dt.datetime) -> CertificateStatus:
        """valid | superseded | expired | revoked | pending | failed, as shown to operators
        (a scheduled revocation counts from the moment it is due)."""
        return status_at(
            stored=self.status,
            not_after=self.not_after,
            superseded_by=self.superseded_by,
            revoke_after=self.revoke_after,
            now=now,
        )

    def revocation_at(self, now: dt.datetime) -> Revocation | None:
        """The revocation in force at `now`, written or scheduled and due; else None."""
        if self.status == "revoked" and self.revoked_at is not None:
            return Revocation(self.revoked_at, self.revocation_reason)
        if is_due(self.status, self.revoke_after, now) and self.revoke_after is not None:
            return Revocation(self.revoke_after, SCHEDULED_REASON)
        return None

    def revocation_under(self, issuer: Revocation | None, now: dt.datetime) -> Revocation | None:
        """The revocation a relying party that checks only this certificate (OCSP) must be
        told of: its own (`revocation_at`), or else that of the CA certificate that signed
        it (`issuer`: the CA's revoked_at and revocation_reason), whichever came first. A
        certificate revoked no later than its CA keeps its own date and reason (a
        keyCompromise of its own key stays one). Under a CA revoked because its key may be
        in other hands the reason is cACompromise (RFC 5280 5.3.1); otherwise the CA's
        reason (superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn)
        holds for it too."""
        own = self.revocation_at(now)
        if issuer is None or issuer.revoked_at > now:
            return own
        if own is not None and own.revoked_at <= issuer.revoked_at:
            return own
        reason = CA_COMPROMISE if issuer.reason in _COMPROMISED_CA else issuer.reason
        return Revocation(issuer.revoked_at, reason)


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: dt.datetime
    reason: str | None


@dataclass(frozen=True)
class CrlState:
    issuer_id: int
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


@dataclass(frozen=True)
class ImportedRow:
    """A certificate another CA signed, recorded as it is when privca takes that CA over."""

    serial: int
    status: str  # issued | revoked
    profile: str
    names: tuple[str, ...]
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    public_key_sha256: str  # "" when only the revocation of a lost certificate is known
    der: bytes | None
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class CertificateCount:
    issuer_id: int
    profile: str
    status: CertificateStatus
    count: int


@dataclass(frozen=True)
class ValidLeaves:
    """The valid certificates one CA signed: how many, and when the last one expires."""

    count: int
    last_expiry: dt.datetime


__all__ = [
    "AuthorityRecord",
    "CertificateCount",
    "CertificateRecord",
    "CrlState",
    "ImportedRow",
    "Intent",
    "IssuerRecord",
    "Revocation",
    "RevocationOutcome",
    "RevokedEntry",
    "ValidLeaves",
]
