"""The public URLs: written into certificates when they are built, and answered by the
server's routes. One place, so a certificate never names a URL the server does not serve.

Every URL that names a CA does so by its serial, so it keeps answering after later
rotations and restarts (CA records are never deleted); `root`, `issuing` and `current`
are aliases for the active CAs, for people and scripts.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from privca.errors import InputError
from privca.x509.encoding import serial_hex

OCSP_PATH = "/ocsp"
CRL_PREFIX = "/crl"
CA_PREFIX = "/ca"
ACME_PREFIX = "/acme"
ACME_DIRECTORY_PATH = ACME_PREFIX + "/directory"
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
# The root's CRL published by `privca crl --root`: the CDP of issuing CAs made before each
# root had its own (crl_path of the root's serial); the old root's while a rollover lasts.
ROOT_CRL_PATH = CRL_PREFIX + "/root.crl"
ISSUING_CRL_PATH = CRL_PREFIX + "/issuing.crl"
ROOT_CERTIFICATE_PATH = CA_PREFIX + "/root.crt"
ISSUING_CERTIFICATE_PATH = CA_PREFIX + "/issuing.crt"
CHAIN_FILE = "chain.pem"
CHAIN_PATH = CA_PREFIX + "/" + CHAIN_FILE
ROOTS_FILE = "roots.pem"  # every root to trust now (two during a root rollover)
AUDIT_CERTIFICATE_FILE = "audit.crt"  # the audit key's certificate (checkpoints, exports)
AUDIT_CHECKPOINT_PATH = "/audit/checkpoint"  # the latest signed checkpoint of the audit log
CROSS_FILE = "cross.pem"  # a root rollover's cross-certificate (empty when none)
CA_ALIASES = ("root", "issuing", "current")
# Starlette route patterns for the files above (one path segment each).
CRL_ROUTE = CRL_PREFIX + "/{name}"
CA_ROUTE = CA_PREFIX + "/{name}"
OCSP_GET_ROUTE = OCSP_PATH + "/{encoded:path}"


def crl_path(issuer_serial: int) -> str:
    return f"{CRL_PREFIX}/{serial_hex(issuer_serial)}.crl"


def ca_certificate_path(serial: int) -> str:
    """DER, as AIA caIssuers fetchers expect (RFC 5280 4.2.2.1)."""
    return f"{CA_PREFIX}/{serial_hex(serial)}.der"


def check_base_url(text: str, source: str = "--url") -> str:
    """The base URL of `privca serve` as every certificate will carry it (CRL, OCSP and CA
    issuers URLs): http(s)://host[:port][/path]. Refused: any character outside printable
    ASCII (a control character would reach every certificate and every terminal that
    shows one), a backslash, a user part or a percent-encoded host (parsers disagree on
    where such a host ends), a query or a fragment (the paths are appended). A host is
    otherwise as RFC 3986 allows it (an underscore too: URLs are not DNS names). "" stays
    "" (no URLs in certificates).

    Raises:
        InputError: naming what is wrong, and `source` (the option or the file).
    """
    if not text:
        return ""
    hint = "give http(s)://host[:port][/path]"
    # A user part may hold a password (a store URL pasted here): never shown.
    shown = _USER_PART.sub("//…@", text)

    def refuse(why: str) -> InputError:
        return InputError(f"{source}: URL '{shown}' {why}", hint)

    if not all(33 <= ord(ch) < 127 for ch in text):
        raise refuse("has a character that is not printable ASCII (a space, a control one)")
    if "\\" in text:
        raise refuse("has a backslash, which WHATWG URL parsers read as '/'")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise refuse("must start with http:// or https://")
    if "@" in parts.netloc:
        raise refuse("has a user part (user@host), which parsers disagree on")
    if "%" in parts.netloc:
        raise refuse("has a percent-encoded host, which parsers decode differently")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise refuse("has a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or port == 0:
        raise refuse("has no host, or a port outside 1-65535")
    return text.rstrip("/")


_USER_PART = re.compile(r"//[^/?#]*@")


def absolute(base_url: str, path: str) -> str | None:
    """`path` under the CA's base URL, or None when the CA has no base URL."""
    return base_url.rstrip("/") + path if base_url else None


@dataclass(frozen=True)
class CertificateUrls:
    """The URLs one certificate names: CRL distribution point, OCSP, caIssuers."""

    crl: str | None = None
    ocsp: str | None = None
    ca_issuers: str | None = None


def leaf_urls(base_url: str, issuer_serial: int) -> CertificateUrls:
    """A leaf names its own issuer's CRL and certificate (by serial: still served after
    later rotations) and the OCSP responder."""
    return CertificateUrls(
        crl=absolute(base_url, crl_path(issuer_serial)),
        ocsp=absolute(base_url, OCSP_PATH),
        ca_issuers=absolute(base_url, ca_certificate_path(issuer_serial)),
    )


def issuing_ca_urls(base_url: str, root_serial: int) -> CertificateUrls:
    """An issuing CA names its root's certificate and that root's CRL, which `privca crl
    --root` publishes (the server never signs with the root key). By serial, so that
    during a root rollover each hierarchy's issuing CAs reach their own root's CRL."""
    return CertificateUrls(
        crl=absolute(base_url, crl_path(root_serial)),
        ca_issuers=absolute(base_url, ca_certificate_path(root_serial)),
    )


__all__ = [
    "ACME_DIRECTORY_PATH",
    "ACME_PREFIX",
    "AUDIT_CERTIFICATE_FILE",
    "AUDIT_CHECKPOINT_PATH",
    "CA_ALIASES",
    "CA_ROUTE",
    "CHAIN_PATH",
    "CRL_ROUTE",
    "CROSS_FILE",
    "HEALTH_PATH",
    "ISSUING_CERTIFICATE_PATH",
    "ISSUING_CRL_PATH",
    "METRICS_PATH",
    "OCSP_GET_ROUTE",
    "OCSP_PATH",
    "ROOTS_FILE",
    "ROOT_CERTIFICATE_PATH",
    "ROOT_CRL_PATH",
    "CertificateUrls",
    "absolute",
    "ca_certificate_path",
    "crl_path",
    "issuing_ca_urls",
    "leaf_urls",
]
