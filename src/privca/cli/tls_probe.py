"""A real TLS handshake over loopback, used by quickstart to prove a certificate works."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from privca.errors import CheckFailed


def handshake_over_loopback(chain: Path, key: Path, root: Path, hostname: str) -> str:
    """Serve `chain` on 127.0.0.1 and connect trusting only `root`; returns the TLS version."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain, key)
    client_context = ssl.create_default_context(cafile=str(root))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            version = tls.version() or "?"
            tls.sendall(b"x")
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(f"TLS handshake with the new certificate failed: {exc}") from exc
    finally:
        thread.join(timeout=10)
        listener.close()
    return version
