"""HTTP limits that uvicorn does not enforce by itself, added to its connection protocol.

uvicorn's httptools protocol puts no cap on the size of a request's head (100 MB of
headers were read into memory and answered 200), has no timeout for reading a request (a
client that dribbles a byte a second holds its connection for ever), and its
`limit_concurrency` only answers 503 after a whole request was read. This protocol:

- counts the bytes of each request head as they arrive (before the parser buffers them)
  and, over `max_header_bytes`, answers 431 and closes: memory stays flat;
- arms one timer from a request's first byte (or the connection's start) to its last body
  byte: a request not read by then is answered 408 (or, mid-body, the connection closed);
- refuses connections beyond `max_connections` with 503 at once, counted from accept;
- on a TLS listener, does the handshake itself (TlsGate): asyncio's server would count a
  connection only once its handshake is done and give the handshake 60 s, so idle TCP
  connections that never sent a ClientHello were neither counted nor cut off. Here the
  connection counts from accept, the handshake shares the read timeout of the first
  request, and one over the limit is closed at once (there is no TLS yet to send 503 over);
- leaves idle kept-alive connections to uvicorn's `timeout_keep_alive`;
- answers a request offering an Upgrade other than WebSocket (h2c) over HTTP/1.1, as
  RFC 9110 lets it, and refuses a WebSocket upgrade (nothing here speaks it) with 400;
- turns Nagle's algorithm off: asyncio only does so for sockets created with an explicit
  IPPROTO_TCP, which uvicorn's are not, and uvicorn writes a response's head and body
  separately, so every answer on a kept-alive connection waited ~40 ms for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from privca.server.settings import HttpLimits

_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class _HeadTooLarge(Exception):
    pass


class Slots:
    """The open connections of one listener, from accept to close, whatever their stage
    (TLS handshake or HTTP)."""

    def __init__(self) -> None:
        self._held: set[object] = set()

    def take(self, holder: object, limit: int) -> bool:
        """Count `holder` in; False (and not counted) when `limit` are already open."""
        if len(self._held) >= limit:
            return False
        self._held.add(holder)
        return True

    def release(self, holder: object) -> None:
        self._held.discard(holder)  # idempotent: a connection ends once, however told

    def __len__(self) -> int:
        return len(self._held)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` enforced (set on a subclass)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    slots: ClassVar[Slots] = Slots()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # raw bytes received while reading this request's head
        self._head_parsed = 0  # bytes of the request line and headers parsed so far
        self._read_timer: asyncio.TimerHandle | None = None
        self._refused = False
        # Set by TlsGate, which holds this connection's slot: the loop time the connection
        # was accepted, so its handshake and first request share one read timeout.
        self.accepted_at: float | None = None

    # the connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.accepted_at is not None:
            self._arm(self.accepted_at + self.limits.read_timeout)
            return
        if not self.slots.take(self, self.limits.max_connections):
            self._refuse(503)
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.slots.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._read_timer is None:
            self._arm()  # the first byte of the next request on a kept-alive connection
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431)
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._get_upgrade() == b"websocket":
                self._unsupported_upgrade_warning()  # no WebSocket here
                self._invalid()
                return
            self._ignore_upgrade()
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431)

    def _ignore_upgrade(self) -> None:
        """Any other Upgrade (h2c from `curl --http2 http://`) is ignored, as RFC 9110
        §7.8 lets a server do: the request, parsed and dispatched already, is answered
        over HTTP/1.1. The parser stops at an upgrade and reads nothing after it, so the
        connection closes once the answer is sent."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        else:
            self.transport.close()

    def _invalid(self) -> None:
        self._disarm()
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # parser callbacks: the exact size of the head ----------------------------------------

    def _count(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.limits.max_header_bytes:
            raise _HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url) + 16)  # method, version and line end
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        # Whatever arrives next is the head of the next request.
        self._in_head, self._head_bytes, self._head_parsed = True, 0, 0
        super().on_message_complete()

    # the read timer -----------------------------------------------------------------------

    def _arm(self, deadline: float | None = None) -> None:
        self._disarm()
        if deadline is None:
            deadline = self.loop.time() + self.limits.read_timeout
        self._read_timer = self.loop.call_at(deadline, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._refuse(408)  # nothing is being answered: say why before closing
        else:
            self.transport.close()  # mid-body: the app sees the client disconnect

    def _refuse(self, status: int) -> None:
        self._refused = True
        self._disarm()
        reason = _REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s\n"
            % (status, reason, len(reason) + 1, reason)
        )
        self.transport.close()


class TlsGate(asyncio.Protocol):
    """A TLS connection from accept to close: holds its slot, runs the handshake within
    the read timeout (loop.start_tls), then hands the decrypted stream to `http`.

    Two kinds of bytes can reach this protocol before `http` has a transport: the
    ClientHello, when the loop reads before start_tls has put the TLS layer in place
    (uvloop starts reading right after connection_made, a pause notwithstanding), and the
    first request, which the TLS layer may pass on as soon as the handshake ends, before
    start_tls returns. The first are replayed into the TLS layer, the second into `http`.
    """

    def __init__(self, http: LimitedHttpToolsProtocol, context: ssl.SSLContext) -> None:
        self._http = http
        self._context = context
        self._hello: list[bytes] | None = []  # raw bytes; None once the TLS layer has them
        self._early: list[bytes] | None = []  # plaintext; None once `http` is connected
        self._lost = False
        self._handshake: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        http = self._http
        if not http.slots.take(self, http.limits.max_connections):
            transport.abort()  # nothing read, nothing written: the fd is free at once
            return
        http.accepted_at = http.loop.time()
        self._handshake = http.loop.create_task(self._start_tls(transport))

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        http = self._http
        # Runs once start_tls has made the TLS layer the transport's protocol (it does so
        # before its first await) and before that layer starts the handshake.
        http.loop.call_soon(self._replay_hello, transport)
        try:
            tls = await http.loop.start_tls(
                transport,
                self,
                self._context,
                server_side=True,
                ssl_handshake_timeout=http.limits.read_timeout,
            )
        except OSError:  # timed out, reset, or not TLS: a client's failure, said to no one
            http.slots.release(self)
            return
        except BaseException:
            http.slots.release(self)
            raise
        if self._lost or tls is None:
            return
        http.connection_made(tls)
        early, self._early = self._early or [], None
        for data in early:
            http.data_received(data)

    def _replay_hello(self, transport: asyncio.Transport) -> None:
        hello, self._hello = self._hello or [], None
        layer = transport.get_protocol()
        if layer is self:  # start_tls did not get this far: it has failed, nothing to do
            return
        for data in hello:
            _feed(layer, data)

    def data_received(self, data: bytes) -> None:
        if self._hello is not None:
            self._hello.append(data)
        elif self._early is not None:
            self._early.append(data)
        else:
            self._http.data_received(data)

    def eof_received(self) -> None:
        if self._early is None:
            self._http.eof_received()  # uvicorn's: nothing to do, the transport closes

    def pause_writing(self) -> None:
        if self._early is None:
            self._http.pause_writing()

    def resume_writing(self) -> None:
        if self._early is None:
            self._http.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._http.slots.release(self)
        if self._early is None:
            self._http.connection_lost(exc)


def _feed(protocol: Any, data: bytes) -> None:
    """Deliver `data` to `protocol` as its transport would (TLS layers are buffered)."""
    if not hasattr(protocol, "get_buffer"):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


def protocol_class(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn's `http=` option, enforcing `limits`; each class
    counts the connections of one listener."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"limits": limits, "slots": Slots()},
    )


def tls_protocol_factory(
    limits: HttpLimits, context: ssl.SSLContext
) -> Callable[..., asyncio.Protocol]:
    """For uvicorn's `http=` option on a TLS listener whose config has no ssl: uvicorn
    calls it at each accept, and the gate does the handshake."""
    http_class = protocol_class(limits)

    def accepted(**kwargs: Any) -> asyncio.Protocol:
        return TlsGate(http_class(**kwargs), context)

    return accepted


def uvicorn_options(limits: HttpLimits, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    """The uvicorn.Config keyword arguments that apply `limits` to a listener, TLS with
    `tls` (then give uvicorn no ssl options of its own)."""
    return {
        "http": protocol_class(limits) if tls is None else tls_protocol_factory(limits, tls),
        "ws": "none",
        "timeout_keep_alive": limits.keep_alive_timeout,
        # uvicorn would take the client's address (and scheme) from X-Forwarded-For/-Proto
        # sent from 127.0.0.1: any local user could then pick the address the newAccount
        # limit counts. The peer is the client; behind a proxy, [acme] base_url says the
        # public URL (docs/acme.md).
        "proxy_headers": False,
    }


__all__ = [
    "LimitedHttpToolsProtocol",
    "Slots",
    "TlsGate",
    "protocol_class",
    "tls_protocol_factory",
    "uvicorn_options",
]
