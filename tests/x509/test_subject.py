"""The subject CN an operator sets with --cn: its form, and what each profile allows."""

from __future__ import annotations

import pytest

from privca.errors import InputError, PolicyError
from privca.x509.names import SubjectName, parse_names
from privca.x509.profiles import CLIENT, SERVER, SERVER_CLIENT
from privca.x509.subject import names_to_check, openssl_reads_as_dns, parse_common_name

# text -> (value when it is not one of the names, denotes a name?, OpenSSL reads it as DNS)
FORMS = {
    "user-name": ("alice", "alice", True, False),
    "case-kept": ("Alice", "Alice", True, False),
    "user-with-dot": ("John.Doe", "John.Doe", True, True),
    "free-text": ("Backup Agent 7", "Backup Agent 7", False, False),
    "dns-name": ("DB.Corp.Internal", "DB.Corp.Internal", True, True),
    "ipv4": ("10.0.0.5", "10.0.0.5", True, True),
    "ipv6": ("2001:DB8::1", "2001:DB8::1", True, False),
    "underscore": ("svc_a.corp.internal", "svc_a.corp.internal", False, True),
    "unicode-user": ("jürgen", "jürgen", True, False),
    "64-chars": ("u" * 64, "u" * 64, False, False),
}


@pytest.mark.parametrize(
    ("text", "value", "is_name", "openssl_dns"), FORMS.values(), ids=list(FORMS)
)
def test_common_name_forms(text: str, value: str, is_name: bool, openssl_dns: bool) -> None:
    parsed = parse_common_name(text)
    assert parsed.value_for(()) == value
    assert (parsed.name is not None) == is_name
    assert openssl_reads_as_dns(parsed.value_for(())) == openssl_dns


# A CN that is one of the names takes that name's canonical form.
CANONICAL = {
    "dns-lowercased": ("DB.Corp.Internal", ["db.corp.internal"], "db.corp.internal"),
    "idn-a-label": (
        "bücher.corp.internal",
        ["bücher.corp.internal"],
        "xn--bcher-kva.corp.internal",
    ),
    "ipv6-compressed": ("2001:DB8:0::1", ["2001:db8::1"], "2001:db8::1"),
}


@pytest.mark.parametrize(("text", "names", "value"), CANONICAL.values(), ids=list(CANONICAL))
def test_a_cn_that_is_a_name_takes_its_canonical_form(
    text: str, names: list[str], value: str
) -> None:
    assert parse_common_name(text).value_for(parse_names(names)) == value


BAD_FORMS = {
    "empty": "",
    "leading-space": " alice",
    "trailing-space": "alice ",
    "newline": "alice\nbob",
    "escape": "alice\x1b[31m",
    "bidi-override": "alice\u202egnp.exe",
    "zero-width": "ali\u200bce",
    "65-chars": "u" * 65,
    "nul": "alice\x00",
}


@pytest.mark.parametrize("text", BAD_FORMS.values(), ids=list(BAD_FORMS))
def test_bad_common_names_are_refused_without_echoing_controls(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_common_name(text)
    message = caught.value.message
    assert not any(ch in message for ch in "\x1b\u202e\u200b\x00\n")


# OpenSSL's cn2dnsid, case by case (crypto/x509/v3_utl.c).
OPENSSL_DNS = {
    "two-labels": ("a.b", True),
    "single-label": ("localhost", False),
    "leading-dot": (".a.b", False),
    "trailing-dot": ("a.b.", False),
    "double-dot": ("a..b", False),
    "hyphen-before-dot": ("a-.b", False),
    "hyphen-after-dot": ("a.-b", False),
    "internal-hyphen": ("a-b.c", True),
    "leading-hyphen": ("-a.b", False),
    "underscore": ("_a.b", True),
    "space": ("a b.c", False),
    "dotted-quad": ("10.0.0.1", True),
    "non-ascii": ("ü.b", False),
}


@pytest.mark.parametrize(("text", "expected"), OPENSSL_DNS.values(), ids=list(OPENSSL_DNS))
def test_openssl_reading_of_a_cn(text: str, expected: bool) -> None:
    assert openssl_reads_as_dns(text) is expected


def _dns(value: str) -> SubjectName:
    return SubjectName("dns", value)


# (cn, names, profile) -> names the policy must also permit, or the error raised
RULES = {
    "server-cn-is-a-name": ("db.corp.internal", ["db.corp.internal", "10.0.0.5"], SERVER, ()),
    "server-cn-second-name": (
        "b.corp.internal",
        ["a.corp.internal", "b.corp.internal"],
        SERVER,
        (),
    ),
    "server-cn-not-a-name": ("x.corp.internal", ["db.corp.internal"], SERVER, PolicyError),
    "server-client-free-text": ("alice", ["db.corp.internal"], SERVER_CLIENT, PolicyError),
    "client-free-text": ("alice", ["email:alice@corp.internal"], CLIENT, ()),
    "client-user-with-dot": (
        "john.doe",
        ["email:j@corp.internal"],
        CLIENT,
        (_dns("john.doe"),),
    ),
    "client-dotted-cn-with-dns-san": (
        "app.corp.internal",
        ["db.corp.internal"],
        CLIENT,
        (_dns("app.corp.internal"),),
    ),
    "client-ip-cn": (
        "10.0.0.9",
        ["email:j@corp.internal"],
        CLIENT,
        (SubjectName("ip", "10.0.0.9"), _dns("10.0.0.9")),
    ),
    "server-ip-cn-without-dns-san": (
        "10.0.0.5",
        ["10.0.0.5"],
        SERVER,
        (_dns("10.0.0.5"),),
    ),
    "server-ip-cn-with-dns-san": ("10.0.0.5", ["db.corp.internal", "10.0.0.5"], SERVER, ()),
    "client-underscore-no-dns-san": (
        "svc_a.corp.internal",
        ["uri:spiffe://corp.internal/a"],
        CLIENT,
        (_dns("svc_a.corp.internal"),),
    ),
}


@pytest.mark.parametrize(("cn", "names", "profile", "expected"), RULES.values(), ids=list(RULES))
def test_profile_rules(cn: str, names: list[str], profile, expected) -> None:
    parsed_names = parse_names(names)
    common_name = parse_common_name(cn)
    if isinstance(expected, type):
        with pytest.raises(expected):
            names_to_check(common_name, parsed_names, profile)
    else:
        assert names_to_check(common_name, parsed_names, profile) == expected
