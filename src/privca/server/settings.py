"""What the server is told at start: frozen, so every handler sees the same values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from privca.acme.service import AcmeSettings

OCSP_SIGNERS = ("delegated", "ca")
# How many certificates /metrics names one by one unless told otherwise, and at most: a
# limit the database takes (SQLite's LIMIT is a 64-bit integer) and already far more
# series than a Prometheus wants.
METRICS_CERTIFICATES = 1000
MAX_METRICS_CERTIFICATES = 1_000_000


@dataclass(frozen=True)
class HttpLimits:
    """Resource limits of every listener (see limits.py for how they are enforced)."""

    # Request line plus headers; a request over it gets 431 and the connection is closed.
    max_header_bytes: int = 16 * 1024
    # From a request's first byte (or the connection's start) to its last body byte; a
    # client that dribbles slower is answered 408 and disconnected.
    read_timeout: float = 10.0
    # How long an idle kept-alive connection stays open between requests.
    keep_alive_timeout: float = 5.0
    # Open connections per listener; more are answered 503 and closed at once.
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not 1024 <= self.max_header_bytes <= 1024 * 1024:
            raise ValueError("max_header_bytes must be 1024 to 1048576")
        if not 0 < self.read_timeout <= 600:
            raise ValueError("read_timeout must be more than 0 and at most 600 seconds")
        if not 0 < self.keep_alive_timeout <= 600:
            raise ValueError("keep_alive_timeout must be more than 0 and at most 600 seconds")
        if not 1 <= self.max_connections <= 1_000_000:
            raise ValueError("max_connections must be 1 to 1000000")


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
    http: HttpLimits = field(default_factory=HttpLimits)
    # /metrics on the main listener; False when it has a listener of its own.
    metrics_on_main: bool = True
    # Per-certificate metric series only for certificates expiring within this window.
    metrics_window: dt.timedelta = dt.timedelta(days=30)
    # ... and for this many of them at most, the soonest (privca.monitoring: Prometheus
    # keeps every series it is shown; the rest are counted in privca_certificates_expiring).
    metrics_certificates: int = METRICS_CERTIFICATES
    # How often the store is polled for rotations, revocations and reachability.
    watch_interval: float = 1.0
    # The publication process of `serve --publish-listen`: OCSP, CRLs, CA certificates,
    # the audit checkpoint and health only; no index, no scheduled revocations or tidy
    # (the main process(es) run those).
    publication: bool = False
    # Over a database server, sign the OCSP answers of newly issued certificates ahead so
    # that the first request about each is a cache hit. Off in the main process(es) when a
    # publication process does it for the listener revocation checks are sent to.
    ocsp_sign_ahead: bool = True

    def __post_init__(self) -> None:
        if self.ocsp_signer not in OCSP_SIGNERS:
            raise ValueError(f"ocsp_signer must be one of {OCSP_SIGNERS}")
        if self.publication and (self.acme is not None or self.metrics_on_main):
            raise ValueError("the publication listener serves neither ACME nor /metrics")
        if self.metrics_window <= dt.timedelta(0):
            raise ValueError("metrics_window must be positive")
        if not 0 <= self.metrics_certificates <= MAX_METRICS_CERTIFICATES:
            raise ValueError(f"metrics_certificates must be from 0 to {MAX_METRICS_CERTIFICATES}")
