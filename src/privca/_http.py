"""Request bodies and media types, read one way for the whole server (OCSP and ACME).

A body is read no further than its limit: a declared Content-Length above it is refused
before a byte is read, and a chunked or lying body is cut off at the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The request body is larger than the endpoint accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds {limit} bytes")
        self.limit = limit


def media_type(headers: Mapping[str, str]) -> str:
    """The Content-Type's type/subtype in lower case, parameters dropped ('' if none)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge once it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


__all__ = ["BodyTooLarge", "media_type", "read_body"]
