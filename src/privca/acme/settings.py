"""The ACME server's settings (the [acme] section of privca.toml; `privca serve` flags win)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from privca.acme.challenges import DEFAULT_TIMEOUT, DEFAULT_WORKERS

ACME_DEFAULT_DAYS = 90


@dataclass(frozen=True)
class AcmeSettings:
    """The ACME server's knobs (the [acme] section of the server settings)."""

    http_01_port: int = 80
    tls_alpn_01_port: int = 443
    dns_resolver: str = ""  # HOST:PORT; empty = the system resolver
    eab: str = "optional"  # optional | required
    default_profile: str = "server"
    # profile -> validity in days; only these profiles are offered over ACME.
    profiles: Mapping[str, int] = field(
        default_factory=lambda: {"server": ACME_DEFAULT_DAYS, "server-client": ACME_DEFAULT_DAYS}
    )
    orders_per_window: int = 300
    # New accounts per client network (an IPv4 address, an IPv6 /64) per window, in each
    # server process; accounts bound to an EAB key are not counted.
    accounts_per_window: int = 20
    rate_window: dt.timedelta = dt.timedelta(hours=1)
    max_body_bytes: int = 64 * 1024
    # One total deadline per validation (DNS, connect, TLS, every read and redirect).
    validation_timeout: float = DEFAULT_TIMEOUT
    # Threads of the validators' own pool; more validations wait their turn.
    validation_workers: int = DEFAULT_WORKERS
    # Let the validator connect to loopback addresses: for a single-host lab only.
    allow_loopback: bool = False
    base_url: str = ""  # the public URL of the ACME root, e.g. https://ca.corp/acme
    # Whether the server's start renews the nonce key where spends are not durable
    # (NonceRepository.nonce_key). Not a privca.toml key: `serve --workers N` renews it
    # once before starting its workers, which then must not each renew it again.
    renew_nonce_key: bool = True

    def __post_init__(self) -> None:
        if self.eab not in ("optional", "required"):
            raise ValueError("eab must be 'optional' or 'required'")
        if self.default_profile not in self.profiles:
            raise ValueError("default_profile must be one of the ACME profiles")
        if not 0 < self.validation_timeout <= 300:
            raise ValueError("validation_timeout must be more than 0 and at most 300 seconds")
        if not 0 < self.accounts_per_window <= 1_000_000:
            raise ValueError("accounts_per_window must be 1 to 1000000")
        if not 0 < self.validation_workers <= 1000:
            raise ValueError("validation_workers must be 1 to 1000")


__all__ = ["ACME_DEFAULT_DAYS", "AcmeSettings"]
