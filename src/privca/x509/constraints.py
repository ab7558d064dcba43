"""Name constraints that bind every name type, and the URI part clients cannot check.

RFC 5280 4.2.1.10 applies permitted subtrees per name type: a CA that permits only
`corp.internal` says nothing about IP addresses, email addresses or URIs, and a leaf that
carries only those passes every client. So from the operator's DNS domains and IP networks
privca writes a constraint for each of the four types a TLS client may match:

    DNS      the permitted domains (dNSName `corp.internal` = it and everything below)
    IP       the permitted networks; none permitted: exclude 0.0.0.0/0 and ::/0
    email    mailboxes at each domain and below (rfc822Name `corp.internal`, `.corp.internal`)
    URI      hosts at each domain and below (URI `corp.internal`, `.corp.internal`)

A type with no permitted subtree at all is closed by permitting only the reserved
`invalid` domain (RFC 6761: never resolves, never registered). Checked by experiment with
OpenSSL 3.0 and cryptography 50: an *empty* dNSName is "match everything" to OpenSSL but
a malformed constraint to cryptography, and an empty rfc822Name or URI subtree matches
nothing in OpenSSL (and everything in Go and NSS), so neither can express "none".
Excluded domains and networks are written for every type the same way.

cryptography's verifier refuses any URI name under a URI constraint ("unsupported name
constraint"); `uri_violation` is the check privca makes itself (x509/verify.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from privca._text import printable
from privca.errors import InputError
from privca.x509.names import NameSubtree, SubjectName, parse_uri
from privca.x509.subject import openssl_reads_as_dns

NAME_TYPES = ("DNS", "IP", "email", "URI")
# RFC 6761 6.4: a domain that is guaranteed never to exist, so permitting only it permits
# no real name of that type.
NOWHERE = "invalid"
_ALL_IPV4 = ipaddress.ip_network("0.0.0.0/0")
_ALL_IPV6 = ipaddress.ip_network("::/0")


def _host_subtrees(domain: str) -> list[str]:
    """rfc822Name and URI constraints name one host exactly, or hosts below '.domain'."""
    return [domain, "." + domain]


def _for_domains(domains: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in domains]
    for domain in domains:
        names += [x509.RFC822Name(h) for h in _host_subtrees(domain)]
        names += [x509.UniformResourceIdentifier(h) for h in _host_subtrees(domain)]
    return names


def _domains(subtrees: Sequence[NameSubtree]) -> list[str]:
    return [s.value for s in subtrees if s.kind == "dns"]


def _networks(
    subtrees: Sequence[NameSubtree],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [s.network for s in subtrees if s.kind == "ip"]


def _closing(permitted: Sequence[NameSubtree]) -> tuple[list[x509.GeneralName], list[str]]:
    """Permitted subtrees for every name type, and the address families to exclude whole
    (a type with nothing permitted is closed, not left open)."""
    domains, networks = _domains(permitted), _networks(permitted)
    names = _for_domains(domains or [NOWHERE]) + [x509.IPAddress(n) for n in networks]
    return names, [] if networks else ["0.0.0.0/0", "::/0"]


def build_name_constraints(
    permitted: Sequence[NameSubtree], excluded: Sequence[NameSubtree]
) -> x509.NameConstraints | None:
    """The nameConstraints of a CA certificate for this policy, or None when unconstrained."""
    if not (permitted or excluded):
        return None
    permitted_names: list[x509.GeneralName] = []
    excluded_names: list[x509.GeneralName] = []
    if permitted:
        permitted_names, closed_families = _closing(permitted)
        excluded_names += [x509.IPAddress(ipaddress.ip_network(f)) for f in closed_families]
    excluded_names += _for_domains(_domains(excluded))
    excluded_names += [x509.IPAddress(n) for n in _networks(excluded)]
    return x509.NameConstraints(
        permitted_subtrees=permitted_names or None, excluded_subtrees=excluded_names or None
    )


def subtrees_of(
    certificate: x509.Certificate,
) -> tuple[tuple[NameSubtree, ...], tuple[NameSubtree, ...]]:
    """The DNS and IP subtrees (permitted, excluded) of a CA certificate's constraints,
    as `build_name_constraints` takes them: the reverse of what it writes, so a CA made
    by privca reads back as the policy it was made from (`invalid` for a closed DNS type
    stays, and so does an excluded 0.0.0.0/0 and ::/0, keeping those types closed)."""
    nc = _name_constraints_of(certificate)
    if nc is None:
        return (), ()

    def read(names: Iterable[x509.GeneralName] | None) -> tuple[NameSubtree, ...]:
        found: list[NameSubtree] = []
        for name in names or ():
            if isinstance(name, x509.DNSName):
                found.append(NameSubtree("dns", name.value.lower().lstrip(".")))
            elif isinstance(name, x509.IPAddress) and not isinstance(
                name.value, ipaddress.IPv4Address | ipaddress.IPv6Address
            ):
                found.append(NameSubtree("ip", str(name.value)))
        return tuple(dict.fromkeys(found))

    return read(nc.permitted_subtrees), read(nc.excluded_subtrees)


def _type_of(general_name: x509.GeneralName) -> str | None:
    if isinstance(general_name, x509.DNSName):
        return "DNS"
    if isinstance(general_name, x509.IPAddress):
        return "IP"
    if isinstance(general_name, x509.RFC822Name):
        return "email"
    if isinstance(general_name, x509.UniformResourceIdentifier):
        return "URI"
    return None


@dataclass(frozen=True)
class Coverage:
    """Which name types a chain of CA certificates binds."""

    constrained: bool  # some CA in the chain permits something, so the operator meant limits
    open_types: tuple[str, ...]  # types any name of which a thief could still sign


def coverage(constraints: Iterable[x509.NameConstraints | None]) -> Coverage:
    """A type is bound when some CA in the chain permits subtrees of that type (or, for IP,
    excludes both whole address families); constraints intersect down a chain."""
    bound: set[str] = set()
    constrained = False
    for nc in constraints:
        if nc is None:
            continue
        for general_name in nc.permitted_subtrees or ():
            kind = _type_of(general_name)
            if kind is not None:
                bound.add(kind)
                constrained = True
        excluded = {g.value for g in nc.excluded_subtrees or () if isinstance(g, x509.IPAddress)}
        if {_ALL_IPV4, _ALL_IPV6} <= excluded:
            bound.add("IP")
    if not constrained:
        return Coverage(False, ())
    return Coverage(True, tuple(t for t in NAME_TYPES if t not in bound))


def _host_matches(host: str, subtree: str) -> bool:
    """RFC 5280 URI/rfc822Name host match: '.domain' means strictly below, else exactly."""
    host, subtree = host.lower(), subtree.lower()
    if subtree.startswith("."):
        return host.endswith(subtree) and len(host) > len(subtree)
    return host == subtree


def _uri_subtrees(names: Iterable[x509.GeneralName] | None) -> list[str]:
    return [g.value for g in names or () if isinstance(g, x509.UniformResourceIdentifier)]


def uri_violation(uri: str, nc: x509.NameConstraints) -> str | None:
    """Why `uri` breaks the URI subtrees of `nc` (RFC 5280 4.2.1.10), or None if it does not.

    The host is read with privca's strict parser: a URI it refuses cannot be shown to be
    inside any subtree, so it is a violation wherever URI subtrees exist."""
    permitted = _uri_subtrees(nc.permitted_subtrees)
    excluded = _uri_subtrees(nc.excluded_subtrees)
    if not (permitted or excluded):
        return None
    shown = printable(uri, 200)
    try:
        parsed = parse_uri(uri)
    except InputError:
        return f"URI name '{shown}' cannot be matched against the URI name constraints"
    if parsed.host_is_ip:
        return f"URI name '{shown}' has an IP address host, which no URI name constraint permits"
    inside = [s for s in excluded if _host_matches(parsed.host, s)]
    if inside:
        return f"URI name '{shown}' is in an excluded name constraint subtree ({inside[0]})"
    if permitted and not any(_host_matches(parsed.host, s) for s in permitted):
        return f"URI name '{shown}' matches no permitted URI name constraint"
    return None


def _dns_within(name: str, base: str) -> bool:
    """OpenSSL's dNSName match: `base` and any name below it; '.base' only below it. The
    bytes as they are (OpenSSL does not drop a trailing dot: `example.com.` matches no
    name privca issues)."""
    name, base = name.lower(), base.lower()
    if not base:
        return True  # an empty subtree: every name (OpenSSL)
    if base.startswith("."):
        return name.endswith(base) and len(name) > len(base)
    return name == base or name.endswith("." + base)


def _ip_within(address: str, base: Any) -> bool:
    return isinstance(base, ipaddress.IPv4Network | ipaddress.IPv6Network) and (
        ipaddress.ip_address(address) in base
    )


def _email_within(mailbox: str, base: str) -> bool:
    """RFC 5280 rfc822Name match: a whole mailbox (the local part exact), all mailboxes at
    one host, or ('.domain') at any host below a domain."""
    local, _, host = mailbox.rpartition("@")
    if "@" in base:  # '@host' (nothing before it): any mailbox at exactly that host
        base_local, _, base_host = base.rpartition("@")
        same_local = not base_local or local == base_local
        return same_local and host.lower() == base_host.lower()
    return _host_matches(host, base)


def _directory_within(subject: x509.Name, base: x509.Name) -> bool:
    """A directoryName subtree holds the names that begin with its RDNs. Compared as
    OpenSSL's canonical form does: case and runs of spaces in string values do not
    count."""

    def canonical(name: x509.Name) -> list[frozenset[tuple[str, str]]]:
        return [
            frozenset((a.oid.dotted_string, " ".join(str(a.value).lower().split())) for a in rdn)
            for rdn in name.rdns
        ]

    wanted, have = canonical(base), canonical(subject)
    return have[: len(wanted)] == wanted


_MATCHERS: dict[str, tuple[type[x509.GeneralName], Callable[[Any, Any], bool]]] = {
    "dns": (x509.DNSName, _dns_within),
    "ip": (x509.IPAddress, _ip_within),
    "email": (x509.RFC822Name, _email_within),
    "directory": (x509.DirectoryName, _directory_within),
}


@dataclass(frozen=True)
class _Subtrees:
    """One CA certificate's name constraints, sorted by the kind of name they bind."""

    constraints: x509.NameConstraints
    permitted: dict[str, list[Any]]
    excluded: dict[str, list[Any]]


@functools.lru_cache(maxsize=64)
def _subtrees_of(ca_cert: x509.Certificate) -> _Subtrees | None:
    """Read once per CA certificate: issuance asks for every leaf of a batch."""
    nc = _name_constraints_of(ca_cert)
    if nc is None:
        return None

    def by_kind(names: Iterable[x509.GeneralName] | None) -> dict[str, list[Any]]:
        return {
            kind: [g.value for g in names or () if isinstance(g, general_type)]
            for kind, (general_type, _within) in _MATCHERS.items()
        }

    return _Subtrees(nc, by_kind(nc.permitted_subtrees), by_kind(nc.excluded_subtrees))


def _breaks(kind: str, value: Any, subtrees: _Subtrees) -> str | None:
    """How one name of `kind` breaks the subtrees, or None: inside an excluded subtree of
    its type, or outside every permitted subtree of its type when there are any."""
    if kind == "uri":
        return uri_violation(value, subtrees.constraints)
    within = _MATCHERS[kind][1]
    for base in subtrees.excluded[kind]:
        if within(value, base):
            return f"is inside the excluded subtree {_shown(base)}"
    permitted = subtrees.permitted[kind]
    if permitted and not any(within(value, base) for base in permitted):
        listed = ", ".join(_shown(base) for base in permitted[:4])
        more = ", ..." if len(permitted) > 4 else ""
        return f"is outside the permitted subtrees ({listed}{more})"
    return None


def _shown(value: Any) -> str:
    text = value.rfc4514_string() if isinstance(value, x509.Name) else str(value)
    return printable(text, 120)


def constraint_violation(
    names: Sequence[SubjectName], subject: x509.Name, chain: Iterable[x509.Certificate]
) -> str | None:
    """Why a leaf with `names` (its subjectAltName) and `subject` would break the
    nameConstraints of a CA certificate in `chain`, as RFC 5280 4.2.1.10 and OpenSSL apply
    them, or None. Every type privca issues is matched (DNS, IP, email, URI), the subject
    as a directory name when it is not empty, and a CN OpenSSL reads as a host name when
    no DNS name is present (NAME_CONSTRAINTS_check_CN). The CA certificates of an adopted
    CA may carry constraints its privca policy does not say, so issuance asks this of the
    certificates themselves."""
    # (kind, value, how the name is shown); the shown text is only made for a violation
    checked: list[tuple[str, Any, str]] = [(n.kind, n.value, "") for n in names]
    if not any(n.kind == "dns" for n in names):
        for attribute in subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = str(attribute.value)
            if openssl_reads_as_dns(value):
                checked.append(("dns", value, f"subject CN {value}"))
    if len(subject):
        checked.append(("directory", subject, "subject"))
    for ca_cert in chain:
        subtrees = _subtrees_of(ca_cert)
        if subtrees is None:
            continue
        for index, (kind, value, label) in enumerate(checked):
            problem = _breaks(kind, value, subtrees)
            if problem is None:
                continue
            ca_name = printable(ca_cert.subject.rfc4514_string(), 80)
            if kind == "uri":  # uri_violation's sentence names the URI itself
                return f"{problem} of {ca_name}"
            shown = str(names[index]) if index < len(names) else label
            if kind == "directory":
                shown = f"subject {subject.rfc4514_string()}"
            return f"{printable(shown, 120)} {problem} of the name constraints of {ca_name}"
    return None


def without_uri_subtrees(nc: x509.NameConstraints) -> x509.NameConstraints | None:
    """`nc` with its URI subtrees removed (None if nothing else is left)."""

    def keep(names: Iterable[x509.GeneralName] | None) -> list[x509.GeneralName] | None:
        kept = [g for g in names or () if not isinstance(g, x509.UniformResourceIdentifier)]
        return kept or None

    permitted, excluded = keep(nc.permitted_subtrees), keep(nc.excluded_subtrees)
    if permitted is None and excluded is None:
        return None
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)


def _name_constraints_of(certificate: x509.Certificate) -> x509.NameConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None


def _uri_names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def has_uri_names(certificate: x509.Certificate) -> bool:
    return bool(_uri_names(certificate))


@functools.lru_cache(maxsize=1)
def _throwaway_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _stand_in_anchor(
    issuer: x509.Certificate, constraints: x509.NameConstraints | None
) -> x509.Certificate:
    """The leaf's issuer with `constraints` in place of its own nameConstraints.

    It keeps the issuer's name, public key, validity and every other extension, so the leaf's
    own signature is checked against the real issuer key; as a trust anchor its own
    signature is never checked, so a throwaway key may sign it."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(issuer.subject)
        .issuer_name(issuer.issuer)
        .public_key(issuer.public_key())
        .serial_number(issuer.serial_number)
        .not_valid_before(issuer.not_valid_before_utc)
        .not_valid_after(issuer.not_valid_after_utc)
    )
    for extension in issuer.extensions:
        if not isinstance(extension.value, x509.NameConstraints):
            builder = builder.add_extension(extension.value, extension.critical)
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    return builder.sign(_throwaway_key(), hashes.SHA256())


def _ca_path(
    issuer: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    """The validated path from `issuer` up to a root: cryptography validates the issuer
    as the end of the path, under the CA profile."""
    if issuer in roots:
        return (issuer,)
    ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(roots)))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ca_policy)
    )
    return tuple(builder.build_client_verifier().verify(issuer, list(intermediates)).chain)


def verify_uri_constrained(
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    subject: verification.Subject | None,
) -> tuple[x509.Certificate, ...]:
    """Validate a leaf with URI names under URI name constraints, which cryptography's
    verifier refuses as unsupported. Returns the path (leaf first); raises
    verification.VerificationError with the reason.

    1. cryptography builds and validates the path from the leaf's issuer to a root;
    2. for each CA on that path with name constraints (and at least once), cryptography
       validates the leaf itself (signature, validity, usages, host name, DNS/IP/email
       constraints) under a stand-in of its issuer that carries that CA's constraints
       minus the URI subtrees;
    3. privca checks every URI name against each CA's URI subtrees.
    """
    reason = "no CA certificate among the roots and intermediates issued it"
    for issuer in [c for c in (*intermediates, *roots) if c.subject == leaf.issuer]:
        try:
            leaf.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        try:
            path = _ca_path(issuer, roots, intermediates, at)
        except verification.VerificationError as exc:
            reason = f"the issuing CA does not validate: {exc}"
            continue
        constrained: list[x509.NameConstraints | None] = [
            nc for nc in map(_name_constraints_of, path) if nc is not None
        ]
        for nc in constrained or [None]:
            anchor = _stand_in_anchor(issuer, without_uri_subtrees(nc) if nc else None)
            builder = verification.PolicyBuilder().store(verification.Store([anchor])).time(at)
            if subject is not None:
                builder.build_server_verifier(subject).verify(leaf, [])
            else:
                builder.build_client_verifier().verify(leaf, [])
            for uri in _uri_names(leaf):
                violation = uri_violation(uri, nc) if nc is not None else None
                if violation is not None:
                    raise verification.VerificationError(violation)
        return (leaf, *path)
    raise verification.VerificationError(reason)


__all__ = [
    "NAME_TYPES",
    "NOWHERE",
    "Coverage",
    "build_name_constraints",
    "constraint_violation",
    "coverage",
    "has_uri_names",
    "subtrees_of",
    "uri_violation",
    "verify_uri_constrained",
    "without_uri_subtrees",
]
