"""Loaded by every Python process of a documentation test session (PYTHONPATH points
here): privca, certbot, the probes. It plays the network the docs assume, without
/etc/hosts and without privileged or fixed ports:

- names under PRIVCA_DOCTEST_DOMAIN (corp.internal) resolve to 127.0.0.1;
- a port of PRIVCA_DOCTEST_PORTS (the docs' 443, 8443, 8080, 5432, 9464) is swapped for the
  free loopback port the test picked, both where a server binds it and where a client
  connects to it, so `privca serve --listen 0.0.0.0:8443` and `privca scan
  db.corp.internal:5432` run as written.

Outside a doc-test session (the variables unset) it does nothing.
"""

from __future__ import annotations

import json
import os
import socket

_DOMAIN = os.environ.get("PRIVCA_DOCTEST_DOMAIN", "")
_PORTS = {
    int(k): int(v) for k, v in json.loads(os.environ.get("PRIVCA_DOCTEST_PORTS", "{}")).items()
}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", "::"}


def _ours(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return host is None
    host = host.lower().rstrip(".")
    return host in _LOOPBACK or (
        bool(_DOMAIN) and (host == _DOMAIN or host.endswith("." + _DOMAIN))
    )


def _port(port: object) -> object:
    try:
        number = int(port)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return port
    return _PORTS.get(number, port)


if _DOMAIN:
    _getaddrinfo = socket.getaddrinfo
    _bind = socket.socket.bind

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if _ours(host):
            name = host.decode() if isinstance(host, bytes) else host
            if name and name not in _LOOPBACK:
                host = "127.0.0.1"
            return _getaddrinfo(host, _port(port), *args, **kwargs)
        return _getaddrinfo(host, port, *args, **kwargs)

    def bind(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and len(address) >= 2 and _ours(address[0]):
            host = address[0]
            if self.family == socket.AF_INET and host in ("0.0.0.0", ""):
                host = "127.0.0.1"  # the docs say 0.0.0.0; a test listens on loopback only
            address = (host, _port(address[1]), *address[2:])
        return _bind(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.bind = bind  # type: ignore[method-assign]
