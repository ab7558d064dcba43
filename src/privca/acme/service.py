"""The ACME server's use cases (RFC 8555 §7), wired over one repository and one issuer.

The service knows nothing of HTTP: routes.py hands it verified-structure requests plus the
URLs of this deployment, and encodes what it returns. Errors are AcmeProblem. Each use
case has its module: accounts.py (authentication, accounts), orders.py,
authorizations.py (authorizations, challenges, validation), certificates.py (finalize,
download, revocation) and renewal.py (RFC 9773 renewal information).
"""

from __future__ import annotations

import datetime as dt

from privca.acme.accounts import Accounts
from privca.acme.authorizations import Authorizations
from privca.acme.certificates import Certificates
from privca.acme.challenges import ChallengeNetwork, NetworkIO, ValidationPool, Validator
from privca.acme.issuer import CertificateIssuer, IssuanceRefused
from privca.acme.nonces import NonceSource
from privca.acme.orders import Orders
from privca.acme.repository import AcmeRepository
from privca.acme.settings import AcmeSettings
from privca.errors import InputError

# How long an order that expired without a certificate (never finalized, or refused) is
# kept, with its authorizations and challenges, for a client or an operator to look at.
ORDER_RETENTION = dt.timedelta(days=1)


class AcmeService:
    """The parts of one ACME server; routes.py calls the use cases through them."""

    def __init__(
        self,
        issuer: CertificateIssuer,
        repository: AcmeRepository,
        settings: AcmeSettings | None = None,
        network: ChallengeNetwork | None = None,
    ) -> None:
        self.issuer = issuer
        self.repository = repository
        self.settings = settings or AcmeSettings()
        self.nonces = NonceSource(repository, renew_key=self.settings.renew_nonce_key)
        self.validator = Validator(
            network or NetworkIO(self.settings.dns_resolver),
            http_port=self.settings.http_01_port,
            tls_alpn_port=self.settings.tls_alpn_01_port,
            name_allowed=self._name_allowed,
            address_allowed=issuer.address_allowed,
            allow_loopback=self.settings.allow_loopback,
            timeout=self.settings.validation_timeout,
        )
        self.validations = ValidationPool(self.settings.validation_workers)
        self.accounts = Accounts(repository, self.settings, self.nonces)
        self.orders = Orders(repository, issuer, self.settings, self.accounts)
        self.authorizations = Authorizations(repository, self.validator, self.settings)
        self.certificates = Certificates(repository, issuer, self.settings, self.orders)

    def tidy(self, now: dt.datetime) -> int:
        """Delete what ACME keeps of orders that expired more than ORDER_RETENTION ago
        without a certificate (serve's scheduler, hourly): anyone may place orders while
        EAB is optional, and nothing else ever removes them."""
        return self.repository.tidy_orders(now - ORDER_RETENTION)

    def _name_allowed(self, host: str) -> bool:
        """Whether the policy admits `host`: the validator follows redirects only there."""
        try:
            self.issuer.check_names([host])
        except (IssuanceRefused, InputError):
            return False
        return True


__all__ = ["ORDER_RETENTION", "AcmeService", "AcmeSettings"]
