"""Scan live TLS services: fetch the chain they serve and judge it against the inventory.

Services that start in plain text and switch to TLS on request (PostgreSQL, SMTP, IMAP,
LDAP, MySQL) are spoken to first as `openssl s_client -starttls PROTO` does; the protocol
follows from the well-known port unless it is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from privca._text import printable
from privca._time import days_left as whole_days_left
from privca.errors import InputError

if TYPE_CHECKING:
    from cryptography import x509

    from privca.authority import CertificateAuthority

# cryptography is imported where it is used: `privca scan --help` (and every other
# command's help, which imports this module for --starttls) stays fast.


@dataclass(frozen=True)
class ServedChain:
    target: str
    host: str
    port: int
    server_name: str
    chain: tuple[x509.Certificate, ...] = ()
    tls_version: str = ""
    error: str = ""
    starttls: str | None = None  # the protocol spoken before the handshake, if any
    # unreachable (no connection) | no-tls (the service declined STARTTLS) | tls (handshake)
    failure: str = ""


def parse_target(target: str) -> tuple[str, int]:
    host, sep, port_text = target.rpartition(":")
    if not sep or not host:
        host, port_text = target, "443"
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise InputError(
            f"target '{target}' is not HOST:PORT", "e.g. db.corp.internal:5432"
        ) from None
    if not 0 < port < 65536:
        raise InputError(f"port {port} of '{target}' is out of range")
    return check_host(host, f"target '{target}'"), port


def check_host(host: str, what: str) -> str:
    """`host` when the resolver and TLS (which encode it as IDNA) can take it: an address,
    or a name whose labels are 1 to 63 characters once encoded (the encoder's
    UnicodeError otherwise surfaced as an internal error)."""
    from privca.x509.names import is_ip_address

    if is_ip_address(host):
        return host
    try:
        host.encode("idna")
    except UnicodeError:
        raise InputError(
            f"{what} does not hold a host name privca can look up",
            "each label of a name is 1 to 63 characters, e.g. db.corp.internal:5432",
        ) from None
    return host


def starttls_for(port: int, forced: str | None) -> str | None:
    """The protocol to speak before TLS: `forced` ("none" for direct TLS), else the one the
    well-known port implies, else None (TLS from the first byte)."""
    if forced is not None:
        if forced not in (*STARTTLS_PROTOCOLS, "none"):
            raise InputError(
                f"STARTTLS protocol '{forced}' is not one privca speaks",
                "use one of: " + ", ".join((*STARTTLS_PROTOCOLS, "none")),
            )
        return None if forced == "none" else forced
    return WELL_KNOWN_PORTS.get(port)


def fetch_chain(
    target: str, server_name: str | None, timeout: float, starttls: str | None = None
) -> ServedChain:
    """Handshake without verifying (we judge afterwards) and keep every certificate sent.

    `starttls` forces a protocol ("none": direct TLS); by default the port decides, as
    `openssl s_client -starttls` would be told. `timeout` bounds the whole exchange."""
    from cryptography import x509

    from privca.x509.names import is_ip_address

    host, port = parse_target(target)
    protocol = starttls_for(port, starttls)
    name = check_host(server_name, "--name") if server_name else host
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    base = ServedChain(target, host, port, name, starttls=protocol)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return replace(base, error=f"{type(exc).__name__}: {exc}", failure="unreachable")
    with raw:
        if protocol is not None:
            try:
                _NEGOTIATORS[protocol](_Conversation(raw, deadline))
            except StartTlsRefused as exc:
                return replace(base, error=str(exc), failure="no-tls")
            except OSError as exc:
                error = f"{protocol} STARTTLS failed: {type(exc).__name__}: {exc}"
                return replace(base, error=error, failure="no-tls")
        try:
            with _handshake(context, raw, None if is_ip_address(name) else name, deadline) as tls:
                # The public get_unverified_chain() arrives in Python 3.13; 3.11 has it
                # privately.
                raw_chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
                chain = tuple(
                    x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
                    for c in raw_chain
                )
                version = tls.version() or ""
        except (OSError, ssl.SSLError) as exc:
            return replace(base, error=f"{type(exc).__name__}: {exc}", failure="tls")
    return replace(base, chain=chain, tls_version=version)


@contextlib.contextmanager
def _handshake(
    context: ssl.SSLContext, raw: socket.socket, server_hostname: str | None, deadline: float
) -> Iterator[ssl.SSLSocket]:
    """A TLS handshake bounded by `deadline` as a whole (a socket timeout bounds each read
    only, and a peer dripping bytes would stretch it without end)."""
    raw.setblocking(False)
    tls = context.wrap_socket(raw, server_hostname=server_hostname, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                wait_read = True
            except ssl.SSLWantWriteError:
                wait_read = False
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the TLS handshake did not finish in time")
            readable, writable, _ = select.select(
                [tls] if wait_read else [], [] if wait_read else [tls], [], left
            )
            if not readable and not writable:
                raise TimeoutError("the TLS handshake did not finish in time")
        yield tls
    finally:
        tls.close()


# STARTTLS: what `openssl s_client -starttls PROTO` says before the handshake. ------------

STARTTLS_PROTOCOLS = ("postgres", "smtp", "imap", "ldap", "mysql")
WELL_KNOWN_PORTS = {5432: "postgres", 25: "smtp", 587: "smtp", 143: "imap", 389: "ldap",
                    3306: "mysql"}  # fmt: skip
MAX_PRELUDE = 64 * 1024  # what a service may send before TLS: greetings, capabilities
MAX_LINE = 8 * 1024


class StartTlsRefused(Exception):
    """The service answered, but not with "go ahead with TLS"."""


class _Conversation:
    """Reads and writes on the raw socket with one deadline for the whole exchange and a
    cap on what the peer may send, so a slow or chatty service cannot hold the scan."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""
        self._received = 0

    def send(self, data: bytes) -> None:
        self._sock.settimeout(self._left())
        self._sock.sendall(data)

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the service did not answer in time")
        return left

    def _fill(self) -> None:
        self._sock.settimeout(self._left())
        chunk = self._sock.recv(4096)
        if not chunk:
            raise ConnectionError("the service closed the connection")
        self._received += len(chunk)
        if self._received > MAX_PRELUDE:
            raise StartTlsRefused(f"the service sent more than {MAX_PRELUDE} bytes before TLS")
        self._buffer += chunk

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_line(self) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise StartTlsRefused(f"the service sent a line longer than {MAX_LINE} bytes")
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def finish(self, protocol: str) -> None:
        """TLS starts now: a byte already sent by the service would be read as TLS (or,
        worse, injected into it: CVE-2021-23214), so anything buffered is refused."""
        if self._buffer:
            raise StartTlsRefused(f"the {protocol} service sent data after agreeing to TLS")


def _shown(text: str) -> str:
    return printable(text.strip(), 80)


def _smtp_reply(conversation: _Conversation) -> tuple[str, str]:
    """A (possibly multi-line) SMTP reply: its code and its last line."""
    while True:
        line = conversation.read_line()
        if len(line) < 3 or not line[:3].isdigit():
            raise StartTlsRefused(f"the SMTP service answered '{_shown(line)}'")
        if line[3:4] != "-":
            return line[:3], line


def _starttls_smtp(conversation: _Conversation) -> None:
    code, line = _smtp_reply(conversation)
    if code != "220":
        raise StartTlsRefused(f"the SMTP service greeted with '{_shown(line)}'")
    conversation.send(b"EHLO privca-scan.invalid\r\n")
    code, line = _smtp_reply(conversation)
    if code != "250":
        raise StartTlsRefused(f"the SMTP service refused EHLO: '{_shown(line)}'")
    conversation.send(b"STARTTLS\r\n")
    code, line = _smtp_reply(conversation)
    if code != "220":
        raise StartTlsRefused(f"the SMTP service refused STARTTLS: '{_shown(line)}'")
    conversation.finish("SMTP")


def _starttls_imap(conversation: _Conversation) -> None:
    greeting = conversation.read_line()
    if not greeting.upper().startswith("* OK"):
        raise StartTlsRefused(f"the IMAP service greeted with '{_shown(greeting)}'")
    conversation.send(b"P1 STARTTLS\r\n")
    while True:
        line = conversation.read_line()
        if line.startswith("* "):
            continue  # untagged data (capabilities, alerts)
        if line.upper().startswith("P1 OK"):
            break
        raise StartTlsRefused(f"the IMAP service refused STARTTLS: '{_shown(line)}'")
    conversation.finish("IMAP")


# SSLRequest: length 8, then the code 1234 5679 (PostgreSQL protocol 53.2, "SSLRequest").
_POSTGRES_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _starttls_postgres(conversation: _Conversation) -> None:
    conversation.send(_POSTGRES_SSL_REQUEST)
    answer = conversation.read_exact(1)
    if answer == b"N":
        raise StartTlsRefused("the PostgreSQL server does not offer TLS (ssl = off)")
    if answer != b"S":
        raise StartTlsRefused("the service on this port does not speak PostgreSQL")
    conversation.finish("PostgreSQL")


# RFC 4511 4.14.1: ExtendedRequest with requestName 1.3.6.1.4.1.1466.20037, message id 1.
_LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_LDAP_STARTTLS = (
    bytes([0x30, 5 + 2 + len(_LDAP_STARTTLS_OID), 0x02, 0x01, 0x01])
    + bytes([0x77, 2 + len(_LDAP_STARTTLS_OID), 0x80, len(_LDAP_STARTTLS_OID)])
    + _LDAP_STARTTLS_OID
)


def _ber_header(conversation: _Conversation) -> tuple[int, int]:
    """A BER tag and definite length (short or long form, at most 4 length bytes)."""
    tag, first = conversation.read_exact(2)
    if first < 0x80:
        return tag, first
    count = first & 0x7F
    if not 0 < count <= 4:
        raise StartTlsRefused("the LDAP answer has a length privca does not accept")
    return tag, int.from_bytes(conversation.read_exact(count), "big")


def _starttls_ldap(conversation: _Conversation) -> None:
    conversation.send(_LDAP_STARTTLS)
    tag, length = _ber_header(conversation)
    if tag != 0x30 or length > MAX_LINE:
        raise StartTlsRefused("the service on this port does not speak LDAP")
    body = conversation.read_exact(length)
    # messageID INTEGER, then [APPLICATION 24] ExtendedResponse { resultCode ENUMERATED ... }
    if len(body) < 3 or body[0] != 0x02 or body[1] > 4:
        raise StartTlsRefused("the LDAP answer is malformed")
    rest = body[2 + body[1] :]
    if len(rest) < 5 or rest[0] != 0x78:
        raise StartTlsRefused("the LDAP answer is not an ExtendedResponse")
    offset = 2 if rest[1] < 0x80 else 2 + (rest[1] & 0x7F)
    result = rest[offset : offset + 3]
    if len(result) < 3 or result[0] != 0x0A or result[1] != 1:
        raise StartTlsRefused("the LDAP ExtendedResponse has no result code")
    if result[2] != 0:
        raise StartTlsRefused(f"the LDAP server refused StartTLS (result code {result[2]})")
    conversation.finish("LDAP")


_MYSQL_CLIENT_SSL = 0x0800
_MYSQL_CLIENT_PROTOCOL_41 = 0x0200
_MYSQL_CLIENT_SECURE_CONNECTION = 0x8000


def _starttls_mysql(conversation: _Conversation) -> None:
    header = conversation.read_exact(4)
    length = int.from_bytes(header[:3], "little")
    if length > MAX_LINE:
        raise StartTlsRefused("the service on this port does not speak MySQL")
    packet = conversation.read_exact(length)
    if packet[:1] == b"\xff":
        message = packet[3:].decode("utf-8", "replace")
        raise StartTlsRefused(f"the MySQL server refused the connection: '{_shown(message)}'")
    if packet[:1] != b"\x0a":
        raise StartTlsRefused("the service on this port does not speak MySQL protocol 10")
    end = packet.find(b"\x00", 1)  # the server version, NUL-terminated
    flags_at = end + 1 + 4 + 8 + 1  # connection id, auth data part 1, filler
    if end < 0 or len(packet) < flags_at + 2:
        raise StartTlsRefused("the MySQL handshake packet is too short")
    capabilities = int.from_bytes(packet[flags_at : flags_at + 2], "little")
    if not capabilities & _MYSQL_CLIENT_SSL:
        raise StartTlsRefused("the MySQL server does not offer TLS")
    flags = _MYSQL_CLIENT_SSL | _MYSQL_CLIENT_PROTOCOL_41 | _MYSQL_CLIENT_SECURE_CONNECTION
    payload = struct.pack("<IIB", flags, 1 << 24, 0x21) + bytes(23)
    sequence = (header[3] + 1) & 0xFF
    conversation.send(len(payload).to_bytes(3, "little") + bytes([sequence]) + payload)
    conversation.finish("MySQL")


_NEGOTIATORS: dict[str, Callable[[_Conversation], None]] = {
    "postgres": _starttls_postgres,
    "smtp": _starttls_smtp,
    "imap": _starttls_imap,
    "ldap": _starttls_ldap,
    "mysql": _starttls_mysql,
}


_FAILURE_LABELS = {"unreachable": "UNREACHABLE", "no-tls": "NO TLS", "tls": "TLS FAILED"}


@dataclass(frozen=True)
class ScanResult:
    served: ServedChain
    names: tuple[str, ...] = ()
    serial: str = ""
    days_left: int = 0
    ours: bool = False
    complete: bool = False
    name_ok: bool = False
    status: str = "unknown"
    findings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.findings

    def document(self) -> dict[str, object]:
        return {
            "target": self.served.target,
            "server_name": self.served.server_name,
            "starttls": self.served.starttls,
            "tls_version": self.served.tls_version,
            "chain": [c.subject.rfc4514_string() for c in self.served.chain],
            "names": list(self.names),
            "serial": self.serial,
            "days_left": self.days_left,
            "ours": self.ours,
            "chain_complete": self.complete,
            "name_matches": self.name_ok,
            "status": self.status,
            "ok": self.ok,
            "findings": list(self.findings),
            "error": self.served.error or None,
        }

    def text(self) -> str:
        target = self.served.target
        if self.served.starttls:
            target += f" ({self.served.starttls} STARTTLS)"
        if self.served.error:
            label = _FAILURE_LABELS.get(self.served.failure, "UNREACHABLE")
            return f"{target}: {label} ({printable(self.served.error, 300)})"
        head = (
            f"{target}: {'OK' if self.ok else 'ATTENTION'} serial {self.serial} "
            f"[{self.status}] {', '.join(self.names)}; {self.days_left} days left; "
            f"chain of {len(self.served.chain)} ({'complete' if self.complete else 'incomplete'})"
        )
        return "\n".join([head, *(f"  - {f}" for f in self.findings)])


def judge(served: ServedChain, ca: CertificateAuthority | None, now: dt.datetime) -> ScanResult:
    from cryptography.hazmat.primitives.serialization import Encoding

    from privca.x509.encoding import serial_hex

    if served.error or not served.chain:
        return ScanResult(served, findings=(served.error or "no certificate was served",))
    leaf, intermediates = served.chain[0], served.chain[1:]
    names = _served_names(leaf)
    days_left = whole_days_left(leaf.not_valid_after_utc, now)
    findings: list[str] = []
    if days_left <= 0:
        findings.append("the served certificate has expired")
    name = served.server_name
    if ca is None:
        return ScanResult(
            served,
            names,
            serial_hex(leaf.serial_number),
            days_left,
            findings=(*findings, "no CA home to compare with"),
        )
    # Both roots during a root rollover: a leaf of the old hierarchy is still ours.
    roots = [r.certificate for r in ca.registry.trusted_roots]
    known = ca.registry.intermediates()
    verdict = _chain_verdict(leaf, roots, intermediates, known, now, name)
    if not verdict.ours:
        from privca.x509.verify import untrusted_root_problem

        # Genuine, but under a root retired by a rollover: say so, not "not issued by us".
        untrusted = ca.registry.untrusted_roots(roots)
        retired = untrusted_root_problem(leaf, [*intermediates, *known], untrusted)
        if retired is not None:
            verdict = replace(verdict, untrusted_root=retired)
    record = ca.inventory.get(leaf.serial_number) if verdict.ours else None
    same = record is not None and record.der == leaf.public_bytes(Encoding.DER)
    status = record.status_at(now) if same and record is not None else "unknown"
    superseded_by = record.superseded_by if record is not None else None
    findings.extend(_chain_findings(verdict, name, status, superseded_by))
    return ScanResult(
        served,
        names,
        serial_hex(leaf.serial_number),
        days_left,
        verdict.ours,
        verdict.complete,
        verdict.name_ok,
        status,
        tuple(findings),
    )


@dataclass(frozen=True)
class _ChainVerdict:
    ours: bool  # chains to the CA's root, with the chain served or the CA's own issuers
    complete: bool  # chains to the root with only what the server sent
    name_ok: bool  # ...and is valid for the name the client asked for
    untrusted_root: str | None = None  # not ours: it chains to a root of ours not trusted now


def _served_names(leaf: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    from privca.x509.names import names_from_general_names

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(n) for n in names_from_general_names(san))


def _chain_verdict(
    leaf: x509.Certificate,
    roots: list[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    known: list[x509.Certificate],
    now: dt.datetime,
    name: str | None,
) -> _ChainVerdict:
    from privca.x509.verify import verify_chain

    as_served = verify_chain(leaf, roots, intermediates, now, name)
    with_known = (
        as_served
        if as_served.ok
        else verify_chain(leaf, roots, [*intermediates, *known], now, name)
    )
    without_name = (
        with_known
        if with_known.ok
        else verify_chain(leaf, roots, [*intermediates, *known], now, None)
    )
    ours = without_name.ok
    complete = as_served.ok or (ours and verify_chain(leaf, roots, intermediates, now).ok)
    return _ChainVerdict(ours=ours, complete=complete, name_ok=with_known.ok)


def _chain_findings(
    verdict: _ChainVerdict, name: str | None, status: str, superseded_by: int | None
) -> list[str]:
    from privca.authority_records import OUTSIDE_RECORDS
    from privca.x509.encoding import serial_hex

    if not verdict.ours:
        return [verdict.untrusted_root or "not issued by this CA (does not chain to its root)"]
    findings: list[str] = []
    if not verdict.complete:
        findings.append("incomplete chain: the server does not send the issuing CA")
    if not verdict.name_ok:
        findings.append(f"the certificate is not valid for '{name}'")
    if status == "revoked":
        findings.append("the served certificate is REVOKED")
    elif status == "superseded" and superseded_by:
        findings.append(
            f"superseded by {serial_hex(superseded_by)}: the service has not picked "
            "up its renewed certificate"
        )
    elif status == "unknown":
        findings.append(f"{OUTSIDE_RECORDS} (chains to this CA, not in its inventory)")
    return findings


# What `privca scan` saw, kept in the home so that `privca rotate status` can say which
# endpoints still serve the old hierarchy after a root rollover. One entry per target,
# the last scan wins; nothing secret (the served leaf's serial and issuer key id).
SCANS_VERSION = 1


@dataclass(frozen=True)
class ScannedEndpoint:
    target: str
    scanned_at: dt.datetime
    serial: str  # hex, of the leaf served
    authority_key_identifier: str  # hex of the leaf's AKI; "" when it has none

    def document(self) -> dict[str, str]:
        from privca._time import isoformat

        return {
            "target": self.target,
            "scanned_at": isoformat(self.scanned_at),
            "serial": self.serial,
            "authority_key_identifier": self.authority_key_identifier,
        }


def scanned_endpoint(result: ScanResult, now: dt.datetime) -> ScannedEndpoint | None:
    """What to remember of one scan: nothing when no certificate was served."""
    from cryptography import x509

    if not result.served.chain:
        return None
    leaf = result.served.chain[0]
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        key_id = (aki.value.key_identifier or b"").hex()
    except (x509.ExtensionNotFound, ValueError):
        key_id = ""
    return ScannedEndpoint(result.served.target, now, result.serial, key_id)


def read_scans(path: Path) -> list[ScannedEndpoint]:
    """The endpoints recorded in `path`, oldest scan first; none when there is no file
    (a file that is not ours is InputError: it is in the CA home)."""
    import json

    from privca._time import as_utc

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InputError(f"cannot read '{path}': {exc.strerror}") from None
    try:
        document = json.loads(text)
        entries = [
            ScannedEndpoint(
                str(e["target"]),
                as_utc(dt.datetime.fromisoformat(str(e["scanned_at"]))),
                str(e["serial"]),
                str(e["authority_key_identifier"]),
            )
            for e in document["endpoints"]
        ]
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f"'{path}' is not a record of privca scan", "remove it; the next scan rewrites it"
        ) from None
    return sorted(entries, key=lambda e: e.scanned_at)


def record_scans(path: Path, scanned: Sequence[ScannedEndpoint]) -> None:
    """Keep the last scan of each target (atomically; a scan racing another may lose the
    other's entries, never half a file)."""
    import json

    from privca.home import atomic_write

    by_target = {e.target: e for e in read_scans(path)}
    by_target.update((e.target, e) for e in scanned)
    document = {
        "version": SCANS_VERSION,
        "endpoints": [e.document() for e in sorted(by_target.values(), key=lambda e: e.target)],
    }
    atomic_write(path, (json.dumps(document, indent=2) + "\n").encode(), 0o600)


def old_hierarchy_endpoints(
    ca: CertificateAuthority, scanned: Sequence[ScannedEndpoint]
) -> list[ScannedEndpoint]:
    """The recorded endpoints whose served leaf was signed by a CA of the old hierarchy
    of the rollover under way (found by the leaf's AKI; none when no rollover is)."""
    from privca.rotation import old_hierarchy

    registry = ca.registry
    old_ids = old_hierarchy(registry)
    old_keys = {a.key_identifier.hex() for a in registry.authorities if a.id in old_ids}
    return [e for e in scanned if e.authority_key_identifier in old_keys]
