"""A hostile client's review of the ACME server (protocol level), one test per finding,
each through the real server with a client that signs what it is told (jwsclient.py)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import threading
from typing import Any

import josepy as jose
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from privca.acme import orders
from privca.acme.state import OrderStatus, account_deactivated
from tests.acme.conftest import AcmeServer
from tests.acme.jwsclient import JOSE, RawClient, b64
from tests.acme.test_review_rfc import (
    _authorized,
    _stored_order,
    issue,
    new_client,
    place,
    problem,
)

# Open orders of the account that revokes (each one was a query of its own).
ORDERS = 40


def _key_change(client: RawClient, new_key: jose.JWK) -> bytes:
    """A whole keyChange request body, signed now by the client's current key."""
    url = client.directory["keyChange"]
    old = client.key.public_key().to_partial_json()
    payload = {"account": client.kid, "oldKey": old}
    inner = client.sign(url, payload, key=new_key, use_jwk=True, header={"nonce": None})
    return json.dumps(client.sign(url, inner)).encode()


def _paused_before_key_change(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, parties: int, before: Any = None
) -> None:
    """Every keyChange waits, once authenticated, until `parties` of them are (and `before`
    ran): they all read the account as it was, as requests racing on replicas do."""
    store = server.service.accounts.repository
    change_key = store.change_key
    barrier = threading.Barrier(parties, action=before, timeout=10)

    def paused(*args: Any) -> Any:
        barrier.wait()
        return change_key(*args)

    monkeypatch.setattr(store, "change_key", paused)


def test_two_rollovers_signed_by_one_key_change_it_once(
    acme_server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder of a stolen account key and its owner roll it over at once: one wins,
    the other is told so (both were answered 200, and the later write won silently)."""
    client = new_client(acme_server)
    _paused_before_key_change(acme_server, monkeypatch, 2)
    keys = [jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())) for _ in range(2)]
    bodies = [_key_change(client, key) for key in keys]
    url = client.directory["keyChange"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda body: client.session.post(
                    url, data=body, headers={"Content-Type": JOSE}, timeout=30
                ),
                bodies,
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 403], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 403)
    problem(loser, "unauthorized", 403)
    winner = keys[[a.status_code for a in answers].index(200)]
    account = acme_server.store.account(client.kid.rsplit("/", 1)[-1])
    assert account is not None
    assert account.thumbprint == jose.b64encode(winner.thumbprint()).decode()


def test_a_rollover_racing_a_deactivation_changes_nothing(
    acme_server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = new_client(acme_server)
    account_id = client.kid.rsplit("/", 1)[-1]
    before = acme_server.store.account(account_id)

    def deactivate() -> None:
        acme_server.store.update_account(account_id, transition=account_deactivated())

    _paused_before_key_change(acme_server, monkeypatch, 1, deactivate)
    new_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    response = client.post(client.directory["keyChange"], raw=_key_change(client, new_key))
    problem(response, "unauthorized", 403)
    after = acme_server.store.account(account_id)
    assert after is not None and before is not None
    assert after.thumbprint == before.thumbprint


def test_revoke_by_another_account_reads_its_authorizations_at_once(
    acme_server: AcmeServer,
) -> None:
    """revokeCert by an account that did not order the certificate looks for its valid
    authorizations: that was one query per open order of the account (up to a thousand,
    ~0.15 s a request on SQLite, which any account could make as often as it liked)."""
    owner = new_client(acme_server)
    _order_url, certificate = issue(acme_server, owner, ["owned.attack.test"])
    attacker = new_client(acme_server)
    for index in range(ORDERS):
        assert place(attacker, [f"n{index}.attack.test"]).status_code == 201
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = acme_server.store.engine
    body = {"certificate": b64(certificate.public_bytes(Encoding.DER))}
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        response = attacker.post(attacker.directory["revokeCert"], body)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    problem(response, "unauthorized", 403)
    assert len(statements) < ORDERS // 2, statements


@pytest.mark.parametrize(
    "key",
    [
        jose.JWKRSA(key=rsa.generate_private_key(65537, 1024)),
        jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
    ],
    ids=["rsa-1024", "ec-p256"],
)
def test_a_private_jwk_is_malformed(acme_server: AcmeServer, key: jose.JWK) -> None:
    """The header's jwk with "d" (the private key): malformed, whatever the key; a 1024-bit
    RSA key was not refused for its size, then failed as a bad signature."""
    client = RawClient(acme_server.url, str(acme_server.root_pem), key=key)
    url = client.directory["newAccount"]
    private = key.to_partial_json()  # a private JWK: every member, "d" included
    assert "d" in private
    response = client.post(url, {}, header={"jwk": private})
    document = problem(response, "malformed", 400)
    assert "private" in document["detail"]
    assert response.headers["Replay-Nonce"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("TRACE", "/new-order", "POST"),
        ("PROPFIND", "/directory", "GET, HEAD"),
        ("MKCOL", "/new-nonce", "GET, HEAD"),
    ],
)
def test_any_method_gets_a_problem_document(
    acme_server: AcmeServer, method: str, path: str, allow: str
) -> None:
    """A method outside the ones listed for the routes was answered by Starlette itself:
    405 in plain text, without the index Link."""
    client = RawClient(acme_server.url, str(acme_server.root_pem))
    response = client.session.request(method, acme_server.base + path, timeout=10)
    problem(response, "malformed", 405)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["Allow"] == allow
    assert response.headers["Link"] == f'<{acme_server.url}>;rel="index"'


# OSC 52 (a terminal writes this to the clipboard), then a right-to-left override.
CONTROLS = ("\x1b", "\x07", "\u202e")
HOSTILE = "\x1b]52;c;cHduZWQ=\x07\u202e"


def test_a_refused_contact_or_profile_is_shown_escaped(acme_server: AcmeServer) -> None:
    """A contact or a profile the server refuses is named in the detail with its control
    and bidi characters escaped (they came back raw, as the client wrote them); a contact
    with them is refused (it was stored)."""
    client = RawClient(acme_server.url, str(acme_server.root_pem))
    contact = {"contact": [f"mailto:{HOSTILE}@a.test"]}
    refused = problem(client.post(client.directory["newAccount"], contact), "invalidContact", 400)
    assert client.register().status_code == 201
    identifiers = [{"type": "dns", "value": "p.attack.test"}]
    order = {"identifiers": identifiers, "profile": HOSTILE}
    unknown = problem(client.post(client.directory["newOrder"], order), "invalidProfile", 400)
    for document in (refused, unknown):
        assert not any(c in document["detail"] for c in CONTROLS), document
        assert "\\x1b" in document["detail"], document


def test_a_page_of_the_order_list_reads_a_page(
    acme_server: AcmeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`?page=N` read every order of the account up to the page's end, and any number
    of pages may be asked for (a million: every order, on every request)."""
    client = new_client(acme_server)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    urls = [
        _stored_order(acme_server, client, f"p{i}.test", status=OrderStatus.PENDING, expires=later)
        for i in range(orders.ORDERS_PAGE * 3 + 5)
    ]
    store = acme_server.service.orders.repository
    read: list[int] = []
    listing = store.orders

    def counted(*args: Any, **kwargs: Any) -> Any:
        rows = listing(*args, **kwargs)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(store, "orders", counted)
    seen: list[str] = []
    url: str | None = client.kid + "/orders"  # type: ignore[operator]
    while url is not None:
        response = client.post(url, None)
        assert response.status_code == 200, response.text
        seen += response.json()["orders"]
        url = response.links.get("next", {}).get("url")
    assert sorted(seen) == sorted(urls)
    assert len(read) == 4 and max(read) <= orders.ORDERS_PAGE + 1, read
    far = client.post(client.kid + "/orders?page=999999", None)  # type: ignore[operator]
    assert far.status_code == 200 and far.json()["orders"] == []
    assert read[-1] == 0


@pytest.mark.parametrize("resource", ["newAccount", "newOrder", "revokeCert"])
def test_a_header_with_neither_jwk_nor_kid_says_so(acme_server: AcmeServer, resource: str) -> None:
    """It was told to carry the one the resource wanted, "not a 'jwk'" or "not a 'kid'",
    though it carried neither."""
    client = new_client(acme_server)
    response = client.post(client.directory[resource], {}, header={"kid": None})
    document = problem(response, "malformed", 400)
    assert "neither 'jwk' nor 'kid'" in document["detail"], document


def test_keycompromise_needs_the_key_or_the_subscriber(acme_server: AcmeServer) -> None:
    """An account that only validated the certificate's names may revoke it, but not for
    keyCompromise, which bars the subscriber's key from every certificate for good."""
    owner = new_client(acme_server)
    _url, certificate = issue(acme_server, owner, ["kc1.attack.test", "kc2.attack.test"])
    third = _authorized(acme_server, ["kc1.attack.test", "kc2.attack.test"])
    body = {"certificate": b64(certificate.public_bytes(Encoding.DER))}
    refused = third.post(third.directory["revokeCert"], {**body, "reason": 1})
    problem(refused, "badRevocationReason", 400)
    info = acme_server.service.issuer.lookup(certificate.serial_number)
    assert info is not None and info.status == "valid"
    assert third.post(third.directory["revokeCert"], {**body, "reason": 5}).status_code == 200
    # The subscriber still may (its key then barred, as before).
    assert owner.post(owner.directory["revokeCert"], {**body, "reason": 1}).status_code == 200
