"""The ACME server wired to the CA: the CertificateIssuer acme/ asks for, over a
CertificateAuthority, and the ACME app `privca serve` mounts under /acme.

Issuance takes the same path as `privca sign`: `inspect_csr`, then
`CertificateAuthority.sign_requests([request], profile=..., days=...)`, which records the
certificate durably before it returns. Names are checked against the policy as it is now
(privca.toml is re-read when it changed), not as it was when the order was authorized.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from starlette.applications import Starlette

from privca._time import utcnow
from privca.acme.challenges import ChallengeNetwork
from privca.acme.issuer import CertificateInfo, IssuanceRefused, IssuedChain
from privca.acme.routes import build_acme_app
from privca.acme.settings import AcmeSettings
from privca.errors import InputError, PolicyError, PrivcaError
from privca.x509.csr import CertificateRequest, inspect_csr
from privca.x509.encoding import der_certificate, pem_certificates, serial_hex
from privca.x509.names import parse_name

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CertificateAuthorityIssuer:
    """privca.acme.issuer.CertificateIssuer over a CertificateAuthority opened by the server."""

    def __init__(self, authority: CertificateAuthority) -> None:
        self.authority = authority
        self._lock = threading.Lock()
        self._settings_mtime = self._mtime()
        self._issuers_reader = authority.inventory.issuers_reader()

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
            self.authority.reload_settings()
            self._settings_mtime = mtime

    def _current_issuers(self) -> None:
        """See issuers created, disabled or made default by another process (a new
        issuer's CA also shows in the server's watch, a disabled flag does not). Read
        several times per order, on every call: on SQLite through a connection of its
        own (~0.01 ms instead of ~0.2 ms through the pool)."""
        reader = self._issuers_reader
        found = reader.issuers() if reader is not None else None
        if found is None:
            found = self.authority.inventory.issuers()
        if tuple(found) != self.authority.registry.issuers:
            self.authority.refresh()

    def issuer_name(self, name: str | None) -> str | None:
        self._current_issuers()
        registry = self.authority.registry
        if name is None:
            default = registry.default_issuer
            return default.name if default is not None else None
        return next((i.name for i in registry.issuers if i.name == name), None)

    def issuer_profiles(self, name: str | None) -> tuple[str, ...]:
        found = self.issuer_name(name)
        issuer = next((i for i in self.authority.registry.issuers if i.name == found), None)
        return issuer.profiles if issuer is not None else ()

    def check_names(
        self, names: Sequence[str], issuer: str | None = None, profile: str | None = None
    ) -> None:
        from privca.issuers import choose_issuer

        self._current_policy()
        self._current_issuers()
        try:
            choice = choose_issuer(self.authority.registry, self.authority.policy, issuer, profile)
        except PrivcaError as exc:
            raise IssuanceRefused("unauthorized", exc.message) from exc
        try:
            choice.policy.check_names([parse_name(n) for n in names])
        except InputError as exc:
            raise IssuanceRefused("rejectedIdentifier", exc.message) from exc

    def check_days(self, days: int, issuer: str | None = None, profile: str | None = None) -> None:
        from privca.issuance import validity
        from privca.issuers import choose_issuer
        from privca.x509 import profiles

        self._current_policy()
        self._current_issuers()
        try:
            choice = choose_issuer(self.authority.registry, self.authority.policy, issuer, profile)
            leaf = profiles.leaf_profile(profile or profiles.DEFAULT_LEAF_PROFILE.name)
            validity(choice.policy, leaf, choice.signing.certificate, days, utcnow())
        except PrivcaError as exc:
            raise IssuanceRefused("malformed", exc.message) from exc

    def address_allowed(self, address: IPAddress) -> bool:
        self._current_policy()
        policy = self.authority.policy
        permitted = [s.network for s in policy.permitted if s.kind == "ip"]
        if permitted and not _within(address, permitted):
            return False
        return not _within(address, [s.network for s in policy.excluded if s.kind == "ip"])

    def issue(
        self,
        csr_der: bytes,
        *,
        names: Sequence[str],
        profile: str,
        days: int | None,
        issuer: str | None = None,
    ) -> IssuedChain:
        request = _request_for(csr_der, names)
        self.check_names(sorted(str(n) for n in request.names), issuer, profile)
        try:
            issued = self.authority.sign_requests(
                [request], profile=profile, days=days, issuer=issuer
            )[0]
        except InputError as exc:  # PolicyError too: both are the CSR's or the names' fault
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
        record = self.authority.certificate_by_serial(serial)
        if record is None or record.der is None:
            return None
        return CertificateInfo(
            serial=record.serial,
            der=record.der,
            status=record.status_at(utcnow()),
            public_key_sha256=record.public_key_sha256,
            names=record.names,
            not_before=record.not_before,
            not_after=record.not_after,
            superseded=record.superseded_by is not None,
            # Read from the store, not the registry: a CA revoked by another process
            # changes no active CA, so the server's snapshot of CAs may not have it.
            issuer_revoked=any(
                a.id == record.issuer_id and a.revoked_at is not None
                for a in self.authority.inventory.authorities()
            ),
        )

    def chain_pem(self, serial: int) -> bytes:
        record = self.authority.certificate_by_serial(serial)
        if record is None or record.der is None:
            # Only a valid order's certificate is asked for: its record must be there.
            raise PrivcaError(f"certificate {serial_hex(serial)} of a valid order is missing")
        # As `privca issue` writes NAME.chain.pem: the CA certificates up to the root (not
        # the root itself), and during a root rollover the cross-certificate, so that a
        # client that trusts only the old root still accepts a certificate of the new one.
        leaf = x509.load_der_x509_certificate(record.der)
        above = [c for c in self.authority.chain_of(record) if c.subject != c.issuer]
        authority = self.authority.issuer_of(record)
        cross = self.authority.registry.cross_for(authority) if authority is not None else ()
        return pem_certificates([leaf, *above, *cross])

    def supersede(self, old_serial: int, new_serial: int) -> bool:
        # Of two orders replacing the same certificate, in this process or on another
        # replica, only the first marks it: the store's update is conditional.
        return self.authority.supersede(old_serial, new_serial)


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address in n for n in networks if n.version == address.version)


def _request_for(csr_der: bytes, names: Sequence[str]) -> CertificateRequest:
    """The CSR as privca's request, refused (badCSR) unless its names are the order's."""
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
            f"the CSR's names ({', '.join(sorted(got))}) differ from the order's "
            f"({', '.join(sorted(wanted))})",
        )
    return request


def acme_app_for(
    authority: CertificateAuthority,
    settings: AcmeSettings | None = None,
    network: ChallengeNetwork | None = None,
) -> Starlette:
    """The ACME app over an opened CertificateAuthority (what `privca serve` mounts)."""
    return build_acme_app(
        CertificateAuthorityIssuer(authority), authority.acme_repository(), settings, network
    )


__all__ = ["CertificateAuthorityIssuer", "acme_app_for"]
