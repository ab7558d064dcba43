"""parse_jws and verify without josepy's JWS objects: the same requests accepted, the same
refused, and the signature checked over the same bytes as josepy checks it."""

from __future__ import annotations

import json
from typing import Any

import josepy as jose
import pytest
from acme import jws as acme_jws
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privca.acme import jws
from privca.acme.problems import AcmeProblem
from tests.acme.jwsclient import b64

EC_KEY = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
EC384_KEY = jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1()))
RSA_KEY = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
URL = "https://ca.test/acme/new-order"
UNDECODABLE = "the JWS could not be decoded"


def signed(
    payload: bytes,
    key: jose.JWK = EC_KEY,
    alg: jose.JWASignature = jose.ES256,
    header: dict[str, Any] | None = None,
    *,
    protected_bytes: bytes | None = None,
) -> dict[str, str]:
    """A flattened JWS as a client would send it, `header` over the default members."""
    protected = {"alg": alg.name, "nonce": "bm9uY2U", "url": URL, "kid": "https://ca.test/a/1"}
    protected.update(header or {})
    protected = {k: v for k, v in protected.items() if v is not None}
    raw = protected_bytes if protected_bytes is not None else json.dumps(protected).encode()
    signature = alg.sign(key.key, (b64(raw) + "." + b64(payload)).encode())
    return {"protected": b64(raw), "payload": b64(payload), "signature": b64(signature)}


def body(document: dict[str, str]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("key", "alg"), [(EC_KEY, jose.ES256), (EC384_KEY, jose.ES384), (RSA_KEY, jose.RS256)]
)
def test_a_signature_verifies_and_a_changed_payload_does_not(
    key: jose.JWK, alg: jose.JWASignature
) -> None:
    document = signed(b'{"identifiers":[]}', key, alg)
    request = jws.parse_jws(body(document))
    jws.verify(request, key.public_key())
    assert acme_jws.JWS.from_json(document).verify(key.public_key())
    document["payload"] = b64(b'{"identifiers":[{}]}')
    with pytest.raises(AcmeProblem, match="does not verify"):
        jws.verify(jws.parse_jws(body(document)), key.public_key())


def test_a_signature_by_another_key_or_cut_short_does_not_verify() -> None:
    document = signed(b"")
    other = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(AcmeProblem, match="does not verify"):
        jws.verify(jws.parse_jws(body(document)), other.public_key())
    document["signature"] = document["signature"][:-4]
    with pytest.raises(AcmeProblem, match="does not verify"):
        jws.verify(jws.parse_jws(body(document)), EC_KEY.public_key())


def test_a_non_canonical_encoding_of_the_signed_bytes_does_not_verify() -> None:
    # The last character of an unpadded base64url string may carry unused bits; with
    # them set it decodes to the same bytes, but it is not what was signed. josepy
    # rebuilds the signing input from the decoded bytes, and so does privca.
    payload = b"{}"  # 2 bytes: 3 characters, the last with 2 unused bits
    document = signed(payload)
    encoded = document["payload"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mangled = encoded[:-1] + alphabet[alphabet.index(encoded[-1]) | 1]
    assert mangled != encoded and jose.b64decode(mangled) == payload
    raw = document["protected"] + "." + mangled
    document.update(payload=mangled, signature=b64(jose.ES256.sign(EC_KEY.key, raw.encode())))
    assert not acme_jws.JWS.from_json(document).verify(EC_KEY.public_key())
    with pytest.raises(AcmeProblem, match="does not verify"):
        jws.verify(jws.parse_jws(body(document)), EC_KEY.public_key())


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_header_in_another_unicode_encoding_is_refused(encoding: str) -> None:
    # RFC 7515 §4: the header is UTF-8. json.loads would read these; josepy does not.
    header = {"alg": "ES256", "nonce": "bm9uY2U", "url": URL, "kid": "https://ca.test/a/1"}
    document = signed(b"", protected_bytes=json.dumps(header).encode(encoding))
    with pytest.raises(AcmeProblem, match=UNDECODABLE):
        jws.parse_jws(body(document))


@pytest.mark.parametrize("junk", ["!", "*", "~", ".", "\u0661", "\u00a0"])
@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_a_member_with_characters_outside_base64url_is_refused(member: str, junk: str) -> None:
    # b64decode skips them: the same JWS would verify under many spellings.
    document = signed(b"{}")
    value = document[member]
    document[member] = value[:2] + junk + value[2:]
    with pytest.raises(AcmeProblem, match="not unpadded base64url"):
        jws.parse_jws(body(document))


def test_a_member_of_impossible_length_is_refused() -> None:
    document = signed(b"{}")
    signature = document["signature"]
    document["signature"] = signature + "A" * ((1 - len(signature)) % 4)
    assert len(document["signature"]) % 4 == 1
    with pytest.raises(AcmeProblem, match="not unpadded base64url"):
        jws.parse_jws(body(document))


def test_the_header_jwk_is_the_key_josepy_reads() -> None:
    public = EC_KEY.public_key()
    document = signed(b"", header={"kid": None, "jwk": public.to_partial_json()})
    request = jws.parse_jws(body(document))
    assert request.jwk == public == acme_jws.JWS.from_json(document).signature.combined.jwk
    jws.verify(request, request.jwk)


# Header members josepy decodes (and may refuse), with values that pass and that fail.
HEADER_MEMBERS = st.dictionaries(
    st.sampled_from(["nonce", "jwk", "x5c", "x5t", "x5t#S256", "typ", "cty", "jku", "zzz"]),
    st.one_of(
        st.sampled_from(["bm9uY2U", "a", "abcde", "", "a;b", "JOSE", "application/x"]),
        st.just(EC_KEY.public_key().to_partial_json()),
        st.just({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        st.just({"kty": "nope"}),
        st.lists(st.sampled_from(["AAAA", "!"]), max_size=2),
        st.integers(),
        st.none(),
    ),
    max_size=3,
)


# Without a BOM too: json.loads guesses UTF-16 and UTF-32 from the NUL bytes of ASCII text.
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=HEADER_MEMBERS, encoding=st.sampled_from(ENCODINGS))
def test_the_header_is_refused_exactly_when_josepy_refuses_it(
    members: dict[str, Any], encoding: str
) -> None:
    header = {"alg": "ES256", "url": URL, **members}
    if "jwk" not in header:
        header["kid"] = "https://ca.test/a/1"
    raw = json.dumps(header).encode(encoding)
    document = signed(b"", protected_bytes=raw)
    try:
        josepy_jwk = acme_jws.JWS.from_json(document).signature.combined.jwk
        josepy_error = None
    except Exception as exc:  # what the josepy-only parser turned into UNDECODABLE
        josepy_error = exc
    try:
        request = jws.parse_jws(body(document))
    except AcmeProblem as problem:
        if problem.detail == UNDECODABLE:
            assert josepy_error is not None, header
        # Refused before josepy was asked (privca's own checks): nothing to compare.
        return
    assert josepy_error is None, (header, josepy_error)
    assert request.jwk == josepy_jwk


def test_a_stored_key_is_decoded_once() -> None:
    text = jws.jwk_json(EC_KEY.public_key())
    other = jws.jwk_json(EC384_KEY.public_key())
    assert jws.load_jwk(text) is jws.load_jwk(text)
    assert jws.load_jwk(text) == EC_KEY.public_key()
    assert jws.load_jwk(other) == EC384_KEY.public_key()
