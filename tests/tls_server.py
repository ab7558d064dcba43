"""A tiny TLS server on 127.0.0.1 for tests: serves a given chain until stopped."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def serve_tls(chain_pem: bytes, key_pem: bytes, tmp: Path) -> Iterator[int]:
    """Yield the port of a TLS server that answers every connection with 'ok'."""
    tmp.mkdir(parents=True, exist_ok=True)
    chain_file, key_file = tmp / "served-chain.pem", tmp / "served-key.pem"
    chain_file.write_bytes(chain_pem)
    key_file.write_bytes(key_pem)
    key_file.chmod(0o600)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(5)
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
