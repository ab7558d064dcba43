"""Path validation with cryptography.x509.verification (strict RFC 5280, name constraints),
and the words that explain a failure: the validator's own messages name library internals
("candidates exhausted", "<Certificate(...)>"), so the cause is found again here, in the
order a reader would look: who signed it, when it is valid, which names it has, what it
is for."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from privca.x509.constraints import constraint_violation, has_uri_names, verify_uri_constrained
from privca.x509.names import (
    SubjectName,
    names_from_general_names,
    parse_ip_address,
)
from privca.x509.profiles import usage_name

# Why a chain failed. "leaf-validity" is already said by the expiry check of a report.
FailureKind = Literal[
    "", "issuer", "leaf-validity", "ca-validity", "name", "usage", "constraints", "other"
]

# "... (encountered processing <Certificate(subject=<Name(CN=x)>, ...)>)"
_LIBRARY_DETAIL = re.compile(r"\s*\(encountered processing <Certificate\(.*\)>\)\s*$", re.S)


# Why a root of this CA is not among those a verification trusts.
UntrustedBecause = Literal["retired", "transition", "not-given"]


@dataclass(frozen=True)
class UntrustedRoot:
    """A root this CA holds that the verification does not trust, and why: "retired" by
    a root rollover that has ended; the old root of a rollover still under way
    ("transition") or the current root ("not-given"), left out of the roots given."""

    certificate: x509.Certificate
    because: UntrustedBecause


@dataclass(frozen=True)
class ChainResult:
    ok: bool
    reason: str
    chain: tuple[x509.Certificate, ...] = ()
    kind: FailureKind = ""


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


def certificate_names(cert: x509.Certificate) -> list[SubjectName]:
    """The subjectAltName entries of `cert` (empty when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return names_from_general_names(san)


def default_subject_name(cert: x509.Certificate) -> str | None:
    """The first DNS or IP SAN, used when the caller names no host."""
    for name in certificate_names(cert):
        if name.kind in ("dns", "ip") and not name.is_wildcard:
            return name.value
    return None


def name_matches(name: str, names: Sequence[SubjectName]) -> bool:
    """RFC 6125 as TLS clients apply it: an IP equals an IP SAN; a DNS name equals a DNS
    SAN or matches a wildcard SAN in its left-most label only."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        host = name.lower().rstrip(".")
        for candidate in names:
            if candidate.kind != "dns":
                continue
            if candidate.value == host:
                return True
            if (
                candidate.is_wildcard
                and "." in host
                and host.split(".", 1)[1] == candidate.value[2:]
            ):
                return True
        return False
    return any(c.kind == "ip" and ipaddress.ip_address(c.value) == address for c in names)


def is_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s key made `cert`'s signature (and the names link up)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issuer_of(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate != cert and is_signed_by(cert, candidate):
            return candidate
    return None


def _path_upwards(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
) -> list[x509.Certificate] | None:
    """The CA certificates above `leaf`, root last, by signature alone (no time, no
    policy); None when no root is reached."""
    path: list[x509.Certificate] = []
    current = leaf
    for _ in range(8):
        root = _issuer_of(current, roots)
        if root is not None:
            return [*path, root]
        parent = _issuer_of(current, [c for c in intermediates if c not in path])
        if parent is None:
            return None
        path.append(parent)
        current = parent
    return None


def _validity_problem(cert: x509.Certificate, at: dt.datetime) -> str | None:
    if cert.not_valid_after_utc <= at:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
    if cert.not_valid_before_utc > at:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z"
    return None


def _usage_text(usages: set[x509.ObjectIdentifier]) -> str:
    return ", ".join(sorted(usage_name(u) for u in usages))


def _names_text(names: Sequence[SubjectName]) -> str:
    return ", ".join(str(n) for n in names) or "no subjectAltName at all"


# A leaf the inventory holds is renewed; one it does not (signed behind privca's back, or
# lost in a restore) cannot be, and is issued anew.
RETIRED_ADVICE = "renew it (privca renew; privca issue if the inventory does not hold it)"


def under_roots(
    candidates: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """Those of `candidates` (CA certificates) that a chain of signatures leads from one
    of `roots` to, in the order given."""
    reached = list(roots)
    kept: list[x509.Certificate] = []
    for _ in range(len(candidates)):
        found = [
            c
            for c in candidates
            if c not in kept and any(is_signed_by(c, parent) for parent in reached)
        ]
        if not found:
            break
        kept += found
        reached += found
    return [c for c in candidates if c in kept]


def _issuer_problem(
    leaf: x509.Certificate,
    known: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    untrusted: Sequence[UntrustedRoot],
) -> tuple[FailureKind, str]:
    """No path to a trusted root. A path to a root of this CA that is not trusted here
    (retired by a rollover, or left out of the roots given) is said as such: the
    signature is genuine. Else the name of a known CA without its key is a forgery."""
    untrusted_text = untrusted_root_problem(leaf, intermediates, untrusted)
    if untrusted_text is not None:
        return "issuer", untrusted_text
    issuer = leaf.issuer.rfc4514_string() or "an empty name"
    if any(c.subject == leaf.issuer for c in [*known, *(u.certificate for u in untrusted)]):
        return "issuer", (
            f"the signature does not verify with this CA's key (issuer: {issuer}): "
            "a forged or damaged certificate"
        )
    if not intermediates:  # only roots to go by: a bare leaf's issuing CA may be missing
        return "issuer", (
            f"not issued by this CA (issuer: {issuer}), or given without its issuing CA: "
            "verify the chain file (NAME.chain.pem)"
        )
    return "issuer", f"not issued by this CA (issuer: {issuer})"


def untrusted_root_problem(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    untrusted: Sequence[UntrustedRoot],
) -> str | None:
    """What to say of a leaf whose signatures lead to one of `untrusted` (this CA's roots
    that the verification does not trust), or None when they do not."""
    path = _path_upwards(leaf, [u.certificate for u in untrusted], intermediates)
    if path is None:
        return None
    return _untrusted_text(path, next(u for u in untrusted if u.certificate == path[-1]))


def _untrusted_text(path: Sequence[x509.Certificate], root: UntrustedRoot) -> str:
    """`path`: the CA certificates above the leaf, ending at `root`."""
    signer = path[0].subject.rfc4514_string()
    top = root.certificate.subject.rfc4514_string()
    by = f"issued by {signer} under" if len(path) > 1 else "issued by"
    if root.because == "retired":
        return (
            f"{by} the retired root {top}: not trusted since the root rollover ended; "
            f"{RETIRED_ADVICE}"
        )
    if root.because == "transition":
        return (
            f"{by} the old root {top} of the root rollover under way: trusted until the "
            "rollover ends, but not by the roots given"
        )
    return f"{by} this CA's root {top}, which is not among the roots given"


def _usage_problem(leaf: x509.Certificate, as_server: bool) -> str | None:
    usages = _extended_key_usages(leaf)
    wanted = ExtendedKeyUsageOID.SERVER_AUTH if as_server else ExtendedKeyUsageOID.CLIENT_AUTH
    if not usages or wanted in usages:
        return None
    role = "TLS servers" if as_server else "TLS clients"
    return f"the certificate is not for {role} (extendedKeyUsage: {_usage_text(usages)})"


def _time_problem(
    leaf: x509.Certificate, path: Sequence[x509.Certificate], at: dt.datetime
) -> tuple[FailureKind, str] | None:
    for ca_cert in path:
        ca_time = _validity_problem(ca_cert, at)
        if ca_time is not None:
            return "ca-validity", f"the CA {ca_cert.subject.rfc4514_string()} {ca_time}"
    leaf_time = _validity_problem(leaf, at)
    if leaf_time is not None:
        return "leaf-validity", f"the certificate {leaf_time}"
    return None


def _library_problem(library_message: str) -> tuple[FailureKind, str]:
    """The validator's own words, without the internals it adds."""
    cleaned = _LIBRARY_DETAIL.sub("", library_message)
    for prefix in ("validation failed: ", "candidates exhausted: "):
        cleaned = cleaned.removeprefix(prefix)
    if "Forbidden public key algorithm" in cleaned or "Forbidden signature algorithm" in cleaned:
        return "other", (
            "the chain uses a key or signature algorithm (EdDSA: Ed25519 or Ed448) that the "
            "WebPKI rules privca verifies by do not allow, and neither do browsers or NSS; "
            "OpenSSL, Go and Java accept it (check with openssl verify)"
        )
    if "constraint" in cleaned or "subtree" in cleaned:
        return "constraints", f"a name is outside the CA's name constraints ({cleaned})"
    return "other", f"the chain does not validate: {cleaned}"


def _explain(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    name: str | None,
    as_server: bool,
    library_message: str,
    untrusted: Sequence[UntrustedRoot] = (),
) -> tuple[FailureKind, str]:
    """The first cause a reader would look for: who signed it, which names it has, what it
    is for, when it is valid, the name constraints; else the validator's own words."""
    path = _path_upwards(leaf, roots, intermediates)
    if path is None:
        return _issuer_problem(leaf, [*roots, *intermediates], intermediates, untrusted)
    names = certificate_names(leaf)
    if name is not None and not name_matches(name, names):
        return "name", name_problem(name, names)
    usage = _usage_problem(leaf, as_server)
    if usage is not None:
        return "usage", usage
    time_problem = _time_problem(leaf, path, at)
    if time_problem is not None:
        return time_problem
    outside = constraint_violation(names, leaf.subject, path)
    if outside is not None:
        return "constraints", outside
    return _library_problem(library_message)


def name_problem(name: str, names: Sequence[SubjectName]) -> str:
    """The sentence for a host name the certificate does not carry."""
    return f"name {name} is not in the certificate (it has: {_names_text(names)})"


def verify_chain(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    name: str | None = None,
    untrusted: Sequence[UntrustedRoot] = (),
) -> ChainResult:
    """Validate `leaf` up to one of `roots` at time `at`, for host `name` when given.

    A server certificate is validated as a server (hostname/IP match); a client-only
    certificate, or one without a DNS/IP name, as a TLS client. `untrusted`: the roots of
    this CA that are not among `roots`, only to explain a leaf that chains to one.
    """
    builder = verification.PolicyBuilder().store(verification.Store(list(roots))).time(at)
    usages = _extended_key_usages(leaf)
    as_server = name is not None or ExtendedKeyUsageOID.SERVER_AUTH in usages or not usages
    subject_name = name or default_subject_name(leaf)
    verify_as_server = as_server and subject_name is not None
    chain: Sequence[x509.Certificate]
    try:
        if as_server and subject_name is not None:
            verifier = builder.build_server_verifier(_subject_for(subject_name))
            chain = verifier.verify(leaf, list(intermediates))
        else:
            client = builder.build_client_verifier().verify(leaf, list(intermediates))
            chain = client.chain
    except (verification.VerificationError, ValueError) as exc:
        uri_fallback = (
            isinstance(exc, verification.VerificationError)
            and "unsupported name constraint" in str(exc)
            and has_uri_names(leaf)
        )
        if not uri_fallback:
            kind, reason = _explain(
                leaf, roots, intermediates, at, name, verify_as_server, str(exc), untrusted
            )
            return ChainResult(False, reason, kind=kind)
        # cryptography cannot match URI names against URI constraints; privca does that part.
        subject = _subject_for(subject_name) if verify_as_server and subject_name else None
        try:
            chain = verify_uri_constrained(leaf, roots, intermediates, at, subject)
        except (verification.VerificationError, ValueError) as uri_exc:
            kind, reason = _explain(
                leaf, roots, intermediates, at, name, verify_as_server, str(uri_exc), untrusted
            )
            return ChainResult(False, reason, kind=kind)
    # cryptography follows the WebPKI, which ignores a CN and has no directoryName or
    # mailbox rules; OpenSSL applies them, and a leaf it refuses is not OK here either.
    outside = constraint_violation(certificate_names(leaf), leaf.subject, chain[1:])
    if outside is not None:
        return ChainResult(False, outside, kind="constraints")
    return ChainResult(True, "OK", tuple(chain))


@dataclass(frozen=True)
class VerificationReport:
    """Everything `privca verify` checks; `problems` is empty when all passed.

    Returned by CertificateAuthority.verify: a failed check is a problem listed here,
    never an exception. Reading it raises nothing.
    """

    chain: ChainResult
    name: str | None
    key_matches: bool | None
    days_left: int
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
    untrusted: Sequence[UntrustedRoot] = (),
) -> VerificationReport:
    """Chain, name, key pair and expiry, each reported rather than stopping at the first.

    Problems are sentences a reader acts on, e.g. "name db.corp.internal is not in the
    certificate (it has: a.corp.internal, 10.0.0.5)". `untrusted` as for verify_chain."""
    from privca._time import days_left
    from privca.x509.encoding import public_key_der

    chain = verify_chain(leaf, roots, intermediates, at, name, untrusted)
    problems: list[str] = []
    not_after = leaf.not_valid_after_utc
    # The leaf's own validity and the name are checked here whatever the validator stopped
    # at first, so an expired certificate for the wrong host shows both problems.
    leaf_time = _validity_problem(leaf, at)
    if leaf_time is not None:
        problems.append(f"the certificate {leaf_time}")
    if not chain.ok and chain.kind not in ("leaf-validity", "name"):
        problems.append(chain.reason)
    names = certificate_names(leaf)
    if name is not None and not name_matches(name, names):
        problems.append(name_problem(name, names))
    key_matches = None
    if public_key_der_of_private_key is not None:
        key_matches = public_key_der(leaf.public_key()) == public_key_der_of_private_key
        if not key_matches:
            problems.append("the private key does not belong to this certificate")
    return VerificationReport(
        chain=chain,
        name=name,
        key_matches=key_matches,
        days_left=days_left(not_after, at),
        not_after=not_after,
        problems=tuple(problems),
    )
