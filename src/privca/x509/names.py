"""The one parser for every name form privca accepts: DNS (IDNA 2008), wildcard, IP, CIDR,
email and URI. Pure: strings in, frozen values out, InputError on anything doubtful.

x509.DNSName accepts `a..b`, `-bad`, trailing dots, spaces and IP literals, and Python's
own `idna` codec is IDNA 2003, so every check is made here before cryptography sees a name.

URIs follow RFC 3986 strictly, and anything a WHATWG URL parser (browsers, Node, most HTTP
libraries) would read with another host is refused rather than guessed at: userinfo,
backslashes, whitespace and control characters, percent-encoding in the host, a host that
ends in something WHATWG takes for a number, ports outside 1-65535. Python's `urlsplit`
and WHATWG disagree on exactly those inputs, which is how a name passes a policy check for
one host and is used by clients for another. IPv6 zone ids (`fe80::1%eth0`) mean nothing
outside one machine and are refused everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from privca._text import printable
from privca.errors import InputError

NameKind = Literal["dns", "ip", "email", "uri"]

_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_PREFIXES: dict[str, NameKind] = {"dns": "dns", "ip": "ip", "email": "email", "uri": "uri"}
_MAX_NAME = 253
_MAX_LABEL = 63
_URI_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
# RFC 3986 path, query and fragment characters besides '%' escapes: unreserved, sub-delims,
# ':', '@', '/', '?' (and one '#' that starts the fragment).
_URI_TAIL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?"
)
_HEX = frozenset("0123456789abcdefABCDEF")
# WHATWG's "ends in a number": a last label that is a decimal, octal or 0x-hex number makes
# the whole host an IPv4 address to a browser ("0x7f.1" is 127.0.0.1).
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")


@dataclass(frozen=True, order=True)
class SubjectName:
    """One subjectAltName entry, normalised: DNS names are lowercase A-labels."""

    kind: NameKind
    value: str

    def __str__(self) -> str:
        if self.kind in ("email", "uri"):
            return f"{self.kind}:{self.value}"
        return self.value

    @property
    def is_wildcard(self) -> bool:
        return self.kind == "dns" and self.value.startswith("*.")

    def general_name(self) -> x509.GeneralName:
        if self.kind == "dns":
            return x509.DNSName(self.value)
        if self.kind == "ip":
            return x509.IPAddress(ipaddress.ip_address(self.value))
        if self.kind == "email":
            return x509.RFC822Name(self.value)
        return x509.UniformResourceIdentifier(self.value)

    @property
    def file_stem(self) -> str:
        """A file-name-safe form: `*.corp.internal` -> `wildcard.corp.internal`."""
        if self.is_wildcard:
            return "wildcard" + self.value[1:]
        return re.sub(r"[^A-Za-z0-9._@-]", "_", self.value)


@dataclass(frozen=True)
class NameSubtree:
    """A name-constraint subtree: a DNS domain (itself and below) or an IP network."""

    kind: Literal["dns", "ip"]
    value: str

    def __str__(self) -> str:
        return self.value

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.value)

    def general_name(self) -> x509.GeneralName:
        if self.kind == "dns":
            return x509.DNSName(self.value)
        return x509.IPAddress(self.network)

    def contains_dns(self, name: str) -> bool:
        """RFC 5280 dNSName subtree match: the domain itself or any name below it."""
        if self.kind != "dns":
            return False
        return name == self.value or name.endswith("." + self.value)

    def contains_ip(self, address: str) -> bool:
        if self.kind != "ip":
            return False
        ip = ipaddress.ip_address(address)
        return ip.version == self.network.version and ip in self.network


def _reject(value: str, rule: str, hint: str | None = None) -> InputError:
    # The rule and hint may quote a label or a parser's complaint about it: all of it is
    # the requester's text, so all of it is escaped.
    shown_hint = printable(hint, 300) if hint is not None else None
    return InputError(f"name '{printable(value, 300)}' {printable(rule, 300)}", shown_hint)


def is_ip_address(text: str) -> bool:
    """Whether `text` is exactly an IPv4 or IPv6 address literal, as `ipaddress` reads it:
    no brackets, prefix or whitespace; an IPv6 zone id (fe80::1%eth0) counts, so callers
    that refuse zone ids look for '%' first."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _to_a_label(label: str, original: str) -> str:
    import idna

    try:
        encoded = idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise _reject(
            original, f"is not a valid internationalised name (IDNA 2008): {exc}"
        ) from exc
    return encoded


def _check_punycode(label: str, shown: str) -> None:
    import idna

    try:
        idna.ulabel(label)
    except (idna.IDNAError, UnicodeError) as exc:
        raise _reject(shown, f"has an invalid punycode label '{label}'") from exc


def _a_label(label: str, shown: str) -> str:
    """One label of a DNS name as a checked lowercase A-label."""
    if label == "":
        raise _reject(shown, "has an empty label")
    if "*" in label:
        raise _reject(shown, "has a '*' that is not a whole left-most label", "use '*.domain' only")
    if not label.isascii():
        label = _to_a_label(label.lower(), shown)
    else:
        label = label.lower()
        if label.startswith("xn--"):
            _check_punycode(label, shown)
        elif len(label) >= 4 and label[2:4] == "--":
            raise _reject(shown, f"has a label '{label}' with '--' in positions 3-4")
    if "_" in label:
        raise _reject(shown, "contains an underscore, which hostnames may not")
    if len(label) > _MAX_LABEL:
        raise _reject(shown, f"has a label longer than {_MAX_LABEL} characters")
    if not _LDH_LABEL.match(label):
        if label.startswith("-") or label.endswith("-"):
            raise _reject(shown, f"has a label '{label}' that starts or ends with a hyphen")
        raise _reject(shown, f"has a label '{label}' with characters other than a-z, 0-9, '-'")
    return label


def _check_dns_text(text: str, shown: str) -> None:
    """What is wrong with the name as a whole, before its labels are looked at."""
    if not text:
        raise _reject(shown, "is empty")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise _reject(shown, "contains whitespace")
    if is_ip_address(text):
        raise _reject(shown, "is an IP address where a DNS name is expected", f"use ip:{text}")
    if text.endswith("."):
        raise _reject(shown, "ends with a dot", f"use '{text.rstrip('.')}'")


def _check_last_label(label: str, shown: str) -> None:
    if label.isdigit():
        raise _reject(shown, "ends in an all-numeric label, which no DNS name does")
    if _NUMERIC_LABEL.match(label):
        raise _reject(
            shown, f"ends in '{label}', which URL parsers read as a number (an IPv4 address)"
        )


def parse_dns_name(text: str, *, allow_wildcard: bool = True, original: str | None = None) -> str:
    """A DNS name as a lowercase A-label string.

    Raises:
        InputError: naming the broken rule (empty label, '_', a label IDNA 2008 refuses,
            an all-numeric last label, over 253 characters, ...).
    """
    shown = original if original is not None else text
    _check_dns_text(text, shown)
    labels = text.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        if not allow_wildcard:
            raise _reject(shown, "is a wildcard, which is not allowed here")
        labels = labels[1:]
        if len(labels) < 2:
            raise _reject(shown, "is a wildcard directly under a top-level label")
    out = [_a_label(label, shown) for label in labels]
    _check_last_label(out[-1], shown)
    name = ("*." if wildcard else "") + ".".join(out)
    if len(name) > _MAX_NAME:
        raise _reject(shown, f"is longer than {_MAX_NAME} characters")
    return name


def parse_ip_address(text: str, original: str | None = None) -> str:
    """An IPv4 or IPv6 address in its canonical text form; zone ids are refused."""
    shown = original if original is not None else text
    if "%" in text:
        raise _reject(
            shown,
            "carries an IPv6 zone id (%...), which only means something on one host",
            "give the address without the zone id",
        )
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise _reject(shown, "is not a valid IPv4 or IPv6 address") from exc


def _parse_email(text: str, original: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise _reject(original, "is not an email address (local@domain)")
    if not local.isascii() or not _EMAIL_LOCAL.match(local):
        raise _reject(original, "has an email local part with characters privca does not accept")
    if len(local) > 64:
        raise _reject(original, "has an email local part longer than 64 characters")
    return f"{local}@{parse_dns_name(domain, allow_wildcard=False, original=original)}"


@dataclass(frozen=True)
class Uri:
    """A URI name split as RFC 3986 and WHATWG both read it. `host` is a lowercase A-label
    DNS name or an IP address (IPv6 without brackets); `text` is the normalised URI."""

    scheme: str
    host: str
    host_is_ip: bool
    port: int | None
    text: str


def _check_uri_characters(text: str, shown: str) -> None:
    if "\\" in text:
        raise _reject(
            shown, "contains a backslash, which WHATWG URL parsers read as '/'", "remove it"
        )
    if not text.isascii():
        raise _reject(
            shown,
            "is not an ASCII URI",
            "write an internationalised host as its A-label (xn--...)",
        )
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in text):
        raise _reject(shown, "is not an ASCII URI without spaces or control characters")


def parse_uri(text: str, original: str | None = None) -> Uri:
    """An absolute URI with a host (RFC 5280 4.2.1.6), refused wherever another parser could
    read another host. Scheme and host are lowercased, IPv6 hosts written canonically.

    Raises:
        InputError: naming what another parser could read differently (userinfo, a
            backslash, a percent-encoded host, a port outside 1-65535, ...).
    """
    shown = original if original is not None else text
    _check_uri_characters(text, shown)
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not _URI_SCHEME.match(scheme):
        raise _reject(shown, "is not an absolute URI (scheme://host/...)")
    if not rest.startswith("//"):
        raise _reject(shown, "has no host part", "RFC 5280 requires an authority in URI names")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise _reject(
            shown,
            "has a user part (user@host), which parsers disagree on",
            "give scheme://host/... only",
        )
    host, port = _split_host_port(authority, shown)
    _check_uri_tail(tail, shown)
    host_is_ip = is_ip_address(host)
    shown_host = f"[{host}]" if ":" in host else host
    port_text = f":{port}" if port is not None else ""
    return Uri(scheme, host, host_is_ip, port, f"{scheme}://{shown_host}{port_text}{tail}")


def _ipv6_literal(authority: str, shown: str) -> tuple[str, str | None]:
    """`[addr]` or `[addr]:port`: the canonical address and the port text, if any."""
    literal, bracket, after = authority[1:].partition("]")
    if not bracket:
        raise _reject(shown, "has an unterminated IPv6 literal ('[' without ']')")
    if "%" in literal:
        raise _reject(shown, "carries an IPv6 zone id, which only means something on one host")
    try:
        host = str(ipaddress.IPv6Address(literal))
    except ValueError as exc:
        raise _reject(shown, "has an invalid IPv6 literal in its host") from exc
    if after and not after.startswith(":"):
        raise _reject(shown, "has characters after its IPv6 literal")
    return host, after[1:] if after else None


def _plain_host(authority: str, shown: str) -> tuple[str, str | None]:
    """`host` or `host:port` (a DNS name or a dotted IPv4 address) and the port text."""
    if authority.count(":") > 1 or "[" in authority or "]" in authority:
        raise _reject(shown, "has a host that is neither a DNS name nor an IP address")
    host, colon, port_part = authority.partition(":")
    if not host:
        raise _reject(shown, "has no host part", "RFC 5280 requires a host in URI names")
    if "%" in host:
        raise _reject(
            shown,
            "has a percent-encoded host, which parsers decode differently",
            "write the host plainly",
        )
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        host = parse_dns_name(host.lower(), allow_wildcard=False, original=shown)
    return host, port_part if colon else None


def _split_host_port(authority: str, shown: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        host, port_text = _ipv6_literal(authority, shown)
    else:
        host, port_text = _plain_host(authority, shown)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _reject(shown, "has a port outside 1-65535")
    return host, int(port_text)


def _check_uri_tail(tail: str, shown: str) -> None:
    """Path, query and fragment: RFC 3986 characters and well-formed %XX escapes only."""
    before, _, fragment = tail.partition("#")
    if "#" in fragment:
        raise _reject(shown, "has more than one '#'")
    for part in (before, fragment):
        index = 0
        while index < len(part):
            ch = part[index]
            if ch == "%":
                if len(part) < index + 3 or not set(part[index + 1 : index + 3]) <= _HEX:
                    raise _reject(shown, "has a '%' that is not followed by two hex digits")
                index += 3
                continue
            if ch not in _URI_TAIL_CHARS:
                raise _reject(shown, f"has a character RFC 3986 does not allow: {ch!r}")
            index += 1


def _parse_uri(text: str, original: str) -> str:
    return parse_uri(text, original).text


def host_of(name: SubjectName) -> str | None:
    """The host an email or URI name belongs to (DNS name or IP address), for policy checks."""
    if name.kind == "email":
        return name.value.rpartition("@")[2]
    if name.kind == "uri":
        return parse_uri(name.value).host
    return None


# What each kind of name looks like: the hint of a name error that brings none of its own.
_NAME_FORMS = {
    "dns": "a DNS name is letters, digits and inner hyphens in dot-separated labels of 1 to "
    "63 characters, e.g. db.corp.internal or *.corp.internal",
    "ip": "an address is like 10.0.0.5 or 2001:db8::5",
    "email": "an email name is email:user@domain",
    "uri": "a URI name is uri:scheme://host/path, e.g. uri:spiffe://corp.internal/svc",
}


def parse_name(text: str, *, allow_wildcard: bool = True) -> SubjectName:
    """Type a name by its form: `10.0.0.5`, `::1`, `email:a@b`, `uri:spiffe://...`, or DNS.

    Raises:
        InputError: the name is not valid for its kind; the hint says what that kind
            looks like when the check gave none of its own.
    """
    try:
        return _parse_name(text, allow_wildcard=allow_wildcard)
    except InputError as exc:
        if exc.hint:
            raise
        kind = _kind_of(text)
        raise type(exc)(exc.message, _NAME_FORMS[kind]) from None


def _kind_of(text: str) -> str:
    """The kind `_parse_name` takes `text` for (the prefix, else its form)."""
    prefix, sep, rest = text.partition(":")
    kind = _PREFIXES.get(prefix.lower()) if sep else None
    if kind is not None and not (kind == "uri" and rest.startswith("//")):
        return kind
    if is_ip_address(text) or (text.replace(".", "").isdigit() and "." in text):
        return "ip"
    if "://" in text:
        return "uri"
    if "@" in text:
        return "email"
    return "dns"


def _parse_name(text: str, *, allow_wildcard: bool) -> SubjectName:
    original = text
    prefix, sep, rest = text.partition(":")
    kind = _PREFIXES.get(prefix.lower()) if sep else None
    if kind is not None:
        text = rest
        if kind == "uri" and text.startswith("//"):
            kind = None  # a bare "uri://..." is not what anyone means; treat as unprefixed
            text = original
    if kind == "dns":
        return SubjectName(
            "dns", parse_dns_name(text, allow_wildcard=allow_wildcard, original=original)
        )
    if kind == "ip":
        return SubjectName("ip", parse_ip_address(text, original))
    if kind == "email":
        return SubjectName("email", _parse_email(text, original))
    if kind == "uri":
        return SubjectName("uri", _parse_uri(text, original))
    if is_ip_address(text):
        return SubjectName("ip", parse_ip_address(text, original))
    if "://" in text:
        return SubjectName("uri", _parse_uri(text, original))
    if "@" in text:
        return SubjectName("email", _parse_email(text, original))
    return SubjectName(
        "dns", parse_dns_name(text, allow_wildcard=allow_wildcard, original=original)
    )


def parse_names(texts: Iterable[str], *, allow_wildcard: bool = True) -> tuple[SubjectName, ...]:
    """Parse, lowercase and de-duplicate, keeping the order given. At least one is required."""
    seen: dict[SubjectName, None] = {}
    for text in texts:
        seen.setdefault(parse_name(text, allow_wildcard=allow_wildcard), None)
    if not seen:
        raise InputError("no names were given", "give at least one DNS name or IP address")
    return tuple(seen)


def files_stem(names: Sequence[SubjectName]) -> str:
    """What a certificate's files are called: its first DNS name, else its first name."""
    dns = [n for n in names if n.kind == "dns"]
    return (dns or list(names))[0].file_stem


def parse_subtree(text: str) -> NameSubtree:
    """A --permit/--exclude value: a DNS domain, a CIDR network, or a single IP address."""
    candidate = text.strip()
    if "%" in candidate:
        raise InputError(
            f"subtree '{printable(text, 300)}' carries an IPv6 zone id or a '%'",
            "give a network such as fd00::/8, without a zone id",
        )
    if "/" in candidate or is_ip_address(candidate):
        try:
            network = ipaddress.ip_network(candidate, strict=True)
        except ValueError as exc:
            raise InputError(
                f"subtree '{printable(text, 300)}' is not a valid network",
                "give a network address such as 10.0.0.0/8 (host bits zero)",
            ) from exc
        return NameSubtree("ip", str(network))
    if candidate.startswith("."):
        candidate = candidate[1:]
    return NameSubtree("dns", parse_dns_name(candidate, allow_wildcard=False, original=text))


def names_from_general_names(general_names: Iterable[x509.GeneralName]) -> list[SubjectName]:
    """Convert SAN entries back to SubjectName values (unsupported kinds are skipped)."""
    out: list[SubjectName] = []
    for general_name in general_names:
        if isinstance(general_name, x509.DNSName):
            out.append(SubjectName("dns", general_name.value.lower()))
        elif isinstance(general_name, x509.IPAddress):
            out.append(SubjectName("ip", str(general_name.value)))
        elif isinstance(general_name, x509.RFC822Name):
            out.append(SubjectName("email", general_name.value))
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            out.append(SubjectName("uri", general_name.value))
    return out
