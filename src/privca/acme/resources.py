"""ACME resources: their ids and the URLs they are served at."""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Urls:
    """The URLs of one deployment (derived from the request, or settings.base_url)."""

    base: str  # ends without a slash, e.g. https://ca.corp/acme

    def _under(self, profile: str | None, issuer: str | None) -> str:
        """/acme, /acme/<profile>, /acme/<issuer> or /acme/<issuer>/<profile>."""
        return "/".join([self.base, *(part for part in (issuer, profile) if part)])

    def directory(self, profile: str | None = None, issuer: str | None = None) -> str:
        return f"{self._under(profile, issuer)}/directory"

    def new_order(self, profile: str | None = None, issuer: str | None = None) -> str:
        return f"{self._under(profile, issuer)}/new-order"

    @property
    def new_nonce(self) -> str:
        return f"{self.base}/new-nonce"

    @property
    def new_account(self) -> str:
        return f"{self.base}/new-account"

    @property
    def revoke_cert(self) -> str:
        return f"{self.base}/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.base}/key-change"

    @property
    def renewal_info(self) -> str:
        return f"{self.base}/renewal-info"

    def account(self, account_id: str) -> str:
        return f"{self.base}/account/{account_id}"

    def orders(self, account_id: str) -> str:
        return f"{self.base}/account/{account_id}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.base}/order/{order_id}"

    def finalize(self, order_id: str) -> str:
        return f"{self.base}/order/{order_id}/finalize"

    def certificate(self, order_id: str) -> str:
        return f"{self.base}/cert/{order_id}"

    def authorization(self, authz_id: str) -> str:
        return f"{self.base}/authz/{authz_id}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.base}/chall/{challenge_id}"


def new_id() -> str:
    """Unguessable resource ids: 128 bits from the CSPRNG."""
    return secrets.token_urlsafe(16)


__all__ = ["Urls", "new_id"]
