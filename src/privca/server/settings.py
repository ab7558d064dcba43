"""What the server is told at start: frozen, so every handler sees the same values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from privca.acme.service import AcmeSettings

OCSP_SIGNERS = ("delegated", "ca")


@dataclass(frozen=True)
class ServerSettings:
    # delegated: a responder certificate (OCSPSigning + ocsp-nocheck) whose key lives only
    # in this process; ca: the CA key signs responses itself (no extra certificate).
    ocsp_signer: str = "delegated"
    # nextUpdate - thisUpdate of OCSP responses. A cached response is served until half of
    # it has passed, so clients always get one with at least half its life left.
    ocsp_validity: dt.timedelta = dt.timedelta(days=1)
    responder_days: int = 30
    # Bound on cached OCSP answers (unknown serials come from anyone).
    ocsp_cache_entries: int = 100_000
    # The ACME server under /acme; None serves no ACME.
    acme: AcmeSettings | None = None

    def __post_init__(self) -> None:
        if self.ocsp_signer not in OCSP_SIGNERS:
            raise ValueError(f"ocsp_signer must be one of {OCSP_SIGNERS}")
