"""The listening socket, bound before anything else happens at start.

Binding first means a taken port, a foreign address or a privileged port is one clear
error before a certificate is issued or uvicorn logs a line; uvicorn is then handed the
bound socket.
"""

from __future__ import annotations

import errno
import socket

from privca.errors import EnvironmentRefused, InputError

BACKLOG = 2048  # uvicorn's default


def bind_listener(host: str, port: int, option: str = "--listen") -> socket.socket:
    """A TCP socket bound to host:port and listening; EnvironmentRefused when the machine
    will not have it (in use, not ours, not permitted). `option` is the flag the address
    came from: the hints name it, so an operator changes the right one."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise InputError(
            f"cannot listen on {shown}: the host does not resolve ({exc.strerror})",
            f"give {option} an address of this machine, e.g. {option} 0.0.0.0:{port}",
        ) from exc
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may bind while old connections sit in TIME_WAIT (on
        # Linux this never lets two servers listen on one port).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EnvironmentRefused(
                f"{shown} is in use",
                f"stop what listens there, or give {option} another port",
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise EnvironmentRefused(
                f"cannot listen on {shown}: permission denied",
                "ports below 1024 need root or CAP_NET_BIND_SERVICE; or give "
                f"{option} a higher port",
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise EnvironmentRefused(
                f"cannot listen on {shown}: the address is not one of this machine's",
                f"give {option} one of its addresses, or 0.0.0.0 for all",
            ) from exc
        raise EnvironmentRefused(
            f"cannot listen on {shown}: {exc.strerror}", f"check the address given to {option}"
        ) from exc
    sock.setblocking(False)
    return sock
