"""The public URLs: written into certificates when they are built, and answered by the
server's routes. One place, so a certificate never names a URL the server does not serve.

Every URL that names a CA does so by its serial, so it keeps answering after later
rotations and restarts (CA records are never deleted); `root`, `issuing` and `current`
are aliases for the active CAs, for people and scripts.
"""

from __future__ import annotations

from privca.x509.encoding import serial_hex

OCSP_PATH = "/ocsp"
# Where `privca crl --root` publishes the root's CRL: the CDP of every issuing CA.
ROOT_CRL_PATH = "/crl/root.crl"
CA_ALIASES = ("root", "issuing", "current")


def crl_path(issuer_serial: int) -> str:
    return f"/crl/{serial_hex(issuer_serial)}.crl"


def ca_certificate_path(serial: int) -> str:
    """DER, as AIA caIssuers fetchers expect (RFC 5280 4.2.2.1)."""
    return f"/ca/{serial_hex(serial)}.der"


def absolute(base_url: str, path: str) -> str | None:
    """`path` under the CA's base URL, or None when the CA has no base URL."""
    return base_url.rstrip("/") + path if base_url else None


__all__ = [
    "CA_ALIASES",
    "OCSP_PATH",
    "ROOT_CRL_PATH",
    "absolute",
    "ca_certificate_path",
    "crl_path",
]
