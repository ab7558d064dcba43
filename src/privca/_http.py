"""Request bodies and media types, read one way for the whole server (OCSP and ACME).

A body is read no further than its limit: a declared Content-Length above it is refused
before a byte is read, and a chunked or lying body is cut off at the limit. A client that
goes away before its body has arrived is an everyday event (a closed laptop, a killed
client, the read timeout), logged in one line: no traceback, no 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect, Request

log = logging.getLogger("privca.server")


class BodyTooLarge(Exception):
    """The request body is larger than the endpoint accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds {limit} bytes")
        self.limit = limit


class ClientGone(Exception):
    """The client closed the connection before its whole body arrived: nobody to answer."""


def media_type(headers: Mapping[str, str]) -> str:
    """The Content-Type's type/subtype in lower case, parameters dropped ('' if none)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; BodyTooLarge once it is known to exceed `limit` bytes, ClientGone
    when the client disconnects first."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise BodyTooLarge(limit)
    except ClientDisconnect:
        client = request.client
        log.info(
            "%s closed the connection before its request body arrived (%s %s)",
            f"{client.host}:{client.port}" if client else "a client",
            request.method,
            request.url.path,
        )
        raise ClientGone from None
    return bytes(body)


__all__ = ["BodyTooLarge", "ClientGone", "media_type", "read_body"]
