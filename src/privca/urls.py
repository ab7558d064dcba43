"""The public URLs: written into certificates when they are built, and answered by the
server's routes. One place, so a certificate never names a URL the server does not serve.

Every URL that names a CA does so by its serial, so it keeps answering after later
rotations and restarts (CA records are never deleted); `root`, `issuing` and `current`
are aliases for the active CAs, for people and scripts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from privca.errors import InputError
from privca.x509.encoding import serial_hex
from privca.x509.names import parse_uri

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
    issuers URLs): http(s)://host[:port][/path], read by the rules of URI names
    (x509.names.parse_uri), so that no control character, user part or host that two
    parsers read differently reaches a certificate; no query or fragment (the paths are
    appended). "" stays "" (no URLs in certificates).

    Raises:
        InputError: naming what is wrong, and `source` (the option or the file).
    """
    if not text:
        return ""
    hint = "give http(s)://host[:port][/path]"
    # A user part may hold a password (a store URL pasted here): never shown.
    shown = _USER_PART.sub("//…@", text)
    try:
        uri = parse_uri(text, original=shown)
    except InputError as exc:
        raise InputError(f"{source}: the base URL is refused: {exc.message}", hint) from exc
    if uri.scheme not in ("http", "https"):
        raise InputError(f"{source}: URL '{shown}' must start with http:// or https://", hint)
    if "?" in uri.text or "#" in uri.text:
        raise InputError(f"{source}: URL '{shown}' has a query or a fragment", hint)
    return uri.text.rstrip("/")


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
