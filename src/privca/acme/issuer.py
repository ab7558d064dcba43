"""What acme/ needs from a CA, as a small protocol (server/acme.py adapts the authority)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from privca.errors import InputError
from privca.x509.names import SubjectName, parse_name


class IssuanceRefused(Exception):
    """The issuer refuses: `kind` is `rejectedIdentifier` (a name) or `badCSR`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class IssuedChain:
    serial: int
    certificate_der: bytes
    chain_pem: bytes  # the leaf, then the intermediates (not the root)


@dataclass(frozen=True)
class CertificateInfo:
    serial: int
    der: bytes
    status: str  # valid | revoked | expired | superseded
    public_key_sha256: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    # Replaced by another certificate (ARI `replaces`, privca renew), whatever `status`
    # says: an expired or revoked certificate may have been replaced too.
    superseded: bool = False
    # The issuing CA that signed it was revoked: clients that check the root's CRL reject
    # it, so it is renewed at once (under the issuer's new CA), as a revoked one is.
    issuer_revoked: bool = False


class CertificateIssuer(Protocol):
    """The CA as acme/ sees it."""

    def check_names(
        self, names: Sequence[str], issuer: str | None = None, profile: str | None = None
    ) -> None:
        """Raise IssuanceRefused('rejectedIdentifier', ...) if the current policy (of
        `issuer`; None: the default issuer) refuses one, IssuanceRefused('unauthorized',
        ...) if that issuer issues nothing now (disabled, unknown) or not `profile`."""

    def check_days(self, days: int, issuer: str | None = None, profile: str | None = None) -> None:
        """Raise IssuanceRefused('malformed', ...) if a certificate of `days` from now is
        more than the policy of `issuer` allows, or would outlive its CA."""

    def issuer_name(self, name: str | None) -> str | None:
        """The name of issuer `name` (None: the default issuer's); None when there is no
        such issuer (an ACME path segment that is not one)."""

    def issuer_profiles(self, name: str | None) -> tuple[str, ...]:
        """The leaf profiles issuer `name` (None: the default) may issue; empty: every
        one (and for an issuer that does not exist)."""

    def address_allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """False if the policy has permitted IP networks and `address` is outside them, or
        it lies in an excluded one: the validator never connects there."""

    def issue(
        self,
        csr_der: bytes,
        *,
        names: Sequence[str],
        profile: str,
        days: int | None,
        issuer: str | None = None,
    ) -> IssuedChain:
        """Sign a CSR whose names must equal `names` by `issuer` (None: the default);
        recorded before it returns."""

    def revoke(self, serial: int, reason: str) -> bool:
        """Revoke, or change an earlier revocation to keyCompromise; False if nothing
        changed (already revoked for that reason). IssuanceRefused('alreadyRevoked') for
        any other change of an existing revocation."""

    def lookup(self, serial: int) -> CertificateInfo | None: ...

    def chain_pem(self, serial: int) -> bytes: ...

    def supersede(self, old_serial: int, new_serial: int) -> bool:
        """Mark `old_serial` replaced by `new_serial` (ARI `replaces`, like privca renew),
        unless it was replaced already; whether it was marked now."""


# The ACME identifier types privca issues for (RFC 8555 §9.7.7, RFC 8738).
IDENTIFIER_TYPES = ("dns", "ip")


def name_of(identifier_type: str, value: str) -> SubjectName:
    """An ACME identifier as a privca name (raises InputError if it is not one)."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise InputError(f"identifier type '{identifier_type}' is not supported")
    return parse_name(f"{identifier_type}:{value}")


__all__ = [
    "IDENTIFIER_TYPES",
    "CertificateInfo",
    "CertificateIssuer",
    "IssuanceRefused",
    "IssuedChain",
    "name_of",
]
