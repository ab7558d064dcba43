"""What acme/ needs from a CA, as a small protocol, and its adapter over CertificateAuthority.

Issuance takes the same path as `privca sign`: `inspect_csr`, then
`CertificateAuthority.sign_requests([request], profile=..., days=...)`, which records the
certificate durably before it returns. Names are checked against the policy as it is now
(privca.toml is re-read when it changed), not as it was when the order was authorized.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

from privca.errors import InputError, PolicyError
from privca.settings import Settings
from privca.x509.csr import inspect_csr
from privca.x509.encoding import der_certificate, pem_certificates, serial_hex
from privca.x509.names import SubjectName, parse_name

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority


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


class CertificateIssuer(Protocol):
    """The CA as acme/ sees it."""

    def check_names(self, names: Sequence[str]) -> None:
        """Raise IssuanceRefused('rejectedIdentifier', ...) if the current policy refuses one."""

    def address_allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """False if the policy has permitted IP networks and `address` is outside them, or
        it lies in an excluded one: the validator never connects there."""

    def issue(
        self, csr_der: bytes, *, names: Sequence[str], profile: str, days: int | None
    ) -> IssuedChain:
        """Sign a CSR whose names must equal `names`; recorded before it returns."""

    def revoke(self, serial: int, reason: str) -> bool:
        """Revoke, or change an earlier revocation to keyCompromise; False if nothing
        changed (already revoked for that reason). IssuanceRefused('alreadyRevoked') for
        any other change of an existing revocation."""

    def lookup(self, serial: int) -> CertificateInfo | None: ...

    def chain_pem(self, serial: int) -> bytes: ...

    def supersede(self, old_serial: int, new_serial: int) -> None:
        """Mark `old_serial` replaced by `new_serial` (ARI `replaces`, like privca renew)."""


def name_of(identifier_type: str, value: str) -> SubjectName:
    """An ACME identifier as a privca name (raises InputError if it is not one)."""
    if identifier_type not in ("dns", "ip"):
        raise InputError(f"identifier type '{identifier_type}' is not supported")
    return parse_name(f"{identifier_type}:{value}")


class CertificateAuthorityIssuer:
    """CertificateIssuer over a CertificateAuthority opened by the server."""

    def __init__(self, authority: CertificateAuthority) -> None:
        self.authority = authority
        self._lock = threading.Lock()
        self._settings_mtime = self._mtime()

    def _mtime(self) -> float | None:
        try:
            return self.authority.home.settings.stat().st_mtime
        except OSError:
            return None

    def _current_policy(self) -> None:
        """Re-read privca.toml if an operator changed it since we last looked."""
        mtime = self._mtime()
        if mtime is None or mtime == self._settings_mtime:
            return
        with self._lock:
            self.authority.settings = Settings.read(self.authority.home.settings)
            self._settings_mtime = mtime

    def check_names(self, names: Sequence[str]) -> None:
        self._current_policy()
        try:
            self.authority.policy.check_names([parse_name(n) for n in names])
        except InputError as exc:
            raise IssuanceRefused("rejectedIdentifier", exc.message) from exc

    def address_allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        self._current_policy()
        policy = self.authority.policy
        networks = [s.network for s in policy.permitted if s.kind == "ip"]
        if networks and not any(address in n for n in networks if n.version == address.version):
            return False
        excluded = [s.network for s in policy.excluded if s.kind == "ip"]
        return not any(address in n for n in excluded if n.version == address.version)

    def issue(
        self, csr_der: bytes, *, names: Sequence[str], profile: str, days: int | None
    ) -> IssuedChain:
        try:
            csr = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise IssuanceRefused("badCSR", "the CSR is not valid DER") from exc
        try:
            request = inspect_csr(csr, "the CSR")
        except InputError as exc:
            raise IssuanceRefused("badCSR", exc.message) from exc
        wanted = {str(parse_name(n)) for n in names}
        got = {str(n) for n in request.names}
        if got != wanted:
            raise IssuanceRefused(
                "badCSR",
                "the CSR's names ("
                + ", ".join(sorted(got))
                + ") differ from the order's ("
                + ", ".join(sorted(wanted))
                + ")",
            )
        self.check_names(sorted(wanted))
        try:
            issued = self.authority.sign_requests([request], profile=profile, days=days)[0]
        except PolicyError as exc:
            raise IssuanceRefused("badCSR", exc.message) from exc
        except InputError as exc:
            raise IssuanceRefused("badCSR", exc.message) from exc
        return IssuedChain(
            serial=issued.serial,
            certificate_der=der_certificate(issued.certificate),
            chain_pem=issued.chain_pem(),
        )

    def revoke(self, serial: int, reason: str) -> bool:
        try:
            _record, outcome = self.authority.revoke(serial_hex(serial), reason)
        except PolicyError as exc:
            raise IssuanceRefused("alreadyRevoked", exc.message) from exc
        return outcome.changed

    def lookup(self, serial: int) -> CertificateInfo | None:
        record = self.authority.store.get(serial)
        if record is None or record.der is None:
            return None
        return CertificateInfo(
            serial=record.serial,
            der=record.der,
            status="revoked" if record.status == "revoked" else "valid",
            public_key_sha256=record.public_key_sha256,
            names=record.names,
            not_before=record.not_before,
            not_after=record.not_after,
        )

    def chain_pem(self, serial: int) -> bytes:
        record = self.authority.store.get(serial)
        assert record is not None and record.der is not None
        leaf = x509.load_der_x509_certificate(record.der)
        chain = [leaf]
        authority = self.authority.issuer_of(record)
        if authority is not None:
            issuer = x509.load_der_x509_certificate(authority.der)
            if issuer.subject != issuer.issuer:
                chain.append(issuer)
        return pem_certificates(chain)

    def supersede(self, old_serial: int, new_serial: int) -> None:
        from privca._time import utcnow

        with self._lock:
            self.authority.store.mark_superseded(old_serial, new_serial, utcnow())


__all__ = [
    "CertificateAuthorityIssuer",
    "CertificateInfo",
    "CertificateIssuer",
    "IssuanceRefused",
    "IssuedChain",
    "name_of",
]
