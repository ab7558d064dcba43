"""The one table of ACME errors: RFC 8555 §6.7 type -> HTTP status, and the exception.

Every error an ACME client sees is an RFC 7807 problem document built from this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
URN = "urn:ietf:params:acme:error:"

# kind -> HTTP status. Kinds are RFC 8555 §6.7 error types (plus RFC 8555 ratelimits and
# the ARI/EAB additions); "notFound"/"methodNotAllowed"/"unsupportedMediaType" are
# privca's own (RFC 7807 "about:blank"-style types under the ACME URN are not registered
# for these, so they are served as `malformed` with the right status).
STATUS: dict[str, int] = {
    "accountDoesNotExist": 400,
    "alreadyReplaced": 409,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 403,
    "incorrectResponse": 403,
    "invalidContact": 400,
    "invalidProfile": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
    # privca's kinds with their own status; the type served is `malformed`.
    "notFound": 404,
    "methodNotAllowed": 405,
    "conflict": 409,
    "payloadTooLarge": 413,
    "unsupportedMediaType": 415,
}

_SERVED_AS = {
    "notFound": "malformed",
    "methodNotAllowed": "malformed",
    "conflict": "malformed",
    "payloadTooLarge": "malformed",
    "unsupportedMediaType": "malformed",
}


@dataclass
class AcmeProblem(Exception):
    """An ACME error: raised anywhere in acme/, turned into a response by routes.py."""

    kind: str
    detail: str
    identifier: dict[str, str] | None = None
    subproblems: list[AcmeProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # badSignatureAlgorithm: the algorithms the server accepts (RFC 8555 §6.2).
    algorithms: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in STATUS:
            raise ValueError(f"unknown ACME problem kind {self.kind!r}")
        super().__init__(self.detail)

    @property
    def status(self) -> int:
        return STATUS[self.kind]

    @property
    def type(self) -> str:
        return URN + _SERVED_AS.get(self.kind, self.kind)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": self.type,
            "detail": self.detail,
            "status": self.status,
        }
        if self.identifier is not None:
            document["identifier"] = self.identifier
        if self.algorithms is not None:
            document["algorithms"] = list(self.algorithms)
        if self.subproblems:
            document["subproblems"] = [p.to_json() for p in self.subproblems]
        return document


def problem(kind: str, detail: str, **kwargs: Any) -> AcmeProblem:
    return AcmeProblem(kind, detail, **kwargs)


__all__ = ["PROBLEM_CONTENT_TYPE", "STATUS", "URN", "AcmeProblem", "problem"]
