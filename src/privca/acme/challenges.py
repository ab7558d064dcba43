"""Challenge validators: http-01 (RFC 8555 §8.3), dns-01 (§8.4), tls-alpn-01 (RFC 8737).

The validators hold the rules; all network I/O goes through a ChallengeNetwork, whose real
implementation (NetworkIO) resolves names (the system resolver or `dns_resolver`), opens
TCP/TLS connections to the address resolved once, and reads a bounded body. Safety rules:
no link-local or cloud-metadata addresses, redirects only to names the policy permits and
only on ports 80/443, at most 10 of them, timeouts everywhere, and the body fetched from
the applicant is never echoed in an error.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from privca.acme.problems import AcmeProblem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
BODY_LIMIT = 4096
MAX_REDIRECTS = 10
REDIRECT_PORTS = (80, 443)
ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
# Cloud metadata endpoints outside link-local space (AWS IPv6, Alibaba, Oracle legacy).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    location: str | None
    body: bytes  # at most BODY_LIMIT + 1 bytes


class ChallengeNetwork(Protocol):
    """The validators' only way out to the network."""

    def resolve(self, name: str) -> list[IPAddress]: ...

    def txt(self, name: str) -> list[bytes]: ...

    def http_get(
        self, scheme: str, address: IPAddress, port: int, host: str, path: str
    ) -> HttpResponse: ...

    def tls_alpn_certificate(
        self, address: IPAddress, port: int, server_name: str
    ) -> tuple[str | None, bytes]:
        """(negotiated ALPN protocol, peer certificate DER)."""


def is_forbidden_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        any(address in network for network in _LINK_LOCAL)
        or address in METADATA_ADDRESSES
        or address.is_multicast
        or address.is_unspecified
    )


def _usable(addresses: Sequence[IPAddress], name: str) -> list[IPAddress]:
    if not addresses:
        raise AcmeProblem("dns", f"no A or AAAA record found for {name}")
    usable = [a for a in addresses if not is_forbidden_address(a)]
    if not usable:
        raise AcmeProblem(
            "connection", f"{name} resolves only to addresses privca never connects to"
        )
    # IPv4 first: the applicant's standalone servers listen there at least.
    return sorted(usable, key=lambda a: a.version)


def key_authorization_digest(key_authorization: str) -> bytes:
    return hashlib.sha256(key_authorization.encode()).digest()


@dataclass
class Validator:
    network: ChallengeNetwork
    http_port: int = 80
    tls_alpn_port: int = 443
    # True if the policy allows a certificate for this host (redirect targets must pass).
    name_allowed: Callable[[str], bool] = lambda host: True
    timeout: float = 10.0

    def validate(
        self, challenge_type: str, identifier_type: str, value: str, key_authorization: str
    ) -> None:
        """Return if valid; raise AcmeProblem (with the identifier) if not."""
        try:
            if challenge_type == "http-01":
                self.http_01(identifier_type, value, key_authorization)
            elif challenge_type == "dns-01":
                self.dns_01(value, key_authorization)
            elif challenge_type == "tls-alpn-01":
                self.tls_alpn_01(identifier_type, value, key_authorization)
            else:
                raise AcmeProblem("malformed", f"unknown challenge type {challenge_type}")
        except AcmeProblem as problem:
            problem.identifier = {"type": identifier_type, "value": value}
            raise

    def _addresses(self, identifier_type: str, value: str) -> list[IPAddress]:
        if identifier_type == "ip":
            return _usable([ipaddress.ip_address(value)], value)
        try:
            return _usable(self.network.resolve(value), value)
        except AcmeProblem:
            raise
        except Exception as exc:
            raise AcmeProblem("dns", f"resolving {value} failed: {type(exc).__name__}") from exc

    # http-01 ----------------------------------------------------------------------------

    def http_01(self, identifier_type: str, value: str, key_authorization: str) -> None:
        token = key_authorization.split(".", 1)[0]
        scheme, host, port = "http", value, self.http_port
        path = f"/.well-known/acme-challenge/{token}"
        addresses = self._addresses(identifier_type, value)
        deadline = time.monotonic() + self.timeout
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._fetch_any(scheme, addresses, port, host, path, deadline)
            if response.status in (301, 302, 303, 307, 308):
                scheme, host, port, path = self._redirect(response.location)
                addresses = self._addresses(_kind(host), host)
                continue
            if response.status != 200:
                raise AcmeProblem(
                    "incorrectResponse",
                    f"{scheme}://{_hostport(host, port)}{path[:100]} answered HTTP "
                    f"{response.status}, not 200",
                )
            if len(response.body) > BODY_LIMIT:
                raise AcmeProblem("incorrectResponse", "the challenge response is too large")
            if response.body.strip() != key_authorization.encode():
                raise AcmeProblem(
                    "incorrectResponse",
                    "the challenge response does not match the key authorization",
                )
            return
        raise AcmeProblem("connection", f"more than {MAX_REDIRECTS} redirects")

    def _redirect(self, location: str | None) -> tuple[str, str, int, str]:
        if not location:
            raise AcmeProblem("connection", "a redirect without a Location header")
        try:
            parts = urlsplit(location)
            port = parts.port
        except ValueError as exc:
            raise AcmeProblem("connection", "a redirect to a malformed URL") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AcmeProblem("connection", "redirects are followed only to http(s) URLs")
        port = port or (80 if parts.scheme == "http" else 443)
        if port not in REDIRECT_PORTS:
            raise AcmeProblem("connection", "redirects are followed only to ports 80 and 443")
        host = parts.hostname.lower()
        if not self.name_allowed(host):
            raise AcmeProblem("connection", "a redirect to a name the CA's policy refuses")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.scheme, host, port, path

    def _fetch_any(
        self,
        scheme: str,
        addresses: Sequence[IPAddress],
        port: int,
        host: str,
        path: str,
        deadline: float,
    ) -> HttpResponse:
        failure: Exception | None = None
        for address in addresses:
            if time.monotonic() > deadline:
                break
            try:
                return self.network.http_get(scheme, address, port, host, path)
            except AcmeProblem:
                raise
            except Exception as exc:  # connection refused, timeout, TLS, bad HTTP
                failure = exc
        reason = type(failure).__name__ if failure is not None else "timeout"
        raise AcmeProblem(
            "connection", f"fetching {scheme}://{_hostport(host, port)}{path[:100]}: {reason}"
        )

    # dns-01 -----------------------------------------------------------------------------

    def dns_01(self, value: str, key_authorization: str) -> None:
        base = value.removeprefix("*.")
        name = f"_acme-challenge.{base}"
        expected = base64.urlsafe_b64encode(key_authorization_digest(key_authorization))
        expected = expected.rstrip(b"=")
        try:
            records = self.network.txt(name)
        except Exception as exc:
            raise AcmeProblem("dns", f"looking up TXT {name} failed: {type(exc).__name__}") from exc
        if not records:
            raise AcmeProblem("dns", f"no TXT record found at {name}")
        if expected not in records:
            raise AcmeProblem("incorrectResponse", f"no TXT record at {name} matches")

    # tls-alpn-01 ------------------------------------------------------------------------

    def tls_alpn_01(self, identifier_type: str, value: str, key_authorization: str) -> None:
        addresses = self._addresses(identifier_type, value)
        server_name = (
            ipaddress.ip_address(value).reverse_pointer if identifier_type == "ip" else value
        )
        failure: Exception | None = None
        result = None
        for address in addresses:
            try:
                result = self.network.tls_alpn_certificate(address, self.tls_alpn_port, server_name)
                break
            except Exception as exc:
                failure = exc
        if result is None:
            reason = type(failure).__name__ if failure is not None else "no address"
            raise AcmeProblem("tls", f"TLS connection to {value}:{self.tls_alpn_port}: {reason}")
        protocol, der = result
        if protocol != ACME_TLS_ALPN:
            raise AcmeProblem("tls", f"the server did not negotiate ALPN {ACME_TLS_ALPN}")
        try:
            certificate = x509.load_der_x509_certificate(der)
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            extension = certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
        except (ValueError, x509.ExtensionNotFound) as exc:
            raise AcmeProblem(
                "incorrectResponse", "the certificate lacks the SAN or acmeIdentifier"
            ) from exc
        names = list(san.value)
        if identifier_type == "ip":
            wanted: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(value))
        else:
            wanted = x509.DNSName(value)
        if len(names) != 1 or names[0] != wanted:
            raise AcmeProblem(
                "incorrectResponse", "the certificate's SAN is not exactly the identifier"
            )
        digest = key_authorization_digest(key_authorization)
        raw = getattr(extension.value, "value", b"")
        if not extension.critical or raw != b"\x04\x20" + digest:
            raise AcmeProblem(
                "incorrectResponse", "the acmeIdentifier does not match the key authorization"
            )


def _kind(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "dns"
    return "ip"


def _hostport(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (80, 443) else f"{shown}:{port}"


def parse_resolver(text: str) -> tuple[str, int]:
    """`10.0.0.53`, `10.0.0.53:5353`, `::1` or `[::1]:5353` -> (address, port).

    The resolver must be an IP address: it is how names get resolved in the first place."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "53"
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ValueError(f"DNS resolver '{text}' is not IP[:PORT]") from None
    if not 0 < port < 65536:
        raise ValueError(f"DNS resolver '{text}' has no valid port")
    return str(address), port


class NetworkIO:
    """The real ChallengeNetwork: dnspython (or the system resolver) and sockets."""

    def __init__(self, resolver: str = "", timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._resolver = None
        if resolver:
            import dns.resolver

            host, port = parse_resolver(resolver)
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = [host]
            r.port = port
            r.timeout = r.lifetime = timeout
            self._resolver = r

    def resolve(self, name: str) -> list[IPAddress]:
        if self._resolver is None:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            found = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
            return sorted(found, key=lambda a: (a.version, int(a)))
        import dns.exception
        import dns.resolver

        found: list[IPAddress] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                if rdtype == "A":
                    raise
                continue
            found.extend(ipaddress.ip_address(r.address) for r in answer)
        return found

    def txt(self, name: str) -> list[bytes]:
        import dns.resolver

        resolver = self._resolver or dns.resolver.Resolver()
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return [b"".join(r.strings) for r in answer]

    def _connect(self, address: IPAddress, port: int) -> socket.socket:
        return socket.create_connection((str(address), port), timeout=self.timeout)

    def http_get(
        self, scheme: str, address: IPAddress, port: int, host: str, path: str
    ) -> HttpResponse:
        sock = self._connect(address, port)
        try:
            if scheme == "https":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(
                    sock, server_hostname=None if _kind(host) == "ip" else host
                )
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {_hostport(host, port)}\r\n"
                "User-Agent: privca-acme-validator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(request.encode("ascii", "replace"))
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read(BODY_LIMIT + 1)
            return HttpResponse(response.status, response.getheader("Location"), body)
        finally:
            sock.close()

    def tls_alpn_certificate(
        self, address: IPAddress, port: int, server_name: str
    ) -> tuple[str | None, bytes]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols([ACME_TLS_ALPN])
        sock = self._connect(address, port)
        try:
            with context.wrap_socket(sock, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True) or b""
                return tls.selected_alpn_protocol(), der
        finally:
            sock.close()


__all__ = [
    "ChallengeNetwork",
    "HttpResponse",
    "NetworkIO",
    "Validator",
    "is_forbidden_address",
]
