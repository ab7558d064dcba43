"""A TLS server on 127.0.0.1 (Python ssl, in a thread) and the three real clients.

The server serves what `privca issue` writes (NAME.chain.pem = leaf + issuing CA, NAME.key)
and answers each connection with a minimal HTTP response, so curl is satisfied. With
`client_ca` it requires a client certificate chaining to that root (mutual TLS). Each
connection's outcome on the server side is queued so a test can read why it was refused.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HTTP_BODY = b"privca interop ok\n"
HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(HTTP_BODY)).encode() + b"\r\n\r\n" + HTTP_BODY
)
TIMEOUT = 10


@dataclass(frozen=True)
class ServerOutcome:
    """How one connection ended for the server: handshake ok (and the client's cert) or why not."""

    ok: bool
    error: str = ""
    peer_subject: str = ""


class TLSServer:
    def __init__(self, chain: Path, key: Path, client_ca: Path | None = None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cafile=str(client_ca))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.outcomes: queue.Queue[ServerOutcome] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # Wake the accept() at once rather than waiting out its poll interval.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
            pass
        self._thread.join(timeout=TIMEOUT)
        self.listener.close()

    def next_outcome(self) -> ServerOutcome:
        return self.outcomes.get(timeout=TIMEOUT)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():
                connection.close()
                return
            connection.settimeout(TIMEOUT)
            self._handle(connection)

    def _handle(self, connection: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(connection, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            connection.close()
            self.outcomes.put(ServerOutcome(ok=False, error=f"{type(exc).__name__}: {exc}"))
            return
        with tls:
            peer = tls.getpeercert()
            subject = ""
            if peer:
                subject = ",".join(f"{k}={v}" for rdn in peer.get("subject", ()) for k, v in rdn)
            # TLS 1.3: the client sends its certificate after it considers the handshake
            # done, so a refused client certificate surfaces here, on the first read.
            try:
                request = _read_request(tls)
            except (OSError, ssl.SSLError) as exc:
                self.outcomes.put(ServerOutcome(ok=False, error=f"{type(exc).__name__}: {exc}"))
                return
            self.outcomes.put(ServerOutcome(ok=True, peer_subject=subject))
            with contextlib.suppress(OSError, ssl.SSLError):
                if request:
                    tls.sendall(HTTP_RESPONSE)
                tls.unwrap()


def _read_request(tls: ssl.SSLSocket) -> bytes:
    """Read an HTTP request head, or nothing when the client closes without one."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = tls.recv(4096)
        except ssl.SSLZeroReturnError:
            break
        except ssl.SSLEOFError:
            break
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def serve(chain: Path, key: Path, client_ca: Path | None = None) -> Iterator[TLSServer]:
    with TLSServer(chain, key, client_ca) as server:
        yield server


# clients ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientResult:
    ok: bool
    detail: str


def python_client(
    port: int,
    root: Path,
    server_hostname: str,
    cert: tuple[Path, Path] | None = None,
) -> ClientResult:
    """Python ssl, trusting only `root`, with VERIFY_X509_STRICT (Python 3.13's default)."""
    context = ssl.create_default_context(cafile=str(root))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    if cert is not None:
        context.load_cert_chain(*cert)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: " + server_hostname.encode() + b"\r\n\r\n")
            response = b""
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                response += chunk
            version = tls.version()
    except (OSError, ssl.SSLError) as exc:
        return ClientResult(False, f"{type(exc).__name__}: {exc}")
    if not response.endswith(HTTP_BODY):
        return ClientResult(False, f"unexpected response {response!r}")
    return ClientResult(True, str(version))


def s_client(
    port: int,
    root: Path,
    hostname: str,
    cert: tuple[Path, Path] | None = None,
) -> ClientResult:
    """`openssl s_client -verify_return_error`, stdin closed so it leaves after the handshake."""
    flag = "-verify_ip" if _is_ip(hostname) else "-verify_hostname"
    args = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
        "-verify_return_error", flag, hostname, "-CAfile", str(root),
    ]  # fmt: skip
    if not _is_ip(hostname):
        args += ["-servername", hostname]
    if cert is not None:
        # -cert takes the first certificate only; -cert_chain sends the issuing CA too.
        args += ["-cert", str(cert[0]), "-cert_chain", str(cert[0]), "-key", str(cert[1])]
    result = subprocess.run(
        args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT * 3
    )
    output = result.stdout + result.stderr
    ok = result.returncode == 0 and "Verification: OK" in output
    return ClientResult(ok, f"exit {result.returncode}: {output}")


def curl(
    port: int,
    root: Path,
    hostname: str,
    cert: tuple[Path, Path] | None = None,
) -> ClientResult:
    """`curl --cacert root.crt https://NAME:PORT/`, NAME resolved to 127.0.0.1."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    args = ["curl", "--silent", "--show-error", "--max-time", str(TIMEOUT)]
    args += ["--cacert", str(root), "--noproxy", "*"]
    if not _is_ip(hostname):
        args += ["--resolve", f"{hostname}:{port}:127.0.0.1"]
    if cert is not None:
        args += ["--cert", str(cert[0]), "--key", str(cert[1])]
    args.append(f"https://{host}:{port}/")
    result = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * 3)
    ok = result.returncode == 0 and result.stdout == HTTP_BODY.decode()
    return ClientResult(ok, f"exit {result.returncode}: {result.stdout}{result.stderr}")


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
