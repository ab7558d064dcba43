"""The one parser for every name form privca accepts: DNS (IDNA 2008), wildcard, IP, CIDR,
email and URI. Pure: strings in, frozen values out, InputError on anything doubtful.

x509.DNSName accepts `a..b`, `-bad`, trailing dots, spaces and IP literals, and Python's
own `idna` codec is IDNA 2003, so every check is made here before cryptography sees a name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509

from privca.errors import InputError

NameKind = Literal["dns", "ip", "email", "uri"]

_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)
_PREFIXES: dict[str, NameKind] = {"dns": "dns", "ip": "ip", "email": "email", "uri": "uri"}
_MAX_NAME = 253
_MAX_LABEL = 63


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
    return InputError(f"name '{value}' {rule}", hint)


def _looks_like_ip(text: str) -> bool:
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


def parse_dns_name(text: str, *, allow_wildcard: bool = True, original: str | None = None) -> str:
    """A DNS name as a lowercase A-label string; raises InputError naming the broken rule."""
    shown = original if original is not None else text
    if not text:
        raise _reject(shown, "is empty")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise _reject(shown, "contains whitespace")
    if _looks_like_ip(text):
        raise _reject(shown, "is an IP address where a DNS name is expected", f"use ip:{text}")
    if text.endswith("."):
        raise _reject(shown, "ends with a dot", f"use '{text.rstrip('.')}'")
    labels = text.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        if not allow_wildcard:
            raise _reject(shown, "is a wildcard, which is not allowed here")
        labels = labels[1:]
        if len(labels) < 2:
            raise _reject(shown, "is a wildcard directly under a top-level label")
    out: list[str] = []
    for label in labels:
        if label == "":
            raise _reject(shown, "has an empty label")
        if "*" in label:
            raise _reject(
                shown, "has a '*' that is not a whole left-most label", "use '*.domain' only"
            )
        if label.isascii():
            label = label.lower()
            if label.startswith("xn--"):
                import idna

                try:
                    idna.ulabel(label)
                except (idna.IDNAError, UnicodeError) as exc:
                    raise _reject(shown, f"has an invalid punycode label '{label}'") from exc
            elif len(label) >= 4 and label[2:4] == "--":
                raise _reject(shown, f"has a label '{label}' with '--' in positions 3-4")
        else:
            label = _to_a_label(label.lower(), shown)
        if "_" in label:
            raise _reject(shown, "contains an underscore, which hostnames may not")
        if len(label) > _MAX_LABEL:
            raise _reject(shown, f"has a label longer than {_MAX_LABEL} characters")
        if not _LDH_LABEL.match(label):
            if label.startswith("-") or label.endswith("-"):
                raise _reject(shown, f"has a label '{label}' that starts or ends with a hyphen")
            raise _reject(shown, f"has a label '{label}' with characters other than a-z, 0-9, '-'")
        out.append(label)
    if out[-1].isdigit():
        raise _reject(shown, "ends in an all-numeric label, which no DNS name does")
    name = ".".join(out)
    if wildcard:
        name = "*." + name
    if len(name) > _MAX_NAME:
        raise _reject(shown, f"is longer than {_MAX_NAME} characters")
    return name


def _parse_ip(text: str, original: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise _reject(original, "is not a valid IPv4 or IPv6 address") from exc


def _parse_email(text: str, original: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise _reject(original, "is not an email address (local@domain)")
    if not local.isascii() or not _EMAIL_LOCAL.match(local):
        raise _reject(original, "has an email local part with characters privca does not accept")
    if len(local) > 64:
        raise _reject(original, "has an email local part longer than 64 characters")
    return f"{local}@{parse_dns_name(domain, allow_wildcard=False, original=original)}"


def _parse_uri(text: str, original: str) -> str:
    if not text.isascii() or any(ch.isspace() for ch in text):
        raise _reject(original, "is not an ASCII URI without spaces")
    parts = urlsplit(text)
    if not parts.scheme or not re.match(r"^[a-z][a-z0-9+.-]*$", parts.scheme):
        raise _reject(original, "is not an absolute URI (scheme://host/...)")
    if not parts.hostname:
        raise _reject(original, "has no host part", "RFC 5280 requires an authority in URI names")
    host = parts.hostname
    if not _looks_like_ip(host):
        parse_dns_name(host, allow_wildcard=False, original=original)
    return text


def host_of(name: SubjectName) -> str | None:
    """The DNS name an email or URI names belongs to, for policy checks."""
    if name.kind == "email":
        return name.value.rpartition("@")[2]
    if name.kind == "uri":
        return urlsplit(name.value).hostname
    return None


def parse_name(text: str, *, allow_wildcard: bool = True) -> SubjectName:
    """Type a name by its form: `10.0.0.5`, `::1`, `email:a@b`, `uri:spiffe://...`, or DNS."""
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
        return SubjectName("ip", _parse_ip(text, original))
    if kind == "email":
        return SubjectName("email", _parse_email(text, original))
    if kind == "uri":
        return SubjectName("uri", _parse_uri(text, original))
    if _looks_like_ip(text):
        return SubjectName("ip", str(ipaddress.ip_address(text)))
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
    if "/" in candidate or _looks_like_ip(candidate):
        try:
            network = ipaddress.ip_network(candidate, strict=True)
        except ValueError as exc:
            raise InputError(
                f"subtree '{text}' is not a valid network",
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
