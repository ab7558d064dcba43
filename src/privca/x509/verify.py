"""Path validation with cryptography.x509.verification (strict RFC 5280, name constraints)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca.x509.constraints import has_uri_names, verify_uri_constrained
from privca.x509.names import names_from_general_names, parse_ip_address


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    reason: str
    chain: tuple[x509.Certificate, ...] = ()


def _subject_for(name: str) -> verification.Subject:
    if "%" in name:
        parse_ip_address(name)  # refuses the zone id of an address like fe80::1%eth0
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _extended_key_usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def default_subject_name(cert: x509.Certificate) -> str | None:
    """The first DNS or IP SAN, used when the caller names no host."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in names_from_general_names(san):
        if name.kind in ("dns", "ip") and not name.is_wildcard:
            return name.value
    return None


def verify_chain(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    name: str | None = None,
) -> ChainResult:
    """Validate `leaf` up to one of `roots` at time `at`, for host `name` when given.

    A server certificate is validated as a server (hostname/IP match); a client-only
    certificate, or one without a DNS/IP name, as a TLS client.
    """
    builder = verification.PolicyBuilder().store(verification.Store(list(roots))).time(at)
    usages = _extended_key_usages(leaf)
    as_server = name is not None or ExtendedKeyUsageOID.SERVER_AUTH in usages or not usages
    subject_name = name or default_subject_name(leaf)
    try:
        if as_server and subject_name is not None:
            verifier = builder.build_server_verifier(_subject_for(subject_name))
            chain = verifier.verify(leaf, list(intermediates))
        else:
            client = builder.build_client_verifier().verify(leaf, list(intermediates))
            chain = client.chain
    except verification.VerificationError as exc:
        if "unsupported name constraint" not in str(exc) or not has_uri_names(leaf):
            return ChainResult(False, str(exc))
        # cryptography cannot match URI names against URI constraints; privca does that part.
        subject = _subject_for(subject_name) if as_server and subject_name else None
        try:
            chain = verify_uri_constrained(leaf, roots, intermediates, at, subject)
        except verification.VerificationError as uri_exc:
            return ChainResult(False, f"validation failed: {uri_exc}")
        except ValueError as uri_exc:
            return ChainResult(False, f"cannot validate: {uri_exc}")
    except ValueError as exc:
        return ChainResult(False, f"cannot validate: {exc}")
    return ChainResult(True, "OK", tuple(chain))


@dataclass(frozen=True)
class VerificationReport:
    """Everything `privca verify` checks; `problems` is empty when all passed."""

    chain: ChainResult
    name: str | None
    key_matches: bool | None
    days_left: float
    not_after: dt.datetime
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_certificate(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    name: str | None = None,
    public_key_der_of_private_key: bytes | None = None,
) -> VerificationReport:
    """Chain, name, key pair and expiry, each reported rather than stopping at the first."""
    from privca.x509.encoding import public_key_der

    chain = verify_chain(leaf, roots, intermediates, at, name)
    problems: list[str] = []
    if not chain.ok:
        problems.append(f"chain: {chain.reason}")
    key_matches = None
    if public_key_der_of_private_key is not None:
        key_matches = public_key_der(leaf.public_key()) == public_key_der_of_private_key
        if not key_matches:
            problems.append("key: the private key does not belong to this certificate")
    not_after = leaf.not_valid_after_utc
    days_left = (not_after - at).total_seconds() / 86400
    if days_left <= 0:
        problems.append(f"expiry: expired on {not_after:%Y-%m-%d %H:%M}Z")
    elif leaf.not_valid_before_utc > at:
        problems.append(f"validity: not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}Z")
    return VerificationReport(
        chain=chain,
        name=name,
        key_matches=key_matches,
        days_left=days_left,
        not_after=not_after,
        problems=tuple(problems),
    )
