"""Orders (RFC 8555 §7.4): what a client asks for, checked against the settings, the
policy and the rate limit, stored with one authorization per identifier."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from dataclasses import dataclass, replace
from typing import Any

from privca._text import printable
from privca._time import utcnow
from privca.acme import messages
from privca.acme.accounts import Accounts, Authenticated
from privca.acme.issuer import IDENTIFIER_TYPES, CertificateIssuer, IssuanceRefused, name_of
from privca.acme.problems import AcmeProblem
from privca.acme.renewal import certificate_by_ari_id
from privca.acme.repository import (
    AccountRow,
    AcmeRepository,
    AuthorizationRow,
    ChallengeRow,
    OrderRow,
)
from privca.acme.resources import new_id
from privca.acme.settings import AcmeSettings
from privca.acme.state import (
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
    authorization_as_seen,
    order_as_seen,
    order_is_listed,
)
from privca.errors import InputError
from privca.x509.encoding import serial_hex

ORDER_LIFETIME = dt.timedelta(days=7)
MAX_IDENTIFIERS = 100
# Orders per page of an account's order list (its Link rel="next" leads on).
ORDERS_PAGE = 100
# A client's clock may run a little ahead; a notBefore further ahead is refused.
NOT_BEFORE_SLACK = dt.timedelta(minutes=5)
MIN_NOT_AFTER = dt.timedelta(hours=1)
SECONDS_PER_DAY = 86400


def challenge_types(kind: str, wildcard: bool) -> tuple[str, ...]:
    """The challenges offered for one identifier (a wildcard proves the zone: dns-01)."""
    if wildcard:
        return ("dns-01",)
    if kind == "ip":
        return ("http-01", "tls-alpn-01")
    return ("http-01", "dns-01", "tls-alpn-01")


@dataclass(frozen=True)
class Orders:
    repository: AcmeRepository
    issuer: CertificateIssuer
    settings: AcmeSettings
    accounts: Accounts

    def new_order(
        self, auth: Authenticated, profile: str | None, issuer: str | None = None
    ) -> tuple[OrderRow, list[AuthorizationRow]]:
        """`profile` and `issuer` are those of the directory the client used (None: the
        main one, the default issuer)."""
        account = auth.signer()
        payload = auth.request.json_payload()
        parsed, problems = _parse_identifiers(payload.get("identifiers"))
        if parsed is not None:  # the identifiers as read (a malformed one left out)
            payload = {**payload, "identifiers": [{"type": k, "value": v} for k, v in parsed]}
        body = messages.decode(messages.NewOrder, payload, "newOrder")
        profile = self._profile(account, payload.get("profile"), profile)
        issuer = self._issuer(account, issuer)
        identifiers = self._check_identifiers(parsed or [], problems, issuer, profile)
        now = utcnow()
        _check_validity(body.not_before, body.not_after, now)
        if body.not_after is not None:
            self._check_days(validity_days(body.not_after, now), issuer, profile)
        if body.replaces is not None:
            self._check_replaces(body.replaces, account, identifiers, now)
        self._check_rate(account, now)
        order = OrderRow(
            id=new_id(),
            account_id=account.id,
            status=OrderStatus.PENDING,
            profile=profile,
            identifiers=tuple(identifiers),
            not_before=body.not_before,
            not_after=body.not_after,
            expires=now + ORDER_LIFETIME,
            error=None,
            certificate_serial=None,
            replaces=body.replaces,
            created_at=now,
            issuer=issuer,
        )
        authorizations, challenges = _authorizations(order)
        self.repository.add_order(order, authorizations, challenges)
        return order, authorizations

    def _profile(self, account: AccountRow, requested: Any, directory: str | None) -> str:
        """The order's profile: as asked, else the directory's, else the one the EAB key
        admits, else the default; it must be offered and admitted by the EAB key."""
        if requested is not None and not isinstance(requested, str):
            raise AcmeProblem("malformed", "'profile' must be a string")
        if directory and requested and requested != directory:
            raise AcmeProblem("invalidProfile", "'profile' differs from the directory's profile")
        bound = self.accounts.eab_profile(account)
        profile = requested or directory or bound or self.settings.default_profile
        if bound is not None and profile != bound:
            raise AcmeProblem(
                "unauthorized",
                f"this account's external account key admits only profile '{bound}'",
            )
        if profile not in self.settings.profiles:
            raise AcmeProblem(
                "invalidProfile",
                f"profile '{printable(profile, 40)}' is not offered; offered: "
                + ", ".join(self.settings.profiles),
            )
        return profile

    def _issuer(self, account: AccountRow, directory: str | None) -> str:
        """The order's issuer: the directory's (None: the default issuer), which the
        account's EAB key must admit."""
        name = self.issuer.issuer_name(directory)
        if name is None:
            raise AcmeProblem("notFound", "no such ACME directory")
        bound = self.accounts.eab_issuer(account)
        if bound is not None and name != bound:
            raise AcmeProblem(
                "unauthorized",
                f"this account's external account key admits only issuer '{bound}': "
                f"use its directory, /acme/{bound}/directory",
            )
        return name

    def _check_identifiers(
        self,
        identifiers: list[tuple[str, str]],
        problems: list[AcmeProblem],
        issuer: str,
        profile: str,
    ) -> list[tuple[str, str]]:
        """The order's identifiers, once the policy admits every one; otherwise each one
        refused is reported (§6.7.1), with those `_parse_identifiers` refused."""
        if not identifiers and not problems:
            raise AcmeProblem("malformed", "an order needs at least one identifier")
        total = len(identifiers) + len(problems)
        result = list(dict.fromkeys(identifiers))
        if result:
            problems = problems + self._refused_names(result, issuer, profile)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise _combined(problems, total)
        return result

    def _refused_names(
        self, identifiers: list[tuple[str, str]], issuer: str, profile: str
    ) -> list[AcmeProblem]:
        """What the policy refuses: one problem per refused name (checked one at a time
        only once the whole list was refused), or one for the list (too many names)."""
        try:
            self.issuer.check_names([v for _k, v in identifiers], issuer, profile)
            return []
        except IssuanceRefused as exc:
            if exc.kind == "unauthorized":
                raise AcmeProblem(exc.kind, exc.message) from exc
            whole = AcmeProblem("rejectedIdentifier", exc.message)
        refused: list[AcmeProblem] = []
        for kind, value in identifiers:
            try:
                self.issuer.check_names([value], issuer, profile)
            except IssuanceRefused as exc:
                shown = _shown(kind, value)
                refused.append(AcmeProblem("rejectedIdentifier", exc.message, identifier=shown))
        return refused or [whole]

    def _check_days(self, days: int, issuer: str, profile: str) -> None:
        """A notAfter the policy would refuse at finalize is refused now: accepted, the
        order could never be finalized (every CSR badCSR)."""
        try:
            self.issuer.check_days(days, issuer, profile)
        except IssuanceRefused as exc:
            raise AcmeProblem(exc.kind, f"notAfter: {exc.message}") from exc

    def _check_rate(self, account: AccountRow, now: dt.datetime) -> None:
        limit, window = self.settings.orders_per_window, self.settings.rate_window
        count, oldest = self.repository.count_orders_since(account.id, now - window)
        if count >= limit:
            retry = max(1, math.ceil((oldest + window - now).total_seconds()))
            raise AcmeProblem(
                "rateLimited",
                f"at most {limit} new orders per account per {int(window.total_seconds())} s",
                headers={"Retry-After": str(retry)},
            )

    def _check_replaces(
        self,
        replaces: str,
        account: AccountRow,
        identifiers: list[tuple[str, str]],
        now: dt.datetime,
    ) -> None:
        """RFC 9773 §5: the account's own certificate, for at least one of the new order's
        identifiers (else any order could retire any certificate of the account from
        expiry monitoring), not replaced already (alreadyReplaced)."""
        info = certificate_by_ari_id(self.issuer, replaces)
        replaced = self.repository.order_by_serial(serial_hex(info.serial))
        if replaced is None or replaced.account_id != account.id:
            raise AcmeProblem("malformed", "'replaces' names a certificate of another account")
        if not set(replaced.identifiers) & set(identifiers):
            raise AcmeProblem(
                "malformed",
                "'replaces' names a certificate that shares no identifier with this order",
            )
        # Only an order already being finalized (or issued) counts: one left pending by a
        # client that stalled would block every retry for the order's 7 days, and
        # finalize settles two open orders replacing the same certificate (first wins).
        others = [
            o
            for o in self.replacing_orders(replaces, account.id, now)
            if o.status in (OrderStatus.PROCESSING, OrderStatus.VALID)
        ]
        if info.superseded or others:
            raise AcmeProblem("alreadyReplaced", _already_replaced(info.superseded, others))

    def replacing_orders(self, replaces: str, account_id: str, now: dt.datetime) -> list[OrderRow]:
        """The account's orders that replace certificate `replaces` and are not invalid
        as seen now. Only the account's own orders can (_check_replaces); its newest
        1000 hold every one still open (orders live 7 days, newOrder is rate limited), and
        one that was issued also marked the certificate superseded."""
        return [
            seen
            for o in self.repository.orders(account_id)
            if o.replaces == replaces
            and (seen := replace(o, status=order_as_seen(o.status, o.expires, now))).status
            != OrderStatus.INVALID
        ]

    def order(self, auth: Authenticated, order_id: str) -> tuple[OrderRow, list[AuthorizationRow]]:
        """The order and its authorizations as they stand now: an open order one of whose
        authorizations has expired is invalid (it can never be issued)."""
        found, authorizations = self.repository.order_with_authorizations(order_id)
        order = self._as_seen(auth, found)
        now = utcnow()
        seen = [
            replace(a, status=authorization_as_seen(a.status, a.expires, now))
            for a in authorizations
        ]
        lapsed = any(a.status == AuthorizationStatus.EXPIRED for a in seen)
        if lapsed and order.status in (OrderStatus.PENDING, OrderStatus.READY):
            order = replace(order, status=OrderStatus.INVALID)
        return order, seen

    def own_order(self, auth: Authenticated, order_id: str) -> OrderRow:
        """The signer's order as it stands now (notFound for anyone else's)."""
        return self._as_seen(auth, self.repository.order(order_id))

    @staticmethod
    def _as_seen(auth: Authenticated, order: OrderRow | None) -> OrderRow:
        if order is None or not auth.owns(order.account_id):
            raise AcmeProblem("notFound", "no such order")
        return replace(order, status=order_as_seen(order.status, order.expires, utcnow()))

    def orders(
        self, auth: Authenticated, account_id: str, page: int = 0
    ) -> tuple[list[OrderRow], bool]:
        """One page of the account's order list (§7.1.2.1): of its orders newest first,
        the `page`-th ORDERS_PAGE of them, those that are not invalid as seen now; and
        whether there are more (valid orders are kept for good: the list is unbounded)."""
        if not auth.owns(account_id):
            raise AcmeProblem("notFound", "no such account")
        # The page and one more (is there a next page?), skipped to by the store: reading
        # every order up to the page's end made ?page=999999 read all of them, each time.
        rows = self.repository.orders(account_id, limit=ORDERS_PAGE + 1, offset=page * ORDERS_PAGE)
        now = utcnow()
        listed = [
            o
            for o in rows[:ORDERS_PAGE]
            if order_is_listed(order_as_seen(o.status, o.expires, now))
        ]
        return listed, len(rows) > ORDERS_PAGE


def _already_replaced(superseded: bool, others: list[OrderRow]) -> str:
    if superseded or any(o.status == OrderStatus.VALID for o in others):
        return "the certificate 'replaces' names has already been replaced"
    return f"order {others[0].id} already replaces the certificate 'replaces' names"


def _parse_identifiers(
    identifiers: Any,
) -> tuple[list[tuple[str, str]] | None, list[AcmeProblem]]:
    """Each identifier as (type, canonical value), and a problem for each that is not one:
    malformed (not a {"type", "value"} object of strings), unsupportedIdentifier (another
    type), rejectedIdentifier (not a name). None for a list that is not one: decoding the
    payload names it. At most MAX_IDENTIFIERS are looked at."""
    if not isinstance(identifiers, list):
        return None, []
    if len(identifiers) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
    parsed: list[tuple[str, str]] = []
    problems: list[AcmeProblem] = []
    for item in identifiers:
        try:
            parsed.append(_identifier(item))
        except AcmeProblem as problem:
            problems.append(problem)
    return parsed, problems


def _identifier(item: Any) -> tuple[str, str]:
    """One identifier as (type, canonical value), or the problem with it."""
    if not isinstance(item, dict):
        raise AcmeProblem("malformed", "an item of 'identifiers' is not a {type, value} object")
    kind, value = item.get("type"), item.get("value")
    shown = _shown(kind, value)
    if not isinstance(kind, str) or not isinstance(value, str):
        raise AcmeProblem(
            "malformed",
            "'identifiers': an identifier's type and value must be strings",
            identifier=shown,
        )
    if kind not in IDENTIFIER_TYPES:
        raise AcmeProblem(
            "unsupportedIdentifier", "only dns and ip identifiers are supported", identifier=shown
        )
    try:
        name = name_of(kind, value)
    except InputError as exc:
        raise AcmeProblem("rejectedIdentifier", exc.message, identifier=shown) from exc
    if name.kind != kind:
        raise AcmeProblem("rejectedIdentifier", "identifier type mismatch", identifier=shown)
    return kind, name.value


def _shown(kind: Any, value: Any) -> dict[str, str]:
    """An identifier as a problem names it: escaped, cut short (a hostile client chose it)."""
    return {"type": printable(str(kind), 20), "value": printable(str(value), 255)}


def _combined(problems: list[AcmeProblem], total: int) -> AcmeProblem:
    """Several identifiers refused: one problem with a subproblem for each (§6.7.1), of
    their kind when they share one, malformed if one is, else rejectedIdentifier."""
    kinds = {p.kind for p in problems}
    if len(kinds) == 1:
        kind = kinds.pop()
    else:
        kind = "malformed" if "malformed" in kinds else "rejectedIdentifier"
    detail = f"{len(problems)} of the order's {total} identifiers are refused: see subproblems"
    return AcmeProblem(kind, detail, subproblems=problems)


def validity_days(not_after: dt.datetime, now: dt.datetime) -> int:
    """The whole days from `now` that reach `not_after` (the certificate's validity)."""
    return max(1, math.ceil((not_after - now).total_seconds() / SECONDS_PER_DAY))


def _check_validity(
    not_before: dt.datetime | None, not_after: dt.datetime | None, now: dt.datetime
) -> None:
    # RFC 8555 dates are RFC 3339, which always carries an offset: a date without one
    # names no instant (and cannot be compared with one: it was a 500).
    for field_name, value in (("notBefore", not_before), ("notAfter", not_after)):
        if value is not None and value.utcoffset() is None:
            raise AcmeProblem("malformed", f"{field_name} has no time zone offset (RFC 3339)")
    # A certificate starts when it is issued (a few minutes backdated): a notBefore
    # that is not "now" could not be honoured, and the order would claim it.
    if not_before is not None and not_before > now + NOT_BEFORE_SLACK:
        raise AcmeProblem("malformed", "notBefore in the future is not supported")
    if not_before is not None and not_before < now - NOT_BEFORE_SLACK:
        raise AcmeProblem(
            "malformed", "notBefore in the past is not supported: a certificate starts at issuance"
        )
    if not_after is not None and not_after <= now + MIN_NOT_AFTER:
        raise AcmeProblem("malformed", "notAfter must be more than an hour from now")


def _authorizations(order: OrderRow) -> tuple[list[AuthorizationRow], list[ChallengeRow]]:
    """One pending authorization per identifier, with its pending challenges."""
    authorizations: list[AuthorizationRow] = []
    challenges: list[ChallengeRow] = []
    for kind, value in order.identifiers:
        wildcard = value.startswith("*.")
        authorization = AuthorizationRow(
            id=new_id(),
            order_id=order.id,
            account_id=order.account_id,
            identifier_type=kind,
            identifier_value=value.removeprefix("*."),
            wildcard=wildcard,
            status=AuthorizationStatus.PENDING,
            expires=order.expires,
        )
        authorizations.append(authorization)
        challenges.extend(
            ChallengeRow(
                id=new_id(),
                authorization_id=authorization.id,
                type=challenge_type,
                token=secrets.token_urlsafe(32),
                status=ChallengeStatus.PENDING,
                validated=None,
                error=None,
            )
            for challenge_type in challenge_types(kind, wildcard)
        )
    return authorizations, challenges


__all__ = [
    "MAX_IDENTIFIERS",
    "ORDERS_PAGE",
    "ORDER_LIFETIME",
    "Orders",
    "challenge_types",
    "validity_days",
]
