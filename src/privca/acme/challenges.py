"""Challenge validators: http-01 (RFC 8555 §8.3), dns-01 (§8.4), tls-alpn-01 (RFC 8737).

The validators hold the rules; all network I/O goes through a ChallengeNetwork, whose real
implementation (NetworkIO) resolves names (the system resolver or `dns_resolver`), opens
TCP/TLS connections to the address resolved once, and reads a bounded answer.

A validation is a request to an address the applicant chose, so it is treated as hostile:

- One total deadline (a `Deadline`) bounds the whole validation: DNS lookups, connects,
  TLS handshakes, every single read and every redirect. Before each read the socket
  timeout is shrunk to what is left, so a peer that drips one byte at a time cannot
  stretch it (a per-read timeout alone would let it run forever).
- Validations run in their own bounded pool (`ValidationPool`), never in the server's
  shared threadpool, so slow applicants can hold at most that pool.
- Every address is checked before connecting (`address_refusal`): never loopback (unless
  the operator opted in for a lab), link-local, unspecified, multicast, broadcast or cloud
  metadata, whether written plainly or embedded in IPv6 (IPv4-mapped, IPv4-compatible,
  NAT64, 6to4, Teredo); and, when the CA's policy has permitted IP networks, only
  addresses inside them.
- Redirects: at most 10, only http/https, only to the validation ports, only to names the
  policy permits, and the target's addresses are checked the same way.
- Errors say what failed (timeout, refused, TLS, status code, wrong body) and never echo
  what the peer sent.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from privca._text import printable
from privca.acme.problems import AcmeProblem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
P = ParamSpec("P")
T = TypeVar("T")
BODY_LIMIT = 4096
# Everything read from one peer in one exchange (status line, headers, body): the rest
# is refused, so a peer cannot make the validator buffer megabytes of headers.
RESPONSE_LIMIT = 64 * 1024
MAX_REDIRECTS = 10
ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
DEFAULT_TIMEOUT = 10.0
DEFAULT_WORKERS = 10

# Cloud metadata endpoints outside link-local space (AWS IPv6, Alibaba, Oracle legacy).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
# IPv6 ranges that carry an IPv4 address in their last 32 bits.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
# RFC 8215 local-use NAT64: the IPv4 address sits at a prefix-dependent offset, so where
# such an address leads cannot be told from the address alone.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to by a standard translation."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        found.append(low32)
    if address in _IPV4_TRANSLATED or address in _NAT64:
        found.append(low32)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client), the client de-obfuscated
    return found


def _special(address: IPAddress, allow_loopback: bool) -> str | None:
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    if any(address in network for network in _LINK_LOCAL):
        return "link-local"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address == _BROADCAST:
        return "broadcast"
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    return None


def address_refusal(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why the validator must never connect to `address` (a word), or None if it may."""
    if address in _NAT64_LOCAL:
        return "local-use NAT64"
    for candidate in (address, *embedded_ipv4(address)):
        reason = _special(candidate, allow_loopback)
        if reason is not None:
            return reason
    return None


def is_forbidden_address(address: IPAddress, *, allow_loopback: bool = False) -> bool:
    return address_refusal(address, allow_loopback=allow_loopback) is not None


def normalized(address: IPAddress) -> IPAddress:
    """An IPv4-mapped address is the IPv4 address (a dual-stack socket goes there)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Deadline:
    """One total time budget for a validation, measured on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        return self._at - time.monotonic()

    def remaining(self) -> float:
        """Seconds left; raises the timeout problem when none are."""
        left = self.left()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> AcmeProblem:
        return AcmeProblem(
            "connection", f"the validation did not finish within {self.seconds:g} seconds"
        )

    def attempt(
        self, step: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> tuple[T, None] | tuple[None, Exception]:
        """One network step: (its result, None), or (None, why it failed). A problem it
        raises goes on up, and so does the timeout once no time is left."""
        try:
            return step(*args, **kwargs), None
        except AcmeProblem:
            raise
        except Exception as exc:  # connection refused, timeout, TLS, bad HTTP or DNS
            if self.left() <= 0:
                raise self.expired() from exc
            return None, exc


@dataclass(frozen=True)
class HttpResponse:
    status: int
    location: str | None
    body: bytes  # at most BODY_LIMIT + 1 bytes


class ChallengeNetwork(Protocol):
    """The validators' only way out to the network. Every call ends by the deadline."""

    def resolve(self, name: str, deadline: Deadline) -> list[IPAddress]: ...

    def txt(self, name: str, deadline: Deadline) -> list[bytes]: ...

    def http_get(
        self, scheme: str, address: IPAddress, port: int, host: str, path: str, deadline: Deadline
    ) -> HttpResponse: ...

    def tls_alpn_certificate(
        self, address: IPAddress, port: int, server_name: str, deadline: Deadline
    ) -> tuple[str | None, bytes]:
        """(negotiated ALPN protocol, peer certificate DER)."""


def key_authorization_digest(key_authorization: str) -> bytes:
    return hashlib.sha256(key_authorization.encode()).digest()


def _failure(exc: BaseException) -> str:
    """What went wrong, in words that reveal nothing the peer sent."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "TLS handshake failed"
    if isinstance(exc, _TooLarge):
        return "the answer is too large"
    if isinstance(exc, http.client.HTTPException | ValueError | UnicodeError):
        return "the answer is not valid HTTP"
    if isinstance(exc, ConnectionError):
        return "connection reset"
    return "connection failed"


def _hostport(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (80, 443) else f"{shown}:{port}"


def _kind(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "dns"
    return "ip"


@dataclass
class Validator:
    network: ChallengeNetwork
    http_port: int = 80
    tls_alpn_port: int = 443
    # True if the policy allows a certificate for this host (redirect targets must pass).
    name_allowed: Callable[[str], bool] = lambda host: True
    # True if the policy lets the validator connect to this address (permitted networks).
    address_allowed: Callable[[IPAddress], bool] = lambda address: True
    allow_loopback: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def validate(
        self,
        challenge_type: str,
        identifier_type: str,
        value: str,
        key_authorization: str,
        deadline: Deadline | None = None,
    ) -> None:
        """Return if valid; raise AcmeProblem (with the identifier) if not. Ends by the
        deadline (a new one of `timeout` seconds unless given)."""
        deadline = deadline or Deadline(self.timeout)
        try:
            deadline.remaining()  # a validation that waited out its time in the queue
            if challenge_type == "http-01":
                self.http_01(identifier_type, value, key_authorization, deadline)
            elif challenge_type == "dns-01":
                self.dns_01(value, key_authorization, deadline)
            elif challenge_type == "tls-alpn-01":
                self.tls_alpn_01(identifier_type, value, key_authorization, deadline)
            else:
                raise AcmeProblem("malformed", f"unknown challenge type {challenge_type}")
        except AcmeProblem as problem:
            problem.identifier = {"type": identifier_type, "value": value}
            raise

    def _addresses(self, identifier_type: str, value: str, deadline: Deadline) -> list[IPAddress]:
        """Resolve once and keep the addresses the rules allow, IPv4 first."""
        found: Sequence[IPAddress] | None
        if identifier_type == "ip":
            found = [ipaddress.ip_address(value)]
        else:
            found, failure = deadline.attempt(self.network.resolve, value, deadline)
            if failure is not None:
                raise AcmeProblem("dns", f"resolving {value} failed") from failure
        if not found:
            raise AcmeProblem("dns", f"no A or AAAA record found for {value}")
        usable: list[IPAddress] = []
        refusals: list[str] = []
        for address in dict.fromkeys(normalized(a) for a in found):
            reason = address_refusal(address, allow_loopback=self.allow_loopback)
            # The lab opt-in names this machine itself, whatever networks the CA certifies.
            lab = self.allow_loopback and address.is_loopback
            if reason is None and not lab and not self.address_allowed(address):
                reason = "outside the CA's permitted networks"
            if reason is None:
                usable.append(address)
            elif reason not in refusals:
                refusals.append(reason)
        if not usable:
            raise AcmeProblem(
                "connection",
                f"{value} resolves only to addresses privca does not connect to "
                f"({', '.join(refusals)})",
            )
        return sorted(usable, key=lambda a: a.version)

    # http-01 ----------------------------------------------------------------------------

    def http_01(
        self, identifier_type: str, value: str, key_authorization: str, deadline: Deadline
    ) -> None:
        token = key_authorization.split(".", 1)[0]
        scheme, host, port = "http", value, self.http_port
        path = f"/.well-known/acme-challenge/{token}"
        addresses = self._addresses(identifier_type, value, deadline)
        for hop in range(MAX_REDIRECTS + 1):
            response = self._fetch_any(scheme, addresses, port, host, path, deadline, hop)
            if response.status in (301, 302, 303, 307, 308):
                current = f"{scheme}://{_hostport(host, port)}{path}"
                scheme, host, port, path = self._redirect(current, response.location)
                addresses = self._addresses(_kind(host), host, deadline)
                continue
            where = self._where(scheme, host, port, hop)
            if response.status != 200:
                raise AcmeProblem(
                    "incorrectResponse", f"{where} answered HTTP {response.status}, not 200"
                )
            if len(response.body) > BODY_LIMIT:
                raise AcmeProblem("incorrectResponse", f"{where}: the answer is too large")
            if response.body.strip() != key_authorization.encode():
                raise AcmeProblem(
                    "incorrectResponse",
                    f"{where}: the answer does not match the key authorization",
                )
            return
        raise AcmeProblem("connection", f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _where(scheme: str, host: str, port: int, hop: int) -> str:
        # The path is never shown: after a redirect it is whatever the peer wrote.
        shown = f"{scheme}://{_hostport(printable(host, 255), port)}"
        return shown + (f" (after {hop} redirect{'s' if hop > 1 else ''})" if hop else "")

    def _redirect(self, current: str, location: str | None) -> tuple[str, str, int, str]:
        if not location:
            raise AcmeProblem("connection", "a redirect without a Location header")
        try:
            parts = urlsplit(urljoin(current, location.strip()))
            port = parts.port
        except ValueError as exc:
            raise AcmeProblem("connection", "a redirect to a malformed URL") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AcmeProblem("connection", "redirects are followed only to http(s) URLs")
        allowed = self.http_port if parts.scheme == "http" else self.tls_alpn_port
        port = port or (80 if parts.scheme == "http" else 443)
        if port != allowed:
            raise AcmeProblem(
                "connection",
                f"redirects are followed only to the validation ports "
                f"(http {self.http_port}, https {self.tls_alpn_port})",
            )
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
        deadline: Deadline,
        hop: int,
    ) -> HttpResponse:
        failure: Exception | None = None
        for address in addresses:
            deadline.remaining()
            get = self.network.http_get
            response, failure = deadline.attempt(get, scheme, address, port, host, path, deadline)
            if response is not None:
                return response
        reason = _failure(failure) if failure is not None else "no address left"
        raise AcmeProblem(
            "connection", f"fetching {self._where(scheme, host, port, hop)}: {reason}"
        )

    # dns-01 -----------------------------------------------------------------------------

    def dns_01(self, value: str, key_authorization: str, deadline: Deadline) -> None:
        base = value.removeprefix("*.")
        name = f"_acme-challenge.{base}"
        expected = base64.urlsafe_b64encode(key_authorization_digest(key_authorization))
        expected = expected.rstrip(b"=")
        records, failure = deadline.attempt(self.network.txt, name, deadline)
        if failure is not None:
            raise AcmeProblem("dns", f"looking up TXT {name} failed") from failure
        if not records:
            raise AcmeProblem("dns", f"no TXT record found at {name}")
        if expected not in records:
            raise AcmeProblem("incorrectResponse", f"no TXT record at {name} matches")

    # tls-alpn-01 ------------------------------------------------------------------------

    def tls_alpn_01(
        self, identifier_type: str, value: str, key_authorization: str, deadline: Deadline
    ) -> None:
        addresses = self._addresses(identifier_type, value, deadline)
        server_name = (
            ipaddress.ip_address(value).reverse_pointer if identifier_type == "ip" else value
        )
        failure: Exception | None = None
        for address in addresses:
            deadline.remaining()
            handshake = self.network.tls_alpn_certificate
            result, failure = deadline.attempt(
                handshake, address, self.tls_alpn_port, server_name, deadline
            )
            if result is not None:
                break
        else:
            reason = _failure(failure) if failure is not None else "no address left"
            raise AcmeProblem(
                "tls", f"TLS connection to {_hostport(value, self.tls_alpn_port)}: {reason}"
            )
        protocol, der = result
        if protocol != ACME_TLS_ALPN:
            raise AcmeProblem("tls", f"the server did not negotiate ALPN {ACME_TLS_ALPN}")
        _check_tls_alpn_certificate(der, identifier_type, value, key_authorization)


def _check_tls_alpn_certificate(
    der: bytes, identifier_type: str, value: str, key_authorization: str
) -> None:
    """RFC 8737 §3: exactly the identifier as SAN, and a critical acmeIdentifier holding
    the SHA-256 of the key authorization."""
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


class _TooLarge(Exception):
    pass


class _DeadlineReader(io.RawIOBase):
    """Reads a socket with the timeout shrunk to the deadline before every read, and no
    more than `limit` bytes in all."""

    def __init__(self, sock: socket.socket, deadline: Deadline, limit: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise _TooLarge
        view = memoryview(buffer)[: self._left]
        self._sock.settimeout(self._deadline.remaining())
        count = self._sock.recv_into(view)
        self._left -= count
        return count


class _DeadlineSocket:
    """What http.client.HTTPResponse needs of a socket: `makefile`, here deadline-bound."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *_args: Any, **_kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, RESPONSE_LIMIT))


def _getaddrinfo(name: str, deadline: Deadline) -> list[IPAddress]:
    """The system resolver (which also reads /etc/hosts), abandoned at the deadline:
    getaddrinfo cannot be interrupted, so it runs in a daemon thread of its own."""
    result: list[IPAddress] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            result.extend(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="privca-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise deadline.expired()
    if failure:
        raise failure[0]
    return sorted(set(result), key=lambda a: (a.version, int(a)))


class NetworkIO:
    """The real ChallengeNetwork: dnspython (or the system resolver) and sockets."""

    def __init__(self, resolver: str = "") -> None:
        self._resolver: Any = None
        if resolver:
            import dns.resolver

            host, port = parse_resolver(resolver)
            configured = dns.resolver.Resolver(configure=False)
            configured.nameservers = [host]
            configured.port = port
            self._resolver = configured

    def _dns(self) -> Any:
        if self._resolver is None:
            import dns.resolver

            self._resolver = dns.resolver.Resolver()  # /etc/resolv.conf
        return self._resolver

    def resolve(self, name: str, deadline: Deadline) -> list[IPAddress]:
        if self._resolver is None:
            return _getaddrinfo(name, deadline)
        import dns.exception
        import dns.resolver

        found: list[IPAddress] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(name, rdtype, lifetime=deadline.remaining())
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                if rdtype == "A":
                    raise
                continue
            found.extend(ipaddress.ip_address(r.address) for r in answer)
        return found

    def txt(self, name: str, deadline: Deadline) -> list[bytes]:
        import dns.resolver

        try:
            answer = self._dns().resolve(name, "TXT", lifetime=deadline.remaining())
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        return [b"".join(r.strings) for r in answer]

    @staticmethod
    def _connect(address: IPAddress, port: int, deadline: Deadline) -> socket.socket:
        return socket.create_connection((str(address), port), timeout=deadline.remaining())

    def http_get(
        self, scheme: str, address: IPAddress, port: int, host: str, path: str, deadline: Deadline
    ) -> HttpResponse:
        sock = self._connect(address, port, deadline)
        try:
            if scheme == "https":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                # CPython bounds the whole handshake (not each read) by the socket timeout.
                sock.settimeout(deadline.remaining())
                sock = context.wrap_socket(
                    sock, server_hostname=None if _kind(host) == "ip" else host
                )
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {_hostport(host, port)}\r\n"
                "User-Agent: privca-acme-validator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            sock.settimeout(deadline.remaining())
            sock.sendall(request.encode("ascii", "replace"))
            response = http.client.HTTPResponse(_DeadlineSocket(sock, deadline))  # type: ignore[arg-type]
            response.begin()
            body = response.read(BODY_LIMIT + 1)
            return HttpResponse(response.status, response.getheader("Location"), body)
        finally:
            sock.close()

    def tls_alpn_certificate(
        self, address: IPAddress, port: int, server_name: str, deadline: Deadline
    ) -> tuple[str | None, bytes]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols([ACME_TLS_ALPN])
        sock = self._connect(address, port, deadline)
        try:
            sock.settimeout(deadline.remaining())
            with context.wrap_socket(sock, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True) or b""
                return tls.selected_alpn_protocol(), der
        finally:
            sock.close()


@dataclass
class ValidationPool:
    """The validators' own bounded threads, apart from the server's shared threadpool
    (which serves OCSP, CRLs, nonces and health): a slow applicant can tie up at most
    these. Work beyond `workers` waits in the queue; each job checks its deadline when
    it starts, so a job that waited its time out ends at once."""

    workers: int = DEFAULT_WORKERS
    _executor: concurrent.futures.ThreadPoolExecutor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def submit(self, job: Callable[[], None]) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="privca-validation"
                )
            return self._executor.submit(job)

    def close(self) -> None:
        """Stop taking work; queued validations are dropped, running ones end by their
        deadline."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


__all__ = [
    "ChallengeNetwork",
    "Deadline",
    "HttpResponse",
    "NetworkIO",
    "ValidationPool",
    "Validator",
    "address_refusal",
    "embedded_ipv4",
    "is_forbidden_address",
]
