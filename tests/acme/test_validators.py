"""Validator rules behind the ChallengeNetwork seam: redirects, ports, body, addresses.

These scripted networks stand in for hostile applicant servers (the real network path is
exercised by the certbot and lego tests)."""

from __future__ import annotations

import ipaddress

import pytest

from privca.acme.challenges import HttpResponse, Validator
from privca.acme.problems import AcmeProblem

KEY_AUTHORIZATION = "token123.thumbprint"


class Scripted:
    def __init__(self, responses, address="127.0.0.1") -> None:
        self.responses = responses
        self.address = ipaddress.ip_address(address)
        self.fetched: list[tuple] = []

    def resolve(self, name):
        return [self.address]

    def txt(self, name):
        return []

    def http_get(self, scheme, address, port, host, path):
        self.fetched.append((scheme, str(address), port, host, path))
        return self.responses(len(self.fetched))


def _validate(network, **kwargs) -> AcmeProblem | None:
    try:
        Validator(network, **kwargs).validate("http-01", "dns", "a.test", KEY_AUTHORIZATION)
    except AcmeProblem as problem:
        return problem
    return None


def test_a_matching_body_validates_and_the_address_is_resolved_once() -> None:
    network = Scripted(lambda n: HttpResponse(200, None, KEY_AUTHORIZATION.encode() + b"\n"))
    assert _validate(network) is None
    assert network.fetched == [
        ("http", "127.0.0.1", 80, "a.test", "/.well-known/acme-challenge/token123")
    ]


def test_a_wrong_body_is_never_echoed() -> None:
    network = Scripted(lambda n: HttpResponse(200, None, b"SECRET-INTERNAL-PAGE"))
    problem = _validate(network)
    assert problem is not None and problem.kind == "incorrectResponse"
    assert "SECRET" not in str(problem.to_json())


def test_more_than_ten_redirects_are_refused() -> None:
    network = Scripted(lambda n: HttpResponse(302, f"http://a.test/r{n}", b""))
    problem = _validate(network)
    assert problem is not None and problem.kind == "connection"
    assert len(network.fetched) == 11


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://a.test:8080/x", "port"),
        ("ftp://a.test/x", "scheme"),
        ("http://forbidden.test/x", "policy"),
        ("http://[fe80::1]/x", "link-local"),
    ],
)
def test_redirect_targets_are_checked(location: str, why: str) -> None:
    network = Scripted(lambda n: HttpResponse(301, location, b""))
    problem = _validate(network, name_allowed=lambda host: host != "forbidden.test")
    assert problem is not None and problem.kind == "connection", why
    assert len(network.fetched) == 1


def test_a_huge_body_is_refused() -> None:
    network = Scripted(lambda n: HttpResponse(200, None, b"x" * 5000))
    problem = _validate(network)
    assert problem is not None and problem.kind == "incorrectResponse"


def test_resolver_addresses_parse_one_way() -> None:
    import pytest

    from privca.acme.challenges import parse_resolver

    assert parse_resolver("10.0.0.53") == ("10.0.0.53", 53)
    assert parse_resolver("10.0.0.53:5353") == ("10.0.0.53", 5353)
    assert parse_resolver("::1") == ("::1", 53)
    assert parse_resolver("[::1]:5353") == ("::1", 5353)
    for bad in ("ns.corp.internal", "10.0.0.53:0", "10.0.0.53:x", "[::1]:99999"):
        with pytest.raises(ValueError):
            parse_resolver(bad)
