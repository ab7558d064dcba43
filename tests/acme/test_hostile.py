"""A hostile client: every RFC 8555 §6/§10 rule, one case each, answered with the right
problem document; and a fuzz of the JWS and JSON parsers (no 500, no crash)."""

from __future__ import annotations

import json
from collections.abc import Callable

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privca.acme.jws import parse_jws
from privca.acme.problems import STATUS, AcmeProblem
from tests.acme.conftest import AcmeServer
from tests.acme.jwsclient import JOSE, RawClient, b64

URN = "urn:ietf:params:acme:error:"


@pytest.fixture
def client(acme_server: AcmeServer) -> RawClient:
    c = RawClient(acme_server.url, str(acme_server.root_pem))
    assert c.register().status_code == 201
    return c


def assert_problem(response, kind: str, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["type"] == URN + kind, response.text
    # RFC 8555 §6.5: an answer to a JWS POST carries a nonce, errors too (badNonce needs
    # one to retry with), refusals of the JWS itself included (a bad alg, a body that is
    # no JWS: docs/acme.md promises it); a GET or another media type gets none.
    assert bool(response.headers.get("Replay-Nonce")) == _is_jws_post(response.request)
    assert 'rel="index"' in response.headers["Link"]
    if kind == "badSignatureAlgorithm":  # §6.2: with the algorithms the server accepts
        assert set(response.json()["algorithms"]) == {"RS256", "ES256", "ES384"}


def _is_jws_post(request) -> bool:
    return request.method == "POST" and request.headers.get("Content-Type") == JOSE


def test_nonces_only_from_new_nonce_and_jws_posts(acme_server: AcmeServer) -> None:
    c = RawClient(acme_server.url, str(acme_server.root_pem))
    with_nonce = [
        c.session.head(c.directory["newNonce"]),
        c.session.get(c.directory["newNonce"]),
        # A body that is no JWS: the client retries with the nonce.
        c.session.post(c.directory["newOrder"], data=b"{nope", headers={"Content-Type": JOSE}),
    ]
    without = [
        c.session.get(acme_server.url),
        c.session.get(acme_server.base + "/nowhere"),
        c.session.post(acme_server.base + "/nowhere", data=b"x"),
        c.session.get(c.directory["newOrder"]),
    ]
    for response in with_nonce:
        assert response.headers["Replay-Nonce"]
    for response in without:
        assert "Replay-Nonce" not in response.headers, response.request.url
    for response in with_nonce + without:
        assert response.headers["Link"] == f'<{acme_server.url}>;rel="index"'
        assert response.headers["Cache-Control"] == "no-store"


def test_directory_lists_profiles_and_ari(acme_server: AcmeServer) -> None:
    c = RawClient(acme_server.url, str(acme_server.root_pem))
    assert set(c.directory["meta"]["profiles"]) == {"server", "server-client"}
    assert c.directory["renewalInfo"].endswith("/renewal-info")
    profile = c.session.get(acme_server.base + "/server-client/directory").json()
    assert profile["newOrder"].endswith("/server-client/new-order")


def _order_url(client: RawClient) -> str:
    r = client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "h.test"}]}
    )
    assert r.status_code == 201, r.text
    return r.headers["Location"]


CASES: dict[str, Callable[[RawClient], tuple[object, str, int]]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


@case("general-serialization")
def _general(c):
    jws = c.sign(c.directory["newOrder"], {"identifiers": []})
    body = {
        "payload": jws["payload"],
        "signatures": [{"protected": jws["protected"], "signature": jws["signature"]}],
    }
    return c.post(c.directory["newOrder"], raw=json.dumps(body).encode()), "malformed", 400


@case("two-signatures")
def _two(c):
    jws = c.sign(c.directory["newOrder"], {"identifiers": []})
    sig = {"protected": jws["protected"], "signature": jws["signature"]}
    body = {"payload": jws["payload"], "signatures": [sig, sig]}
    return c.post(c.directory["newOrder"], raw=json.dumps(body).encode()), "malformed", 400


@case("unprotected-header")
def _unprotected(c):
    jws = c.sign(c.directory["newOrder"], {"identifiers": []})
    jws["header"] = {"kid": c.kid}
    return c.post(c.directory["newOrder"], raw=json.dumps(jws).encode()), "malformed", 400


@case("alg-none")
def _none(c):
    jws = c.sign(c.directory["newOrder"], {"identifiers": []})
    protected = json.loads(jose.b64decode(jws["protected"]))
    protected["alg"] = "none"
    jws["protected"] = b64(json.dumps(protected).encode())
    jws["signature"] = ""
    return (
        c.post(c.directory["newOrder"], raw=json.dumps(jws).encode()),
        "badSignatureAlgorithm",
        400,
    )


@case("alg-hmac")
def _hmac(c):
    key = jose.JWKOct(key=b"0" * 32)
    r = c.post(c.directory["newAccount"], {}, key=key, alg=jose.HS256, use_jwk=True)
    return r, "badSignatureAlgorithm", 400


@case("alg-not-matching-key")
def _mismatch(c):
    r = c.post(c.directory["newAccount"], {}, header={"alg": "RS256"}, use_jwk=True)
    return r, "badSignatureAlgorithm", 400


@case("alg-wrong-curve")
def _curve(c):
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1()))
    r = c.post(c.directory["newAccount"], {}, key=key, alg=jose.ES256, use_jwk=True)
    return r, "badSignatureAlgorithm", 400


@case("rsa-too-small")
def _small(c):
    key = jose.JWKRSA(key=rsa.generate_private_key(65537, 1024))
    r = c.post(c.directory["newAccount"], {}, key=key, alg=jose.RS256, use_jwk=True)
    return r, "badPublicKey", 400


@case("jwk-and-kid")
def _both(c):
    jwk = c.key.public_key().to_partial_json()
    return c.post(c.directory["newOrder"], {}, header={"jwk": jwk}), "malformed", 400


@case("kid-where-jwk-required")
def _kid_for_new_account(c):
    return c.post(c.directory["newAccount"], {}, use_jwk=False), "malformed", 400


@case("jwk-where-kid-required")
def _jwk_for_order(c):
    r = c.post(c.directory["newOrder"], {"identifiers": []}, use_jwk=True)
    return r, "malformed", 400


@case("unknown-kid")
def _unknown(c):
    r = c.post(c.directory["newOrder"], {}, header={"kid": c.kid + "x"})
    return r, "accountDoesNotExist", 400


@case("url-mismatch")
def _url(c):
    r = c.post(c.directory["newOrder"], {}, header={"url": c.directory["newAccount"]})
    return r, "unauthorized", 403


@case("url-missing")
def _no_url(c):
    return c.post(c.directory["newOrder"], {}, header={"url": None}), "malformed", 400


@case("nonce-missing")
def _no_nonce(c):
    jws = c.sign(c.directory["newOrder"], {}, header={"nonce": None})
    return c.post(c.directory["newOrder"], raw=json.dumps(jws).encode()), "badNonce", 400


@case("nonce-invented")
def _fake_nonce(c):
    return c.post(c.directory["newOrder"], {}, nonce="bm90LWEtbm9uY2U"), "badNonce", 400


@case("nonce-replayed")
def _replay(c):
    nonce = c.nonce()
    first = c.post(
        c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "r.test"}]}, nonce=nonce
    )
    assert first.status_code == 201
    r = c.post(
        c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "r.test"}]}, nonce=nonce
    )
    return r, "badNonce", 400


@case("bad-signature")
def _bad_sig(c):
    jws = c.sign(c.directory["newOrder"], {"identifiers": []})
    other = c.sign(c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "x.test"}]})
    jws["signature"] = other["signature"]
    return c.post(c.directory["newOrder"], raw=json.dumps(jws).encode()), "malformed", 400


@case("content-type-json")
def _ctype(c):
    return c.post(c.directory["newOrder"], {}, content_type="application/json"), "malformed", 415


@case("body-too-large")
def _large(c):
    r = c.post(c.directory["newOrder"], {"identifiers": [], "pad": "x" * 70_000})
    return r, "malformed", 413


@case("not-json")
def _not_json(c):
    return c.post(c.directory["newOrder"], raw=b"{nope"), "malformed", 400


@case("payload-not-object")
def _array(c):
    return c.post(c.directory["newOrder"], [1, 2]), "malformed", 400


@case("get-on-post-resource")
def _get(c):
    return c.session.get(c.directory["newOrder"]), "malformed", 405


@case("other-accounts-order")
def _other(c):
    url = _order_url(c)
    other = RawClient(c.directory["newNonce"].replace("new-nonce", "directory"), c.session.verify)
    other.register()
    return other.post(url, None), "malformed", 404


@case("unknown-order-id")
def _unknown_order(c):
    url = _order_url(c)
    return c.post(url[:-3] + "zzz", None), "malformed", 404


@case("deactivated-account")
def _deactivated(c):
    r = c.post(c.kid, {"status": "deactivated"})
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    r = c.post(c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "d.test"}]})
    return r, "unauthorized", 403


@case("unsupported-identifier")
def _email(c):
    r = c.post(c.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.test"}]})
    return r, "unsupportedIdentifier", 400


@case("invalid-identifier")
def _bad_name(c):
    r = c.post(c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "-bad..test"}]})
    return r, "rejectedIdentifier", 400


@case("finalize-not-ready")
def _not_ready(c):
    url = _order_url(c)
    return c.post(url + "/finalize", {"csr": "AAAA"}), "orderNotReady", 403


@case("unknown-profile")
def _profile(c):
    r = c.post(
        c.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "p.test"}], "profile": "root"},
    )
    return r, "invalidProfile", 400


@case("contact-not-mailto")
def _contact(c):
    other = RawClient(c.directory["newNonce"].replace("new-nonce", "directory"), c.session.verify)
    r = other.post(other.directory["newAccount"], {"contact": ["tel:+1555"]})
    return r, "unsupportedContact", 400


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_request_is_refused(client: RawClient, name: str) -> None:
    response, kind, status = CASES[name](client)
    assert_problem(response, kind, status)


def test_post_as_get_needs_an_empty_payload(client: RawClient) -> None:
    url = _order_url(client)
    assert client.post(url, None).status_code == 200
    # an empty payload (not "{}") is POST-as-GET; the certificate URL needs it too
    assert client.post(url, b"").json()["status"] == "pending"
    response = client.session.get(url)
    assert_problem(response, "malformed", 405)


def test_new_account_with_an_existing_key_returns_it(client: RawClient) -> None:
    response = client.post(client.directory["newAccount"], {}, use_jwk=True)
    assert response.status_code == 200
    assert response.headers["Location"] == client.kid
    fresh = RawClient(
        client.directory["newNonce"].replace("new-nonce", "directory"), client.session.verify
    )
    r = fresh.post(fresh.directory["newAccount"], {"onlyReturnExisting": True})
    assert_problem(r, "accountDoesNotExist", 400)


def test_rate_limit_answers_retry_after(start_acme) -> None:
    server = start_acme(orders_per_window=2)
    c = RawClient(server.url, str(server.root_pem))
    c.register()
    for _ in range(2):
        _order_url(c)
    r = c.post(c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "h.test"}]})
    assert_problem(r, "rateLimited", 429)
    assert int(r.headers["Retry-After"]) > 0


def test_the_problem_table_is_complete() -> None:
    for kind, status in STATUS.items():
        document = AcmeProblem(kind, "x").to_json()
        assert document["status"] == status
        assert document["type"].startswith(URN)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    protected=json_values,
    payload=st.binary(max_size=64),
    signature=st.binary(max_size=80),
    extra=st.dictionaries(st.sampled_from(["header", "signatures", "x"]), json_values, max_size=2),
)
def test_fuzz_the_jws_parser(protected, payload, signature, extra) -> None:
    document = {
        "protected": b64(json.dumps(protected).encode()),
        "payload": b64(payload),
        "signature": b64(signature),
        **extra,
    }
    try:
        parse_jws(json.dumps(document).encode())
    except AcmeProblem as problem:
        assert problem.status < 500


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_the_json_decoder(body: bytes) -> None:
    try:
        parse_jws(body)
    except AcmeProblem as problem:
        assert problem.status < 500


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=json_values)
def test_fuzz_new_order_payloads_over_http(client: RawClient, payload) -> None:
    response = client.post(client.directory["newOrder"], payload)
    assert response.status_code < 500, response.text


def _key_change_body(client: RawClient, new_key: jose.JWK, **inner_header) -> dict:
    url = client.directory["keyChange"]
    inner_payload = {"account": client.kid, "oldKey": client.key.public_key().to_partial_json()}
    header = {"nonce": None, **inner_header}
    return client.sign(url, inner_payload, key=new_key, use_jwk=True, header=header)


def test_key_change_rolls_the_account_key(client: RawClient, acme_server: AcmeServer) -> None:
    url = client.directory["keyChange"]
    new_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1()))
    # the inner JWS must name the same URL as the outer one
    wrong = _key_change_body(client, new_key, url=client.directory["newOrder"])
    assert_problem(client.post(url, wrong), "malformed", 400)
    response = client.post(url, _key_change_body(client, new_key))
    assert response.status_code == 200, response.text
    old_key = client.key
    client.key = new_key
    assert client.post(client.kid, None).status_code == 200
    client.key = old_key
    # the old (P-256) key no longer fits the account key (P-384)
    assert_problem(client.post(client.kid, None), "badSignatureAlgorithm", 400)
    # who controls the account changed: the audit log says so, and still verifies
    with acme_server.ca.inventory.audit_snapshot() as log:
        changes = [e for e in log.entries() if e.action == "acme-account-key-changed"]
    assert [e.details["account"] for e in changes] == [client.kid.rsplit("/", 1)[-1]]


def test_key_change_to_a_key_in_use_is_a_conflict(client: RawClient) -> None:
    other = RawClient(
        client.directory["newNonce"].replace("new-nonce", "directory"), client.session.verify
    )
    other.register()
    response = client.post(client.directory["keyChange"], _key_change_body(client, other.key))
    assert response.status_code == 409
    assert response.headers["Location"] == other.kid
