import pytest
from cryptography import x509

from privca.errors import InputError
from privca.x509.names import (
    SubjectName,
    is_ip_address,
    parse_name,
    parse_names,
    parse_subtree,
)

ACCEPTED = [
    ("db.corp.internal", "dns", "db.corp.internal"),
    ("DB.Corp.INTERNAL", "dns", "db.corp.internal"),
    ("localhost", "dns", "localhost"),
    ("*.corp.internal", "dns", "*.corp.internal"),
    ("bücher.corp.internal", "dns", "xn--bcher-kva.corp.internal"),
    ("BÜCHER.corp.internal", "dns", "xn--bcher-kva.corp.internal"),
    ("xn--bcher-kva.corp.internal", "dns", "xn--bcher-kva.corp.internal"),
    # IDNA 2008 keeps ß; Python's built-in IDNA 2003 codec would give "fass".
    ("faß.example", "dns", "xn--fa-hia.example"),
    ("10.0.0.5", "ip", "10.0.0.5"),
    ("ip:10.0.0.5", "ip", "10.0.0.5"),
    ("::1", "ip", "::1"),
    ("2001:DB8::1", "ip", "2001:db8::1"),
    ("email:ops@corp.internal", "email", "ops@corp.internal"),
    ("ops@corp.internal", "email", "ops@corp.internal"),
    ("uri:spiffe://corp.internal/ns/db", "uri", "spiffe://corp.internal/ns/db"),
    ("https://api.corp.internal/x", "uri", "https://api.corp.internal/x"),
    ("dns:a-b.c0.example", "dns", "a-b.c0.example"),
    ("a" * 63 + ".example", "dns", "a" * 63 + ".example"),
]


@pytest.mark.parametrize(("text", "kind", "value"), ACCEPTED, ids=[a[0][:40] for a in ACCEPTED])
def test_accepted_names_are_typed_and_normalised(text: str, kind: str, value: str) -> None:
    name = parse_name(text)
    assert (name.kind, name.value) == (kind, value)
    assert isinstance(name.general_name(), x509.GeneralName)


REJECTED = [
    ("", "empty"),
    ("a..b", "empty label"),
    ("-bad.example", "hyphen"),
    ("bad-.example", "hyphen"),
    ("host.example.", "ends with a dot"),
    ("has space.example", "whitespace"),
    (" lead.example", "whitespace"),
    ("under_score.example", "underscore"),
    ("a" * 64 + ".example", "longer than 63"),
    (".".join(["a" * 60] * 5), "longer than 253"),
    ("dns:10.0.0.1", "IP address where a DNS name"),
    ("1.2.3", "all-numeric"),
    ("*.com", "top-level"),
    ("a.*.example", "left-most"),
    ("f*.example.com", "left-most"),
    ("*", "top-level"),
    ("ip:10.0.0.256", "not a valid IPv4"),
    ("email:@corp.internal", "not an email"),
    ("email:a b@corp.internal", "local part"),
    ("uri:not a uri", "ASCII URI"),
    ("uri:urn:x:y", "no host"),
    ("ab--cd.example", "positions 3-4"),
    ("xn--zz.example", "punycode"),
    ("ex!ample.com", "characters other than"),
]


@pytest.mark.parametrize(("text", "rule"), REJECTED, ids=[r[0][:30] or "empty" for r in REJECTED])
def test_rejected_names_say_which_rule(text: str, rule: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_name(text)
    assert rule.lower() in caught.value.message.lower()


def test_wildcard_can_be_refused() -> None:
    with pytest.raises(InputError, match="wildcard"):
        parse_name("*.corp.internal", allow_wildcard=False)


def test_parse_names_dedupes_and_keeps_order() -> None:
    names = parse_names(["B.corp.internal", "a.corp.internal", "b.CORP.internal", "10.0.0.1"])
    assert [str(n) for n in names] == ["b.corp.internal", "a.corp.internal", "10.0.0.1"]


def test_parse_names_requires_one() -> None:
    with pytest.raises(InputError, match="no names"):
        parse_names([])


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("corp.internal", "dns", "corp.internal"),
        (".corp.internal", "dns", "corp.internal"),
        ("10.0.0.0/8", "ip", "10.0.0.0/8"),
        ("10.0.0.5", "ip", "10.0.0.5/32"),
        ("fd00::/8", "ip", "fd00::/8"),
    ],
)
def test_subtrees(text: str, kind: str, value: str) -> None:
    subtree = parse_subtree(text)
    assert (subtree.kind, subtree.value) == (kind, value)


@pytest.mark.parametrize("text", ["10.0.0.5/8", "10.0.0.0/33", "*.corp.internal", "a..b"])
def test_bad_subtrees(text: str) -> None:
    with pytest.raises(InputError):
        parse_subtree(text)


def test_subtree_matching_is_rfc5280() -> None:
    corp = parse_subtree("corp.internal")
    assert corp.contains_dns("corp.internal")
    assert corp.contains_dns("db.corp.internal")
    assert not corp.contains_dns("evilcorp.internal")
    net = parse_subtree("10.0.0.0/8")
    assert net.contains_ip("10.1.2.3")
    assert not net.contains_ip("11.0.0.1")
    assert not net.contains_ip("::1")


def test_file_stem_of_wildcard() -> None:
    assert SubjectName("dns", "*.corp.internal").file_stem == "wildcard.corp.internal"


IP_LITERALS = [
    ("10.0.0.1", True),
    ("::1", True),
    ("::ffff:10.0.0.1", True),
    ("fe80::1%eth0", True),  # a zone id is part of the literal; '%' is refused elsewhere
    ("[::1]", False),  # the URI form, not the literal
    ("010.0.0.1", False),  # leading zeros: octal to some parsers, decimal to others
    ("10.0.0.1/32", False),
    ("10.0.0", False),
    (" 10.0.0.1", False),
    ("db.corp.internal", False),
    ("", False),
]


@pytest.mark.parametrize(
    ("text", "expected"), IP_LITERALS, ids=[t or "empty" for t, _ in IP_LITERALS]
)
def test_ip_address_literal(text: str, expected: bool) -> None:
    """One rule decides what is an address (names, the policy, scan's SNI): the same table."""
    assert is_ip_address(text) is expected
