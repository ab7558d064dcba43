"""Validator rules: which addresses it connects to, which redirects it follows, what its
errors say, and that one deadline bounds a whole validation against a hostile peer.

The rule tables go through the ChallengeNetwork seam with a scripted network; the
deadline and size tests use real sockets on 127.0.0.1 through NetworkIO."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from privca.acme.challenges import (
    RESPONSE_LIMIT,
    Deadline,
    HttpResponse,
    NetworkIO,
    Validator,
    address_refusal,
    parse_resolver,
)
from privca.acme.problems import AcmeProblem

KEY_AUTHORIZATION = "token123.thumbprint"

# address, allowed with allow_loopback=False?, the word the refusal uses
ADDRESSES = [
    ("10.0.0.5", None),
    ("192.168.1.20", None),
    ("2001:db8::5", None),
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    # the metadata address 169.254.169.254 embedded in IPv6, every standard way
    ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped
    ("::a9fe:a9fe", "link-local"),  # IPv4-compatible
    ("::ffff:0:a9fe:a9fe", "link-local"),  # IPv4-translated (SIIT)
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 well-known prefix
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4
    ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local"),  # Teredo, client 169.254.169.254
    ("2001:0:a9fe:a9fe::1", "link-local"),  # Teredo, server 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 to 127.0.0.1
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:5", None),  # NAT64 to 10.0.0.5: an ordinary internal host
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
]


@pytest.mark.parametrize(("text", "reason"), ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_address_rules(text: str, reason: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(text)) == reason


@pytest.mark.parametrize("text", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"])
def test_loopback_only_when_the_operator_opts_in(text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), allow_loopback=True) is None
    # Opting in to loopback opens nothing else.
    metadata = ipaddress.ip_address("169.254.169.254")
    assert address_refusal(metadata, allow_loopback=True) == "link-local"


class Scripted:
    """A network whose every name resolves to `addresses` and whose every GET is answered
    by `responses(n)` for the n-th fetch."""

    def __init__(self, responses: Callable[[int], HttpResponse], *addresses: str) -> None:
        self.responses = responses
        self.addresses = [ipaddress.ip_address(a) for a in addresses or ("10.0.0.5",)]
        self.fetched: list[tuple[str, str, int, str, str]] = []

    def resolve(self, name: str, deadline: Deadline) -> list:
        return list(self.addresses)

    def txt(self, name: str, deadline: Deadline) -> list[bytes]:
        return []

    def http_get(self, scheme, address, port, host, path, deadline) -> HttpResponse:
        self.fetched.append((scheme, str(address), port, host, path))
        return self.responses(len(self.fetched))

    def tls_alpn_certificate(self, address, port, server_name, deadline):
        raise AssertionError("not used here")


def _validate(network: Scripted, **kwargs) -> AcmeProblem | None:
    try:
        Validator(network, **kwargs).validate("http-01", "dns", "a.test", KEY_AUTHORIZATION)
    except AcmeProblem as problem:
        return problem
    return None


def _ok(_n: int) -> HttpResponse:
    return HttpResponse(200, None, KEY_AUTHORIZATION.encode() + b"\n")


def test_a_matching_body_validates_and_the_address_is_resolved_once() -> None:
    network = Scripted(_ok)
    assert _validate(network) is None
    assert network.fetched == [
        ("http", "10.0.0.5", 80, "a.test", "/.well-known/acme-challenge/token123")
    ]


NETWORK_POLICY = [
    # resolved addresses, permitted networks, expected: fetched address or the refusal
    (["10.0.0.5"], ["10.0.0.0/8"], "10.0.0.5"),
    (["192.168.1.5"], ["10.0.0.0/8"], "outside the CA's permitted networks"),
    (["169.254.169.254", "10.0.0.5"], ["10.0.0.0/8"], "10.0.0.5"),
    (["2001:db8::5"], ["10.0.0.0/8"], "outside the CA's permitted networks"),
    (["2001:db8::5"], [], "2001:db8::5"),
    (["::ffff:10.0.0.5"], ["10.0.0.0/8"], "10.0.0.5"),
    (["127.0.0.1", "169.254.169.254"], [], "loopback, link-local"),
]


@pytest.mark.parametrize(
    ("resolved", "permitted", "expected"),
    NETWORK_POLICY,
    ids=["inside", "outside", "skips-forbidden", "v6-outside-v4-only", "no-ip-policy",
         "mapped-is-v4", "nothing-usable"],
)  # fmt: skip
def test_resolved_addresses_must_lie_in_the_permitted_networks(
    resolved: list[str], permitted: list[str], expected: str
) -> None:
    networks = [ipaddress.ip_network(n) for n in permitted]

    def allowed(address) -> bool:
        return not networks or any(address in n for n in networks if n.version == address.version)

    network = Scripted(_ok, *resolved)
    problem = _validate(network, address_allowed=allowed)
    if problem is None:
        assert [f[1] for f in network.fetched] == [expected]
    else:
        assert network.fetched == []
        assert problem.kind == "connection"
        assert expected in problem.detail


def test_a_wrong_body_is_never_echoed() -> None:
    network = Scripted(lambda n: HttpResponse(200, None, b"SECRET-INTERNAL-PAGE"))
    problem = _validate(network)
    assert problem is not None and problem.kind == "incorrectResponse"
    assert "SECRET" not in str(problem.to_json())


def test_a_status_code_is_reported_but_not_the_redirect_path() -> None:
    def answer(n: int) -> HttpResponse:
        if n == 1:
            return HttpResponse(302, "/internal/admin?token=SECRET", b"")
        return HttpResponse(500, None, b"SECRET stack trace")

    problem = _validate(Scripted(answer))
    assert problem is not None and problem.kind == "incorrectResponse"
    assert "HTTP 500" in problem.detail and "after 1 redirect" in problem.detail
    assert "SECRET" not in str(problem.to_json()) and "admin" not in problem.detail


def test_more_than_ten_redirects_are_refused() -> None:
    network = Scripted(lambda n: HttpResponse(302, f"http://a.test/r{n}", b""))
    problem = _validate(network)
    assert problem is not None and problem.kind == "connection"
    assert len(network.fetched) == 11


def test_a_relative_redirect_stays_on_the_same_host() -> None:
    network = Scripted(lambda n: HttpResponse(301, "/moved", b"") if n == 1 else _ok(n))
    assert _validate(network) is None
    assert network.fetched[1] == ("http", "10.0.0.5", 80, "a.test", "/moved")


REDIRECTS = [
    ("http://a.test:8080/x", "port"),
    ("https://a.test:8443/x", "port"),
    ("ftp://a.test/x", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://a.test:80/x", "scheme"),
    ("http://forbidden.test/x", "policy"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/x", "nat64-metadata"),
    ("http://[::ffff:127.0.0.1]/x", "mapped-loopback"),
    ("http://a.test:99999/x", "malformed"),
    ("", "no-location"),
]


@pytest.mark.parametrize(("location", "why"), REDIRECTS, ids=[w for _, w in REDIRECTS])
def test_redirect_targets_are_checked(location: str, why: str) -> None:
    network = Scripted(lambda n: HttpResponse(301, location or None, b""))
    problem = _validate(network, name_allowed=lambda host: host != "forbidden.test")
    assert problem is not None and problem.kind == "connection", why
    assert len(network.fetched) == 1


def test_https_redirect_to_the_tls_validation_port_is_followed() -> None:
    network = Scripted(lambda n: HttpResponse(302, "https://a.test/x", b"") if n == 1 else _ok(n))
    assert _validate(network) is None
    assert network.fetched[1][:3] == ("https", "10.0.0.5", 443)


def test_a_huge_body_is_refused() -> None:
    network = Scripted(lambda n: HttpResponse(200, None, b"x" * 5000))
    problem = _validate(network)
    assert problem is not None and problem.kind == "incorrectResponse"


def test_resolver_addresses_parse_one_way() -> None:
    assert parse_resolver("10.0.0.53") == ("10.0.0.53", 53)
    assert parse_resolver("10.0.0.53:5353") == ("10.0.0.53", 5353)
    assert parse_resolver("::1") == ("::1", 53)
    assert parse_resolver("[::1]:5353") == ("::1", 5353)
    for bad in ("ns.corp.internal", "10.0.0.53:0", "10.0.0.53:x", "[::1]:99999"):
        with pytest.raises(ValueError):
            parse_resolver(bad)


# Real sockets: hostile peers on 127.0.0.1 ------------------------------------------------


class Peer:
    """A TCP server on 127.0.0.1 that answers every connection with `behave(conn)`."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.behave = behave
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                self.behave(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def peer() -> Iterator[Callable[[Callable[[socket.socket], None]], Peer]]:
    peers: list[Peer] = []

    def start(behave: Callable[[socket.socket], None]) -> Peer:
        peers.append(Peer(behave))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


def drip(conn: socket.socket) -> None:
    """A valid status line, then one header byte every 0.3 s, forever: each read is
    quick, so only a deadline across reads ends it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while True:
        conn.sendall(b"X")
        time.sleep(0.3)


def drip_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n")
    while True:
        conn.sendall(b"a")
        time.sleep(0.3)


def silent(conn: socket.socket) -> None:
    time.sleep(30)


def header_flood(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    for _ in range(10_000):  # 10 MB, if anyone kept reading
        conn.sendall(line)


HOSTILE = [(drip, "connection"), (drip_body, "connection"), (silent, "connection")]


@pytest.mark.parametrize(("behave", "kind"), HOSTILE, ids=[b.__name__ for b, _ in HOSTILE])
def test_one_deadline_bounds_the_whole_validation(peer, behave, kind: str) -> None:
    server = peer(behave)
    validator = Validator(NetworkIO(), http_port=server.port, allow_loopback=True, timeout=1.5)
    started = time.monotonic()
    with pytest.raises(AcmeProblem) as failed:
        validator.validate("http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION)
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5, elapsed
    assert failed.value.kind == kind
    assert "1.5 seconds" in failed.value.detail


def test_a_flood_of_headers_is_cut_off(peer) -> None:
    server = peer(header_flood)
    validator = Validator(NetworkIO(), http_port=server.port, allow_loopback=True, timeout=5)
    started = time.monotonic()
    with pytest.raises(AcmeProblem) as failed:
        validator.validate("http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION)
    assert time.monotonic() - started < 3
    assert failed.value.kind == "connection"
    assert "X-Pad" not in failed.value.detail and "aaaa" not in failed.value.detail
    assert RESPONSE_LIMIT <= 64 * 1024


def test_loopback_is_refused_unless_the_operator_opts_in(peer) -> None:
    served = KEY_AUTHORIZATION.encode()

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(served) + served)

    server = peer(answer)
    closed = Validator(NetworkIO(), http_port=server.port)
    with pytest.raises(AcmeProblem) as refused:
        closed.validate("http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION)
    assert "loopback" in refused.value.detail
    assert server.connections == 0
    Validator(NetworkIO(), http_port=server.port, allow_loopback=True).validate(
        "http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION
    )
    assert server.connections == 1


def test_the_lab_opt_in_reaches_loopback_whatever_networks_the_ca_permits(peer) -> None:
    """A CA that certifies 10.0.0.0/8 in a single-host lab: loopback is this machine, so
    the opt-in admits it; any other address still has to lie in the permitted networks."""
    served = KEY_AUTHORIZATION.encode()

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(served) + served)

    server = peer(answer)
    ten_only = ipaddress.ip_network("10.0.0.0/8")

    def in_ten(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address in ten_only

    lab = Validator(NetworkIO(), http_port=server.port, allow_loopback=True, address_allowed=in_ten)
    lab.validate("http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION)
    assert server.connections == 1
    with pytest.raises(AcmeProblem) as refused:
        lab.validate("http-01", "ip", "192.0.2.7", KEY_AUTHORIZATION)
    assert "outside the CA's permitted networks" in refused.value.detail
    closed = Validator(NetworkIO(), http_port=server.port, address_allowed=in_ten)
    with pytest.raises(AcmeProblem) as refused:
        closed.validate("http-01", "ip", "127.0.0.1", KEY_AUTHORIZATION)
    assert "loopback" in refused.value.detail
    assert server.connections == 1


@pytest.mark.parametrize("name", ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376"])
def test_metadata_in_numeric_spellings_is_checked_after_resolving(name: str) -> None:
    """inet_aton reads these as 169.254.169.254: the check sees the resolved address."""
    with pytest.raises(AcmeProblem) as refused:
        Validator(NetworkIO(), allow_loopback=True).validate(
            "http-01", "dns", name, KEY_AUTHORIZATION
        )
    assert "link-local" in refused.value.detail


@pytest.mark.parametrize(
    ("permitted", "excluded", "address", "allowed"),
    [
        (["corp.internal", "10.0.0.0/8"], [], "10.1.2.3", True),
        (["corp.internal", "10.0.0.0/8"], [], "192.168.1.1", False),
        (["corp.internal", "10.0.0.0/8"], [], "2001:db8::1", False),
        (["corp.internal"], [], "192.168.1.1", True),  # no IP networks: no address rule
        ([], ["10.9.0.0/16"], "10.9.1.1", False),
        ([], ["10.9.0.0/16"], "10.8.1.1", True),
    ],
    ids=["inside", "outside", "v6-outside", "dns-only-policy", "excluded", "not-excluded"],
)
def test_the_ca_policy_decides_which_networks_are_reachable(
    make_ca, permitted, excluded, address, allowed
) -> None:
    from privca.server.acme import CertificateAuthorityIssuer

    issuer = CertificateAuthorityIssuer(make_ca(permitted=permitted, excluded=excluded))
    assert issuer.address_allowed(ipaddress.ip_address(address)) is allowed
