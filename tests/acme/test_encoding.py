"""The answers routes.py builds as plain dicts are, byte for byte, what certbot's message
classes (the encoders they replaced, kept here as the reference) wrote."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from acme import fields, messages
from hypothesis import given, settings
from hypothesis import strategies as st
from josepy.b64 import b64decode
from josepy.json_util import field

from privca.acme import messages as privca_messages
from privca.acme.repository import AccountRow, AuthorizationRow, ChallengeRow, OrderRow
from privca.acme.resources import Urls
from privca.acme.routes import AcmeApp, _json
from privca.acme.state import AccountStatus, AuthorizationStatus, ChallengeStatus, OrderStatus

URLS = Urls("https://ca.test/acme")
ENCODE = AcmeApp.__new__(AcmeApp)  # the encoders use no state


class ReferenceOrder(messages.Order):
    not_before: Any = fields.rfc3339("notBefore", omitempty=True)
    not_after: Any = fields.rfc3339("notAfter", omitempty=True)
    replaces: str | None = field("replaces", omitempty=True)


class ReferenceAccount(messages.Registration):
    orders: str | None = field("orders", omitempty=True)


def reference_error(problem: dict[str, Any] | None) -> messages.Error | None:
    return messages.Error.from_json(problem) if problem else None


def reference_order(order: OrderRow, authorizations: list[AuthorizationRow]) -> Any:
    return ReferenceOrder(
        identifiers=[
            messages.Identifier(typ=messages.IdentifierType(t), value=v)
            for t, v in order.identifiers
        ],
        status=messages.Status.from_json(order.status),
        expires=order.expires,
        authorizations=[URLS.authorization(a.id) for a in authorizations],
        finalize=URLS.finalize(order.id),
        certificate=URLS.certificate(order.id) if order.status == "valid" else None,
        error=reference_error(order.error),
        not_before=order.not_before,
        not_after=order.not_after,
        profile=order.profile,
        replaces=order.replaces,
    )


def reference_challenge(challenge: ChallengeRow) -> Any:
    cls = privca_messages.CHALLENGE_CLASSES[challenge.type]
    return messages.ChallengeBody(
        chall=cls(token=b64decode(challenge.token)),
        uri=URLS.challenge(challenge.id),
        status=messages.Status.from_json(challenge.status),
        validated=challenge.validated,
        error=reference_error(challenge.error),
    )


def reference_authorization(authz: AuthorizationRow, challenges: list[ChallengeRow]) -> Any:
    return messages.Authorization(
        identifier=messages.Identifier(
            typ=messages.IdentifierType(authz.identifier_type), value=authz.identifier_value
        ),
        status=messages.Status.from_json(authz.status),
        expires=authz.expires,
        challenges=[reference_challenge(c) for c in challenges],
        wildcard=True if authz.wildcard else None,
    )


def reference_account(account: AccountRow) -> Any:
    return ReferenceAccount(
        status=messages.Status.from_json(account.status),
        contact=account.contact,
        orders=URLS.orders(account.id),
    )


def same_bytes(ours: Any, reference: Any) -> None:
    assert json.dumps(ours) == json.dumps(reference.to_json())
    assert _json(ours) == _json(reference)


times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]),
)
names = st.sampled_from(["a.test", "xn--bcher-kva.test", "10.0.0.1", "2001:db8::1", ""])
problems = st.none() | st.fixed_dictionaries(
    {"type": st.just("urn:ietf:params:acme:error:connection"), "detail": st.text(max_size=20)},
    optional={
        "status": st.just(400),
        "identifier": st.fixed_dictionaries(
            {"type": st.sampled_from(["dns", "ip"]), "value": names}
        ),
        "subproblems": st.lists(
            st.fixed_dictionaries({"type": st.just("urn:x"), "detail": st.just("d")}), max_size=2
        ),
    },
)
# RFC 8555 statuses certbot's Status knows ("expired" it does not: see below)
known = ["pending", "processing", "valid", "invalid", "revoked", "ready", "deactivated"]


def token() -> str:
    return secrets.token_urlsafe(32)


challenge_rows = st.builds(
    ChallengeRow,
    id=st.just("c1"),
    authorization_id=st.just("a1"),
    type=st.sampled_from(["http-01", "dns-01", "tls-alpn-01"]),
    token=st.builds(token),
    status=st.sampled_from(list(ChallengeStatus)),
    validated=st.none() | times,
    error=problems,
)
authorization_rows = st.builds(
    AuthorizationRow,
    id=st.text("abc", min_size=1, max_size=4),
    order_id=st.just("o1"),
    account_id=st.just("acct"),
    identifier_type=st.sampled_from(["dns", "ip"]),
    identifier_value=names,
    wildcard=st.booleans(),
    status=st.sampled_from([s for s in AuthorizationStatus if s in known]),
    expires=times,
)
order_rows = st.builds(
    OrderRow,
    id=st.just("o1"),
    account_id=st.just("acct"),
    status=st.sampled_from(list(OrderStatus)),
    profile=st.sampled_from(["server", "client", ""]),
    # Orders have identifiers, authorizations have challenges: certbot's classes failed
    # on an empty list (josepy hashes what it leaves out), so they are compared with some.
    identifiers=st.lists(
        st.tuples(st.sampled_from(["dns", "ip"]), names), min_size=1, max_size=3
    ).map(tuple),
    not_before=st.none() | times,
    not_after=st.none() | times,
    expires=times,
    error=problems,
    certificate_serial=st.none() | st.just("0a"),
    replaces=st.none() | st.sampled_from(["", "aki.serial"]),
    created_at=times,
)
account_rows = st.builds(
    AccountRow,
    id=st.just("acct"),
    thumbprint=st.just("t"),
    jwk=st.just("{}"),
    status=st.sampled_from(list(AccountStatus)),
    contact=st.lists(st.just("mailto:a@b.test"), max_size=2).map(tuple),
    eab_kid=st.none(),
    created_at=times,
)


@settings(max_examples=150, deadline=None)
@given(order=order_rows, authorizations=st.lists(authorization_rows, min_size=1, max_size=3))
def test_an_order_is_encoded_as_certbot_did(
    order: OrderRow, authorizations: list[AuthorizationRow]
) -> None:
    same_bytes(
        ENCODE.encode_order(order, authorizations, URLS), reference_order(order, authorizations)
    )


@settings(max_examples=150, deadline=None)
@given(authz=authorization_rows, challenges=st.lists(challenge_rows, min_size=1, max_size=3))
def test_an_authorization_and_its_challenges_are_encoded_as_certbot_did(
    authz: AuthorizationRow, challenges: list[ChallengeRow]
) -> None:
    same_bytes(
        ENCODE.encode_authorization(authz, challenges, URLS),
        reference_authorization(authz, challenges),
    )
    for challenge in challenges:
        same_bytes(ENCODE.encode_challenge(challenge, URLS), reference_challenge(challenge))


@settings(max_examples=100, deadline=None)
@given(account=account_rows)
def test_an_account_is_encoded_as_certbot_did(account: AccountRow) -> None:
    same_bytes(ENCODE.encode_account(account, URLS), reference_account(account))


def test_an_expired_authorization_says_so() -> None:
    # certbot's Status has no "expired" (RFC 8555 §7.1.6 has): the class-based encoder
    # failed, and the client got a 500 for an authorization it had let expire.
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=dt.UTC)
    authz = AuthorizationRow("a1", "o1", "acct", "dns", "a.test", False, "expired", now)
    encoded = ENCODE.encode_authorization(authz, [], URLS)
    assert encoded == {
        "identifier": {"type": "dns", "value": "a.test"},
        "status": "expired",
        "expires": "2026-01-02T03:04:05Z",
    }
