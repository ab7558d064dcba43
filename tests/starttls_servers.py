"""Small loopback servers that speak just enough SMTP, IMAP, PostgreSQL, LDAP or MySQL to
switch to TLS on request, then serve a given chain. The tests prove each one right with
`openssl s_client -starttls PROTO` before trusting it as a judge of `privca scan`.

Behaviours: "ok" (agree to TLS), "refuse" (answer the STARTTLS request with the
protocol's no), "drip" (send the greeting one byte every 0.2 s), "flood" (send an endless
greeting), "inject" (agree and send one more plaintext byte before the handshake).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PROTOCOLS = ("smtp", "imap", "postgres", "ldap", "mysql")
LDAP_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


class Refused(Exception):
    """The prelude ended without TLS (as the behaviour asked)."""


def _read_line(conn: socket.socket) -> bytes:
    """One CRLF line, a byte at a time: nothing after it is taken from the socket (the
    client's ClientHello must reach the TLS layer untouched)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise Refused("client closed")
        line += byte
        if len(line) > 4096:
            raise Refused("line too long")
    return line.rstrip(b"\r\n")


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise Refused("client closed")
        data += chunk
    return data


def _greet(conn: socket.socket, greeting: bytes, behaviour: str) -> None:
    if behaviour == "drip":
        for byte in greeting * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.2)
    if behaviour == "flood":
        while True:
            conn.sendall(greeting[:3] + b"-" + b"x" * 1000 + b"\r\n")
    conn.sendall(greeting)


def _smtp(conn: socket.socket, behaviour: str) -> None:
    _greet(conn, b"220 mail.corp.internal ESMTP privca-test\r\n", behaviour)
    while True:
        command = _read_line(conn).upper()
        if command.startswith((b"EHLO", b"HELO")):
            conn.sendall(b"250-mail.corp.internal\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        elif command == b"STARTTLS":
            if behaviour == "refuse":
                conn.sendall(b"454 4.7.0 TLS not available due to local problem\r\n")
                raise Refused("refused")
            conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
            return
        elif command == b"QUIT":
            conn.sendall(b"221 2.0.0 Bye\r\n")
            raise Refused("quit")
        else:
            conn.sendall(b"502 5.5.2 Command not recognized\r\n")


def _imap(conn: socket.socket, behaviour: str) -> None:
    _greet(conn, b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n", behaviour)
    while True:
        tag, _, command = _read_line(conn).partition(b" ")
        command = command.upper()
        if command == b"CAPABILITY":
            conn.sendall(
                b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"
                + tag
                + b" OK CAPABILITY completed\r\n"
            )
        elif command == b"STARTTLS":
            if behaviour == "refuse":
                conn.sendall(tag + b" NO STARTTLS is not available\r\n")
                raise Refused("refused")
            conn.sendall(tag + b" OK Begin TLS negotiation now\r\n")
            return
        elif command == b"LOGOUT":
            conn.sendall(b"* BYE\r\n" + tag + b" OK LOGOUT completed\r\n")
            raise Refused("logout")
        else:
            conn.sendall(tag + b" BAD unknown command\r\n")


def _postgres(conn: socket.socket, behaviour: str) -> None:
    request = _read_exact(conn, 8)
    if request != struct.pack("!ii", 8, 80877103):
        raise Refused("not an SSLRequest")
    if behaviour == "refuse":
        conn.sendall(b"N")
        raise Refused("refused")
    if behaviour == "drip":
        time.sleep(30)  # a server that never answers the SSLRequest
    conn.sendall(b"S")


def _ldap(conn: socket.socket, behaviour: str) -> None:
    tag, length = _read_exact(conn, 2)
    body = _read_exact(conn, length)
    if tag != 0x30 or LDAP_STARTTLS_OID not in body or b"\x77" not in body:
        raise Refused("not a StartTLS ExtendedRequest")
    message_id = body[2 : 2 + body[1]]
    code = 52 if behaviour == "refuse" else 0  # 52: unavailable
    result = bytes([0x0A, 0x01, code, 0x04, 0x00, 0x04, 0x00])
    response = bytes([0x78, len(result)]) + result
    identifier = bytes([0x02, len(message_id)]) + message_id
    conn.sendall(bytes([0x30, len(identifier) + len(response)]) + identifier + response)
    if behaviour == "refuse":
        raise Refused("refused")


# CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
MYSQL_CAPABILITIES = 0x0200 | 0x0800 | 0x8000 | 0x80000


def _mysql(conn: socket.socket, behaviour: str) -> None:
    capabilities = MYSQL_CAPABILITIES & ~(0x0800 if behaviour == "refuse" else 0)
    payload = (
        b"\x0a"
        + b"8.0.99-privca-test\x00"
        + struct.pack("<I", 7)  # connection id
        + b"abcdefgh"  # auth-plugin-data part 1
        + b"\x00"  # filler
        + struct.pack("<H", capabilities & 0xFFFF)
        + b"\x21"  # utf8 character set
        + struct.pack("<H", 2)  # status: autocommit
        + struct.pack("<H", capabilities >> 16)
        + bytes([21])
        + bytes(10)
        + b"ijklmnopqrst\x00"  # auth-plugin-data part 2
        + b"mysql_native_password\x00"
    )
    packet = len(payload).to_bytes(3, "little") + b"\x00" + payload
    if behaviour in ("drip", "flood"):
        _greet(conn, packet, behaviour)
    conn.sendall(packet)
    if behaviour == "refuse":
        raise Refused("no TLS offered")
    header = _read_exact(conn, 4)
    request = _read_exact(conn, int.from_bytes(header[:3], "little"))
    if header[3] != 1 or len(request) != 32:
        raise Refused("not an SSLRequest packet")
    if not struct.unpack("<I", request[:4])[0] & 0x0800:
        raise Refused("the client did not ask for TLS")


PRELUDES: dict[str, Callable[[socket.socket, str], None]] = {
    "smtp": _smtp,
    "imap": _imap,
    "postgres": _postgres,
    "ldap": _ldap,
    "mysql": _mysql,
}


@contextlib.contextmanager
def serve_starttls(
    protocol: str, chain_pem: bytes, key_pem: bytes, tmp: Path, behaviour: str = "ok"
) -> Iterator[int]:
    """Yield the port of a server that speaks `protocol`, then TLS with the given chain."""
    tmp.mkdir(parents=True, exist_ok=True)
    chain_file, key_file = tmp / f"{protocol}-chain.pem", tmp / f"{protocol}-key.pem"
    chain_file.write_bytes(chain_pem)
    key_file.write_bytes(key_pem)
    key_file.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    prelude = PRELUDES[protocol]

    def handle(conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn:
            try:
                prelude(conn, behaviour)
                if behaviour == "inject":
                    conn.sendall(b"\x16")  # one byte a client must not take as TLS
                with (
                    context.wrap_socket(conn, server_side=True) as tls,
                    contextlib.suppress(OSError),
                ):
                    while tls.recv(1024):
                        pass
            except (Refused, OSError, ssl.SSLError):
                pass

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
