"""Helpers for the trust tests: CAs built with cryptography, a TLS server, probes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.trust.linux import FAMILIES

DEBIAN = next(f for f in FAMILIES if f.key == "debian")


@dataclass(frozen=True)
class TestCA:
    """A root CA, its PEM file, and a server leaf for 127.0.0.1/localhost it signed."""

    __test__ = False  # not a test class, despite the name

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def leaf_pem(self) -> bytes:
        return self.leaf.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "privca tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def build_root(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def build_leaf(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def make_ca(directory: Path, common_name: str, file_name: str) -> TestCA:
    cert, key = build_root(common_name)
    leaf, leaf_key = build_leaf(cert, key)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCA(cert, key, path, leaf, leaf_key)


class TlsServer:
    """Serves one leaf over TLS on 127.0.0.1 and answers any request with '200 ok'."""

    def __init__(self, ca: TestCA, directory: Path) -> None:
        cert_file = directory / "leaf.pem"
        key_file = directory / "leaf.key"
        cert_file.write_bytes(ca.leaf_pem)
        key_file.write_bytes(
            ca.leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            raw.settimeout(5)
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    conn.recv(4096)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
            except (OSError, ssl.SSLError):
                continue  # clients that reject our certificate are part of the tests
            finally:
                raw.close()

    def close(self) -> None:
        self.listener.close()


def require_tool(program: str) -> str:
    found = shutil.which(program)
    if not found:
        pytest.skip(f"{program} is not installed (CI installs it)")
    return found


def snapshot(directory: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under `directory`: file bytes, symlink targets, directories."""
    entries: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            entries[key] = ("link", str(path.readlink()))
        elif path.is_dir():
            entries[key] = ("dir", "")
        else:
            entries[key] = ("file", path.read_bytes())
    return entries


def debian_bundle(root: Path) -> Path:
    return root / DEBIAN.bundle


def curl_status(url: str, *extra: str) -> int:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "10", *extra, url],
        capture_output=True,
    ).returncode


def python_handshake(
    port: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, since OpenSSL reads its default CA paths when a context is made."""
    code = (
        "import socket, ssl\n"
        "context = ssl.create_default_context()\n"
        f"raw = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
        "with context.wrap_socket(raw, server_hostname='127.0.0.1') as tls:\n"
        "    print(tls.version())\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
