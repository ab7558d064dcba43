"""Scan live TLS services: fetch the chain they serve and judge it against the inventory."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca._time import days_left as whole_days_left
from privca.errors import InputError
from privca.x509.encoding import serial_hex
from privca.x509.names import names_from_general_names
from privca.x509.verify import verify_chain

if TYPE_CHECKING:
    from privca.authority import CertificateAuthority


@dataclass(frozen=True)
class ServedChain:
    target: str
    host: str
    port: int
    server_name: str
    chain: tuple[x509.Certificate, ...] = ()
    tls_version: str = ""
    error: str = ""


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
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def fetch_chain(target: str, server_name: str | None, timeout: float) -> ServedChain:
    """Handshake without verifying (we judge afterwards) and keep every certificate sent."""
    host, port = parse_target(target)
    name = server_name or host
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=None if _is_ip(name) else name) as tls,
        ):
            # The public get_unverified_chain() arrives in Python 3.13; 3.11 has it privately.
            raw_chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[union-attr]
            chain = tuple(
                x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
                for c in raw_chain
            )
            version = tls.version() or ""
    except (OSError, ssl.SSLError) as exc:
        return ServedChain(target, host, port, name, error=f"{type(exc).__name__}: {exc}")
    return ServedChain(target, host, port, name, chain, version)


@dataclass(frozen=True)
class ScanResult:
    served: ServedChain
    names: tuple[str, ...] = ()
    serial: str = ""
    days_left: float = 0.0
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
            "tls_version": self.served.tls_version,
            "chain": [c.subject.rfc4514_string() for c in self.served.chain],
            "names": list(self.names),
            "serial": self.serial,
            "days_left": round(self.days_left, 1),
            "ours": self.ours,
            "chain_complete": self.complete,
            "name_matches": self.name_ok,
            "status": self.status,
            "ok": self.ok,
            "findings": list(self.findings),
            "error": self.served.error or None,
        }

    def text(self) -> str:
        if self.served.error:
            return f"{self.served.target}: UNREACHABLE ({self.served.error})"
        head = (
            f"{self.served.target}: {'OK' if self.ok else 'ATTENTION'} serial {self.serial} "
            f"[{self.status}] {', '.join(self.names)}; {self.days_left:.0f} days left; "
            f"chain of {len(self.served.chain)} ({'complete' if self.complete else 'incomplete'})"
        )
        return "\n".join([head, *(f"  - {f}" for f in self.findings)])


def judge(served: ServedChain, ca: CertificateAuthority | None, now: dt.datetime) -> ScanResult:
    if served.error or not served.chain:
        return ScanResult(served, findings=(served.error or "no certificate was served",))
    leaf, intermediates = served.chain[0], served.chain[1:]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n) for n in names_from_general_names(san))
    except x509.ExtensionNotFound:
        names = ()
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
    roots = [ca.root]
    known = [x509.load_der_x509_certificate(a.der) for a in ca.authorities() if a.role != "root"]
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
    name_ok = with_known.ok
    record = ca.store.get(leaf.serial_number) if ours else None
    same = record is not None and record.der == leaf.public_bytes(Encoding.DER)
    status = record.status_at(now) if same and record is not None else "unknown"
    if not ours:
        findings.append("not issued by this CA (does not chain to its root)")
    else:
        if not complete:
            findings.append("incomplete chain: the server does not send the issuing CA")
        if not name_ok:
            findings.append(f"the certificate is not valid for '{name}'")
        if status == "revoked":
            findings.append("the served certificate is REVOKED")
        elif status == "superseded" and record is not None and record.superseded_by:
            findings.append(
                f"superseded by {serial_hex(record.superseded_by)}: the service has not picked "
                "up its renewed certificate"
            )
        elif status == "unknown":
            findings.append("chains to this CA but is not in its inventory")
    return ScanResult(
        served,
        names,
        serial_hex(leaf.serial_number),
        days_left,
        ours,
        complete,
        name_ok,
        status,
        tuple(findings),
    )
