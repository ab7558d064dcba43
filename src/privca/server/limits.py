"""HTTP limits that uvicorn does not enforce by itself, added to its connection protocol.

uvicorn's httptools protocol puts no cap on the size of a request's head (100 MB of
headers were read into memory and answered 200), has no timeout for reading a request (a
client that dribbles a byte a second holds its connection for ever), and its
`limit_concurrency` only answers 503 after a whole request was read. This protocol:

- counts the bytes of each request head as they arrive (before the parser buffers them)
  and, over `max_header_bytes`, answers 431 and closes: memory stays flat;
- arms one timer from a request's first byte (or the connection's start) to its last body
  byte: a request not read by then is answered 408 (or, mid-body, the connection closed);
- refuses connections beyond `max_connections` with 503 at once;
- leaves idle kept-alive connections to uvicorn's `timeout_keep_alive`;
- turns Nagle's algorithm off: asyncio only does so for sockets created with an explicit
  IPPROTO_TCP, which uvicorn's are not, and uvicorn writes a response's head and body
  separately, so every answer on a kept-alive connection waited ~40 ms for a delayed ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` enforced (set on a subclass)."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # raw bytes received while reading this request's head
        self._head_parsed = 0  # bytes of the request line and headers parsed so far
        self._read_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # the connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503)
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
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
            self._unsupported_upgrade_warning()  # no WebSocket here
            self._invalid()
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431)

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

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

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


def protocol_class(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for uvicorn's `http=` option, enforcing `limits`."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def uvicorn_options(limits: HttpLimits) -> dict[str, Any]:
    """The uvicorn.Config keyword arguments that apply `limits` to a listener."""
    return {
        "http": protocol_class(limits),
        "ws": "none",
        "timeout_keep_alive": limits.keep_alive_timeout,
    }


__all__ = ["LimitedHttpToolsProtocol", "protocol_class", "uvicorn_options"]
