"""A leaf's subject CN chosen by the operator (`--cn`), and the rules it must follow.

By default a leaf's CN is its first DNS name, and a certificate with only email, URI or IP
names has an empty subject (its subjectAltName is then critical, RFC 5280 4.2.1.6). Some
clients read the CN itself: PostgreSQL maps it to a database user under
`clientcert=verify-full`. So the operator may set it, under these rules:

- 1 to 64 characters (ub-common-name), no control or bidi characters, no surrounding
  spaces. A CN that is one of the certificate's names is written as that name (lowercase
  A-label, compressed address); any other exactly as given (user names are case-sensitive).
- Server profiles: the CN must be one of the certificate's names; TLS clients that still
  read the CN must not find a name the subjectAltName does not vouch for.
- The client profile also allows a permitted DNS name or address, or free text (a user
  name). A CN that reads as a DNS name or an address is checked against the policy.
- OpenSSL checks a CN that looks like a host name (two or more LDH labels, dotted IPv4
  included) against the CA's DNS name constraints when the certificate has no DNS name;
  privca checks it the same way, so nothing it issues fails there.

Pure: the caller checks the returned names against the policy.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from privca._text import printable
from privca.errors import InputError, PolicyError
from privca.x509.names import SubjectName, parse_dns_name
from privca.x509.profiles import Profile

MAX_COMMON_NAME = 64


@dataclass(frozen=True)
class CommonName:
    """A --cn value: the text as given and the DNS name or address it denotes, if any."""

    text: str
    # The DNS name or address it denotes (None for free text such as "Backup Agent").
    name: SubjectName | None

    @property
    def hostname(self) -> bool:
        """Dotted or an address: a host to a reader, not a label like "alice"."""
        return self.name is not None and (self.name.kind == "ip" or "." in self.text)

    def value_for(self, names: Sequence[SubjectName]) -> str:
        """What goes into the certificate: one of its names in that name's canonical form
        (lowercase A-label, compressed address); anything else exactly as given, since a
        user name is case-sensitive to PostgreSQL."""
        if self.name is not None and self.name in names:
            return self.name.value
        return self.text

    def __str__(self) -> str:
        return self.text


def openssl_reads_as_dns(text: str) -> bool:
    """OpenSSL's test (crypto/x509/v3_utl.c, cn2dnsid) for a CN that name constraints
    apply to: letters, digits, '_', internal '-' and '.', at least one '.', no '..', and
    no '-' next to a '.'."""
    dotted = False
    last = len(text) - 1
    for index, ch in enumerate(text):
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            continue
        if 0 < index < last:
            if ch == "-":
                continue
            if ch == "." and text[index + 1] not in ".-" and text[index - 1] != "-":
                dotted = True
                continue
        return False
    return dotted


def _too_long(text: str) -> InputError:
    return InputError(
        f"subject CN '{printable(text, 80)}' is longer than {MAX_COMMON_NAME} characters",
        "X.509 limits a CN to 64 characters; put long names in the subjectAltName",
    )


def parse_common_name(text: str) -> CommonName:
    """Check the form of a --cn value; InputError names what is wrong."""
    shown = printable(text, 80)
    if not text or text != text.strip():
        raise InputError(
            f"subject CN '{shown}' is empty or starts or ends with a space",
            "e.g. --cn alice or --cn db.corp.internal",
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in text):
        raise InputError(
            f"subject CN '{shown}' contains control or invisible characters",
            "give the CN as plain text, e.g. --cn alice or --cn db.corp.internal",
        )
    if len(text) > MAX_COMMON_NAME:
        raise _too_long(text)
    try:
        return CommonName(text, SubjectName("ip", str(ipaddress.ip_address(text))))
    except ValueError:
        pass
    try:
        return CommonName(text, SubjectName("dns", parse_dns_name(text)))
    except InputError:
        return CommonName(text, None)


def names_to_check(
    common_name: CommonName, names: Sequence[SubjectName], profile: Profile
) -> tuple[SubjectName, ...]:
    """Apply the profile's CN rule; return the names the policy must also permit for it
    (the caller checks them). Raises PolicyError when the profile forbids this CN."""
    member = common_name.name is not None and common_name.name in names
    value = common_name.value_for(names)
    if len(value) > MAX_COMMON_NAME:
        raise _too_long(value)
    if profile.is_server and not member:
        raise PolicyError(
            f"subject CN '{printable(value, 80)}' is not one of the certificate's names, "
            "which a server certificate's CN must be",
            "add it to the names, leave --cn out, or use --profile client for a user name",
        )
    to_check: list[SubjectName] = []
    if not member and common_name.name is not None and common_name.hostname:
        to_check.append(common_name.name)
    if openssl_reads_as_dns(value) and not any(n.kind == "dns" for n in names):
        to_check.append(SubjectName("dns", value.lower()))
    return tuple(dict.fromkeys(to_check))


__all__ = ["CommonName", "names_to_check", "openssl_reads_as_dns", "parse_common_name"]
