"""Who is asking: request authentication (RFC 8555 §6.2, §6.3, §6.5) and accounts (§7.3)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from josepy.jwk import JWK

from privca._actor import acme_actor, acting_as
from privca._text import printable, shows_as_itself
from privca._time import utcnow
from privca.acme import jws, messages
from privca.acme.nonces import NonceSource
from privca.acme.problems import AcmeProblem
from privca.acme.ratelimit import NetworkRate
from privca.acme.repository import AccountRow, AcmeRepository, EabBindingRefused
from privca.acme.resources import Urls, new_id
from privca.acme.settings import AcmeSettings
from privca.acme.state import AccountStatus, account_deactivated, account_may_act

MAX_CONTACTS = 10
# Characters that would let one mailto: URL smuggle another address or header.
_CONTACT_FORBIDDEN = frozenset(",?<> \t\r\n")


class KeySource(StrEnum):
    """Where a request's key comes from (§6.2)."""

    JWK = "jwk"  # newAccount: the key itself
    KID = "kid"  # everything else: the account URL
    EITHER = "either"  # revokeCert: the account, or the certificate's own key


@dataclass(frozen=True)
class Authenticated:
    """A request whose url, nonce and signature were checked, with the nonce to answer with."""

    request: jws.SignedRequest
    key: JWK
    account: AccountRow | None
    replay_nonce: str

    def owns(self, account_id: str) -> bool:
        """Whether the signing account is `account_id` (a resource of another is notFound)."""
        return self.account is not None and self.account.id == account_id

    def signer(self) -> AccountRow:
        """The account that signed: requests authenticated by KeySource.KID have one."""
        if self.account is None:
            raise AcmeProblem("accountDoesNotExist", "this request needs an account 'kid'")
        return self.account


@dataclass(frozen=True)
class Accounts:
    repository: AcmeRepository
    settings: AcmeSettings
    nonces: NonceSource
    # newAccount per client network (ratelimit.py); made from the settings when not given.
    account_rate: NetworkRate | None = field(default=None)

    def __post_init__(self) -> None:
        if self.account_rate is None:
            rate = NetworkRate(
                self.settings.accounts_per_window, self.settings.rate_window.total_seconds()
            )
            object.__setattr__(self, "account_rate", rate)

    # authentication ---------------------------------------------------------------------

    def authenticate(
        self, request: jws.SignedRequest, request_url: str, urls: Urls, key_from: KeySource
    ) -> Authenticated:
        """Check the request's url, spend its nonce, find its key and verify the signature.
        Once the nonce is spent, any problem carries the next nonce (Replay-Nonce)."""
        if request.url != request_url:
            raise AcmeProblem("unauthorized", "the JWS 'url' is not the URL of this request")
        # A request signed with a 'kid' needs its account: read in the nonce's transaction.
        account_id = self._account_id_of(request, urls)
        accepted, replay_nonce, account = self.nonces.exchange_reading(request.nonce, account_id)
        try:
            if not accepted:
                raise AcmeProblem("badNonce", "the nonce is missing, unknown, expired or used")
            key, account = self._signing_key(request, key_from, account)
            jws.verify(request, key)
        except AcmeProblem as problem:
            problem.headers["Replay-Nonce"] = replay_nonce
            raise
        return Authenticated(request, key, account, replay_nonce)

    @staticmethod
    def _account_id_of(request: jws.SignedRequest, urls: Urls) -> str | None:
        prefix = urls.account("")
        if request.kid is None or not request.kid.startswith(prefix):
            return None
        return request.kid[len(prefix) :] or None

    def _check_account_rate(self, client: str | None) -> None:
        assert self.account_rate is not None  # __post_init__
        retry = self.account_rate.take(client, time.monotonic())
        if retry is not None:
            window = int(self.settings.rate_window.total_seconds())
            raise AcmeProblem(
                "rateLimited",
                f"at most {self.account_rate.limit} new accounts per client network per {window} s",
                headers={"Retry-After": str(retry)},
            )

    def _signing_key(
        self, request: jws.SignedRequest, key_from: KeySource, account: AccountRow | None
    ) -> tuple[JWK, AccountRow | None]:
        # First: a header with neither was told to carry the other one (whichever it lacked).
        if request.jwk is None and request.kid is None:
            raise AcmeProblem("malformed", "the protected header has neither 'jwk' nor 'kid'")
        if key_from is KeySource.JWK and request.jwk is None:
            raise AcmeProblem("malformed", "this request must carry a 'jwk', not a 'kid'")
        if key_from is KeySource.KID and request.kid is None:
            raise AcmeProblem("malformed", "this request must carry a 'kid', not a 'jwk'")
        if request.kid is not None:
            if account is None:
                raise AcmeProblem("accountDoesNotExist", "no account has this 'kid'")
            if not account_may_act(account.status):
                raise AcmeProblem("unauthorized", f"the account is {account.status}")
            return jws.load_jwk(account.jwk), account
        assert request.jwk is not None  # neither was refused above
        return request.jwk, None

    # accounts ---------------------------------------------------------------------------

    def new_account(
        self, auth: Authenticated, urls: Urls, client: str | None = None
    ) -> tuple[AccountRow, bool]:
        """The account for the key; True if it was created now (201), False if it existed.
        `client`: the address the request came from, for the rate limit of new accounts
        (one bound to an EAB key is the operator's: that key's max_accounts limits it)."""
        payload = auth.request.json_payload()
        body = messages.decode(messages.NewAccount, payload, "newAccount")
        thumbprint = jws.thumbprint(auth.key)
        existing = self.repository.account_by_thumbprint(thumbprint)
        if existing is not None:
            if not account_may_act(existing.status):
                raise AcmeProblem("unauthorized", f"the account is {existing.status}")
            return existing, False
        if body.only_return_existing:
            raise AcmeProblem("accountDoesNotExist", "no account exists for this key")
        account = AccountRow(
            id=new_id(),
            thumbprint=thumbprint,
            jwk=jws.jwk_json(auth.key),
            status=AccountStatus.VALID,
            contact=check_contact(body.contact),
            eab_kid=self._eab_kid(payload.get("externalAccountBinding"), auth.key, urls),
            created_at=utcnow(),
        )
        if account.eab_kid is None:
            self._check_account_rate(client)
        try:
            with acting_as(acme_actor(account.id, account.eab_kid)):
                stored = self.repository.add_account(account)
        except EabBindingRefused as exc:
            key = self.repository.eab_key(exc.args[0])
            limit = key.max_accounts if key is not None else 0
            raise AcmeProblem(
                "unauthorized",
                f"the external account key has already created its {limit} account(s)",
            ) from exc
        return stored, stored.id == account.id

    def _eab_kid(self, binding: Any, key: JWK, urls: Urls) -> str | None:
        """The EAB key id the binding proves, None without one (if this CA allows that)."""
        if binding is not None:
            return jws.verify_binding(binding, key, urls.new_account, self._hmac_key)
        if self.settings.eab == "required":
            raise AcmeProblem(
                "externalAccountRequired", "this CA requires an external account binding"
            )
        return None

    def _hmac_key(self, kid: str) -> bytes:
        """The HMAC key of a live EAB key (how many accounts it may still create is checked
        when the account is stored, atomically)."""
        key = self.repository.eab_key(kid)
        secret = self.repository.eab_secret(kid) if key and key.revoked_at is None else None
        if secret is None:
            raise AcmeProblem("unauthorized", "the external account key id is unknown or revoked")
        return secret

    def eab_profile(self, account: AccountRow) -> str | None:
        """The one profile the account's EAB key admits, if it was created with one."""
        if account.eab_kid is None:
            return None
        key = self.repository.eab_key(account.eab_kid)
        return key.profile if key is not None else None

    def eab_issuer(self, account: AccountRow) -> str | None:
        """The one issuer the account's EAB key admits, if it was bound to one."""
        if account.eab_kid is None:
            return None
        key = self.repository.eab_key(account.eab_kid)
        return key.issuer if key is not None else None

    def update_account(self, auth: Authenticated, account_id: str) -> AccountRow:
        account = auth.signer()
        if account.id != account_id:
            raise AcmeProblem("unauthorized", "the 'kid' is not this account")
        if auth.request.is_post_as_get:
            return account
        payload = auth.request.json_payload()
        status = payload.get("status") or None  # "" is a client's zero value: not set
        if status not in (None, account.status, AccountStatus.DEACTIVATED):
            raise AcmeProblem("malformed", "an account can only be set to 'deactivated'")
        contact = check_contact(payload["contact"]) if "contact" in payload else None
        deactivate = status == AccountStatus.DEACTIVATED
        with acting_as(acme_actor(account.id, account.eab_kid)):
            updated = self.repository.update_account(
                account.id,
                contact=contact,
                transition=account_deactivated() if deactivate else None,
            )
        if updated is None:
            raise AcmeProblem("accountDoesNotExist", "the account is gone")
        return updated

    def key_change(self, auth: Authenticated, urls: Urls) -> AccountRow:
        """RFC 8555 §7.3.5: an inner JWS by the new key, inside one by the old key."""
        account = auth.signer()
        inner = jws.parse_jws(json.dumps(auth.request.json_payload()).encode(), what="inner JWS")
        if inner.jwk is None or inner.kid is not None:
            raise AcmeProblem("malformed", "the inner JWS must carry 'jwk' and no 'kid'")
        if inner.nonce is not None:  # §7.3.5 MUST NOT: the outer JWS's nonce is the one
            raise AcmeProblem("malformed", "the inner JWS must not carry a 'nonce'")
        if inner.url != auth.request.url:
            raise AcmeProblem("malformed", "the inner JWS 'url' differs from the outer one")
        jws.verify(inner, inner.jwk)
        body = messages.decode(messages.KeyChange, inner.json_payload(), "keyChange")
        if body.account != urls.account(account.id):
            raise AcmeProblem("malformed", "keyChange 'account' is not the signing account")
        if jws.thumbprint(body.old_key) != account.thumbprint:
            raise AcmeProblem("malformed", "keyChange 'oldKey' is not the account's key")
        new_thumbprint = jws.thumbprint(inner.jwk)
        if new_thumbprint == account.thumbprint:
            raise AcmeProblem("malformed", "the new key is the old key")
        self._check_key_free(new_thumbprint, account.id, urls)
        updated = self.repository.change_key(
            account.id, account.thumbprint, new_thumbprint, jws.jwk_json(inner.jwk)
        )
        if updated is None:
            self._check_key_free(new_thumbprint, account.id, urls)
            # The account was read with the key that signed; a request that raced this one
            # changed that key (or deactivated the account) since.
            raise AcmeProblem(
                "unauthorized", "the account key changed while this request was under way"
            )
        return updated

    def _check_key_free(self, thumbprint: str, account_id: str, urls: Urls) -> None:
        """409 with the other account that holds the key (§7.3.5), if one does."""
        other = self.repository.account_by_thumbprint(thumbprint)
        if other is not None and other.id != account_id:
            raise AcmeProblem(
                "conflict",
                "another account already uses the new key",
                headers={"Location": urls.account(other.id)},
            )


def check_contact(contact: Any) -> tuple[str, ...]:
    """Account contacts: at most MAX_CONTACTS plain mailto: URLs."""
    if contact is None:
        return ()
    if not isinstance(contact, list | tuple) or len(contact) > MAX_CONTACTS:
        raise AcmeProblem("malformed", f"contact must be a list of at most {MAX_CONTACTS} URLs")
    for item in contact:
        if not isinstance(item, str) or not item.startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", "only mailto: contacts are supported")
        if not _is_mailto_address(item):
            raise AcmeProblem("invalidContact", f"'{printable(item, 80)}' is not a mailto: address")
    return tuple(contact)


def _is_mailto_address(url: str) -> bool:
    address = url.removeprefix("mailto:")
    local, at, domain = address.partition("@")
    # Control and bidi characters too: stored, they went to every operator tool that
    # reads the accounts (privca's own listings escape them; mailers and scripts may not).
    return bool(
        at
        and local
        and domain
        and len(url) <= 255
        and not _CONTACT_FORBIDDEN & set(address)
        and shows_as_itself(address)
    )


__all__ = ["Accounts", "Authenticated", "KeySource", "check_contact"]
