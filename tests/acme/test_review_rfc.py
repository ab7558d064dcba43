"""A hostile review of the ACME server against RFC 8555 and RFC 9773, one test per finding,
each through the real server with a client that signs what it is told (jwsclient.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import ssl
import urllib.parse
from typing import Any

import josepy as jose
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from privca.acme import orders
from privca.acme.renewal import ari_cert_id
from privca.acme.repository import OrderRow
from privca.acme.resources import new_id
from privca.acme.state import AuthorizationStatus, OrderStatus
from tests.acme.conftest import AcmeServer
from tests.acme.jwsclient import JOSE, RawClient, b64

URN = "urn:ietf:params:acme:error:"


def new_client(server: AcmeServer) -> RawClient:
    client = RawClient(server.url, str(server.root_pem))
    assert client.register().status_code == 201
    return client


def authorize(server: AcmeServer, client: RawClient, order: dict[str, Any]) -> None:
    """Every authorization of the order made valid by a real dns-01 validation."""
    for url in order["authorizations"]:
        authz = client.post(url, None).json()
        if authz["status"] == "valid":
            continue
        challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
        key_authorization = f"{challenge['token']}.{b64(client.key.thumbprint())}"
        digest = hashlib.sha256(key_authorization.encode()).digest()
        server.dns.set_txt(f"_acme-challenge.{authz['identifier']['value']}", b64(digest))
        assert client.post(challenge["url"], {}).json()["status"] == "valid"


def place(client: RawClient, names: list[str], **extra: Any) -> Any:
    identifiers = [{"type": "dns", "value": n} for n in names]
    return client.post(client.directory["newOrder"], {"identifiers": identifiers, **extra})


def csr_for(names: list[str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return b64(csr.public_bytes(Encoding.DER))


def finalize(client: RawClient, order_url: str, order: dict[str, Any]) -> Any:
    names = [i["value"] for i in order["identifiers"]]
    return client.post(order["finalize"], {"csr": csr_for(names)})


def issue(
    server: AcmeServer, client: RawClient, names: list[str], **extra: Any
) -> tuple[str, x509.Certificate]:
    """A certificate for `names`, through the whole flow; (order URL, certificate)."""
    response = place(client, names, **extra)
    assert response.status_code == 201, response.text
    order_url, order = response.headers["Location"], response.json()
    authorize(server, client, order)
    done = finalize(client, order_url, client.post(order_url, None).json())
    assert done.status_code == 200 and done.json()["status"] == "valid", done.text
    pem = client.post(done.json()["certificate"], None).content
    return order_url, x509.load_pem_x509_certificates(pem)[0]


def problem(response: Any, kind: str, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    document: dict[str, Any] = response.json()
    assert document["type"] == URN + kind, document
    return document


# 1. ARI `replaces` (RFC 9773 §5) ------------------------------------------------------


def _superseded(server: AcmeServer, certificate: x509.Certificate) -> bool:
    info = server.service.issuer.lookup(certificate.serial_number)
    assert info is not None
    return info.superseded


def test_replaces_needs_a_shared_identifier(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    _url, keep = issue(acme_server, client, ["keep.test"])
    response = place(client, ["other.test"], replaces=ari_cert_id(keep))
    assert "shares no identifier" in problem(response, "malformed", 400)["detail"]
    assert not _superseded(acme_server, keep)


def test_a_certificate_is_replaced_once(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    _url, old = issue(acme_server, client, ["once.test", "twice.test"])
    cert_id = ari_cert_id(old)
    first = place(client, ["once.test"], replaces=cert_id)
    assert first.status_code == 201, first.text
    # An order left pending does not block a retry (a client that stalled would wait out
    # the order's 7 days); finalize settles which of two open orders wins.
    retry = place(client, ["twice.test"], replaces=cert_id)
    assert retry.status_code == 201, retry.text
    # Once the first order is issued, the certificate is superseded: a conflict (409).
    authorize(acme_server, client, first.json())
    order_url = first.headers["Location"]
    done = finalize(client, order_url, client.post(order_url, None).json())
    assert done.json()["status"] == "valid", done.text
    assert _superseded(acme_server, old)
    problem(place(client, ["once.test"], replaces=cert_id), "alreadyReplaced", 409)


def _stored_copy(server: AcmeServer, order_url: str) -> str:
    """Another order like the one at `order_url`, stored as a second replica racing the
    first would have stored it (its newOrder checked before the first was stored)."""
    stored = server.store.order(order_url.rsplit("/", 1)[-1])
    assert stored is not None
    copy = dataclasses.replace(
        stored, id=new_id(), created_at=stored.created_at + dt.timedelta(seconds=1)
    )
    authorizations, challenges = orders._authorizations(copy)
    server.store.add_order(copy, authorizations, challenges)
    return order_url.rsplit("/", 1)[0] + "/" + copy.id


def test_two_orders_placed_at_once_supersede_once(acme_server: AcmeServer) -> None:
    """Both accepted: the second to finalize is refused for good, nothing issued for it."""
    client = new_client(acme_server)
    _url, old = issue(acme_server, client, ["race.test"])
    first = place(client, ["race.test"], replaces=ari_cert_id(old))
    assert first.status_code == 201, first.text
    first_url = first.headers["Location"]
    second_url = _stored_copy(acme_server, first_url)
    for url in (first_url, second_url):
        authorize(acme_server, client, client.post(url, None).json())
    winner = finalize(client, first_url, client.post(first_url, None).json())
    assert winner.json()["status"] == "valid", winner.text
    count = acme_server.ca.inventory.count()
    loser = finalize(client, second_url, client.post(second_url, None).json())
    problem(loser, "alreadyReplaced", 409)
    assert acme_server.ca.inventory.count() == count
    assert client.post(second_url, None).json()["status"] == "invalid"


# 2. revokeCert by an account authorized for every identifier (RFC 8555 §7.6) --------------


def _authorized(server: AcmeServer, names: list[str]) -> RawClient:
    """An account holding valid authorizations for `names` (an order never finalized)."""
    client = new_client(server)
    response = place(client, names)
    assert response.status_code == 201, response.text
    authorize(server, client, response.json())
    return client


def _revoke(client: RawClient, certificate: x509.Certificate) -> Any:
    der = b64(certificate.public_bytes(Encoding.DER))
    return client.post(client.directory["revokeCert"], {"certificate": der, "reason": 4})


def test_an_account_authorized_for_every_name_may_revoke(acme_server: AcmeServer) -> None:
    _url, certificate = issue(acme_server, new_client(acme_server), ["r1.test", "r2.test"])
    partial = _authorized(acme_server, ["r1.test"])
    problem(_revoke(partial, certificate), "unauthorized", 403)
    assert acme_server.service.issuer.lookup(certificate.serial_number).status == "valid"
    covering = _authorized(acme_server, ["r1.test", "r2.test"])
    response = _revoke(covering, certificate)
    assert response.status_code == 200, response.text
    assert acme_server.service.issuer.lookup(certificate.serial_number).status == "revoked"


# 3. badSignatureAlgorithm lists the algorithms; every JWS POST answer has a nonce -------


def test_bad_signature_algorithm_lists_the_accepted_ones(acme_server: AcmeServer) -> None:
    client = RawClient(acme_server.url, str(acme_server.root_pem))
    signed = client.sign(client.directory["newAccount"], {}, header={"alg": "HS256"})
    response = client.post(client.directory["newAccount"], raw=json.dumps(signed).encode())
    document = problem(response, "badSignatureAlgorithm", 400)
    assert document["algorithms"] == ["RS256", "ES256", "ES384"]
    assert response.headers["Replay-Nonce"]


def _general_serialization(client: RawClient) -> bytes:
    signed = client.sign(client.directory["newOrder"], {"identifiers": []})
    signature = {"protected": signed["protected"], "signature": signed["signature"]}
    return json.dumps({"payload": signed["payload"], "signatures": [signature]}).encode()


def _with_header(client: RawClient, **header: Any) -> bytes:
    signed = client.sign(client.directory["newOrder"], {"identifiers": []}, header=header)
    return json.dumps(signed).encode()


JWS_REFUSALS = {
    "crit": lambda c: _with_header(c, crit=["b64"], b64=False),
    "general-serialization": _general_serialization,
    "not-json": lambda c: b"{nope",
    "rsa-1024": lambda c: json.dumps(
        c.sign(
            c.directory["newAccount"],
            {},
            key=jose.JWKRSA(key=rsa.generate_private_key(65537, 1024)),
            use_jwk=True,
        )
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(JWS_REFUSALS))
def test_a_refused_jws_still_gets_a_nonce(acme_server: AcmeServer, name: str) -> None:
    client = new_client(acme_server)
    url = client.directory["newAccount" if name == "rsa-1024" else "newOrder"]
    response = client.post(url, raw=JWS_REFUSALS[name](client))
    assert response.status_code == 400, response.text
    nonce = response.headers["Replay-Nonce"]
    # ... and it is a nonce the server accepts.
    retried = client.post(client.kid, None, nonce=nonce)
    assert retried.status_code == 200, retried.text


# 4. newOrder reports each refused identifier (RFC 8555 §6.7.1) ------------------------


def test_each_refused_identifier_is_reported(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    hostile = "\x1b[31mevil\u202e.test"
    identifiers = [
        {"type": "dns", "value": "fine.test"},
        {"type": "dns", "value": "-bad..test"},
        {"type": "dns", "value": hostile},
        {"type": "email", "value": "a@b.test"},
    ]
    response = client.post(client.directory["newOrder"], {"identifiers": identifiers})
    document = problem(response, "rejectedIdentifier", 400)
    assert "3 of the order's 4 identifiers" in document["detail"]
    subproblems = document["subproblems"]
    assert [s["identifier"]["type"] for s in subproblems] == ["dns", "dns", "email"]
    assert [s["type"] for s in subproblems] == [
        URN + "rejectedIdentifier",
        URN + "rejectedIdentifier",
        URN + "unsupportedIdentifier",
    ]
    assert subproblems[0]["identifier"]["value"] == "-bad..test"
    # The hostile value is named escaped, never as it came (the rest of privca's rule).
    shown = json.dumps(subproblems[1], ensure_ascii=False)
    assert "evil" in shown and "\x1b" not in shown and "\u202e" not in shown


def test_a_non_string_identifier_value_is_malformed(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    one = [{"type": "dns", "value": 5}]
    response = client.post(client.directory["newOrder"], {"identifiers": one})
    document = problem(response, "malformed", 400)
    assert document["identifier"] == {"type": "dns", "value": "5"}
    two = [{"type": "dns", "value": 5}, {"type": "dns", "value": ["x"]}]
    response = client.post(client.directory["newOrder"], {"identifiers": two})
    document = problem(response, "malformed", 400)
    assert len(document["subproblems"]) == 2


# 6. keyChange: the inner JWS carries no nonce (RFC 8555 §7.3.5) ------------------------


def test_key_change_refuses_an_inner_nonce(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    url = client.directory["keyChange"]
    new_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    inner_payload = {"account": client.kid, "oldKey": client.key.public_key().to_partial_json()}
    inner = client.sign(url, inner_payload, key=new_key, use_jwk=True)  # with a fresh nonce
    document = problem(client.post(url, inner), "malformed", 400)
    assert "'nonce'" in document["detail"]
    # The account key did not change: the old key still signs.
    assert client.post(client.kid, None).status_code == 200


# 7. The JWS `url` is the URL as requested (RFC 8555 §6.4) -----------------------------


def _post_as_spelt(server: AcmeServer, url: str, body: dict[str, str]) -> tuple[int, Any]:
    """POST to `url` byte for byte (requests would normalize %2D to "-")."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if "?" in url else "")
    context = ssl.create_default_context(cafile=str(server.root_pem))
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
    try:
        headers = {"Content-Type": JOSE}
        connection.request("POST", target, json.dumps(body).encode(), headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("sent_to", ["new-order?x=1", "new%2Dorder", "new-order?"])
def test_a_jws_for_one_url_is_refused_at_another_spelling(
    acme_server: AcmeServer, sent_to: str
) -> None:
    client = new_client(acme_server)
    url = client.directory["newOrder"]
    payload = {"identifiers": [{"type": "dns", "value": "url.test"}]}
    target = url.rsplit("/", 1)[0] + "/" + sent_to
    status, document = _post_as_spelt(acme_server, target, client.sign(url, payload))
    if sent_to == "new-order?":  # an empty query is no query: the same URL
        assert status == 201, document
        return
    assert (status, document["type"]) == (403, URN + "unauthorized"), document
    # Signed for the URL as requested, the query string is part of it.
    status, document = _post_as_spelt(acme_server, target, client.sign(target, payload))
    assert status == 201, document


# 8. A 405 says which methods are allowed (RFC 9110 §15.5.6) ----------------------------


def test_method_not_allowed_carries_allow(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    cert_id = "AAAA.AQ"
    cases = [
        ("GET", client.directory["newOrder"], "POST"),
        ("PUT", client.kid, "POST"),
        ("POST", acme_server.url, "GET, HEAD"),
        ("DELETE", client.directory["newNonce"], "GET, HEAD"),
        ("POST", client.directory["renewalInfo"] + "/" + cert_id, "GET, HEAD"),
    ]
    for method, url, allowed in cases:
        response = client.session.request(method, url, timeout=10)
        assert response.status_code == 405, (method, url, response.text)
        assert response.headers["Allow"] == allowed, (method, url)


# 5. Expiry: the order list, and authorizations past their expiry ------------------------


def _account_id(client: RawClient) -> str:
    assert client.kid is not None
    return client.kid.rsplit("/", 1)[-1]


def _stored_order(
    server: AcmeServer,
    client: RawClient,
    name: str,
    *,
    status: OrderStatus,
    expires: dt.datetime,
    authorization_status: AuthorizationStatus = AuthorizationStatus.PENDING,
    authorization_expires: dt.datetime | None = None,
) -> str:
    """An order stored as time would have left it (no test waits a week); its URL."""
    now = dt.datetime.now(dt.UTC)
    order = OrderRow(
        id=new_id(),
        account_id=_account_id(client),
        status=status,
        profile="server",
        identifiers=(("dns", name),),
        not_before=None,
        not_after=None,
        expires=expires,
        error=None,
        certificate_serial=None,
        replaces=None,
        created_at=now,
    )
    authorizations, challenges = orders._authorizations(order)
    authorizations = [
        dataclasses.replace(
            a, status=authorization_status, expires=authorization_expires or expires
        )
        for a in authorizations
    ]
    server.store.add_order(order, authorizations, challenges)
    return client.kid.rsplit("/account/", 1)[0] + "/order/" + order.id  # type: ignore[union-attr]


def _listed(client: RawClient, url: str | None = None) -> tuple[list[str], str | None]:
    url = url or client.kid + "/orders"  # type: ignore[operator]
    response = client.post(url, None)
    assert response.status_code == 200, response.text
    following = response.links.get("next", {}).get("url")
    return response.json()["orders"], following


def test_the_order_list_shows_what_is_not_invalid(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    issued_url, _certificate = issue(acme_server, client, ["listed.test"])
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    lapsed = _stored_order(
        acme_server, client, "lapsed.test", status=OrderStatus.READY, expires=past
    )
    assert client.post(lapsed, None).json()["status"] == "invalid"
    pending = place(client, ["pending.test"]).headers["Location"]
    listed, following = _listed(client)
    # Newest first: the open order, then the issued one; never the expired one.
    assert listed == [pending, issued_url]
    assert following is None


def test_the_order_list_is_paginated(acme_server: AcmeServer) -> None:
    client = new_client(acme_server)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    urls = [
        _stored_order(acme_server, client, f"p{i}.test", status=OrderStatus.PENDING, expires=later)
        for i in range(orders.ORDERS_PAGE + 2)
    ]
    first, following = _listed(client)
    assert len(first) == orders.ORDERS_PAGE and following is not None
    second, last = _listed(client, following)
    assert last is None
    assert sorted(first + second) == sorted(urls)


def test_a_valid_authorization_past_its_expiry_is_expired(acme_server: AcmeServer) -> None:
    """It proves nothing any more: not for its order's finalize, not for a revocation."""
    _url, certificate = issue(acme_server, new_client(acme_server), ["lapse.test"])
    client = new_client(acme_server)
    now = dt.datetime.now(dt.UTC)
    order_url = _stored_order(
        acme_server,
        client,
        "lapse.test",
        status=OrderStatus.READY,
        expires=now + dt.timedelta(days=1),
        authorization_status=AuthorizationStatus.VALID,
        authorization_expires=now - dt.timedelta(minutes=1),
    )
    order = client.post(order_url, None).json()
    assert client.post(order["authorizations"][0], None).json()["status"] == "expired"
    assert order["status"] == "invalid"
    problem(finalize(client, order_url, order), "orderNotReady", 403)
    problem(_revoke(client, certificate), "unauthorized", 403)
