"""privca's URI parser against a WHATWG URL parser (Node's `URL`, as in browsers and most
HTTP stacks): for every case privca either refuses the name, or accepts it and both parsers
read the same host, from what was typed and from what goes into the certificate.

Python's `urlsplit` reads `https://evil.example\\@corp.internal/` as host corp.internal;
WHATWG reads evil.example. A policy checked with one parser and a client using the other is
how a stolen name gets through, so the table is judged by the other parser, not by us.
"""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from privca.errors import InputError
from privca.x509.names import parse_name, parse_names, parse_subtree, parse_uri
from tests.conftest import require_tool

NODE_SCRIPT = r"""
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map((text) => {
  try {
    const url = new URL(text);
    return { hostname: url.hostname, port: url.port };
  } catch (e) {
    return null;
  }
});
process.stdout.write(JSON.stringify(out));
"""

# (id, URI as typed, what privca must do: "accept" or "refuse")
CASES = [
    ("plain", "https://api.corp.internal/x", "accept"),
    ("spiffe", "spiffe://corp.internal/ns/db/sa/web", "accept"),
    ("port", "https://api.corp.internal:8443/x?y=1#z", "accept"),
    ("upper-special", "HTTPS://API.Corp.Internal/", "accept"),
    ("upper-opaque", "spiffe://Corp.Internal/x", "accept"),
    ("ipv4-host", "https://10.0.0.5/", "accept"),
    ("ipv6-host", "https://[fd00::5]:8443/", "accept"),
    ("ipv6-upper", "https://[FD00:0::5]/", "accept"),
    ("ipv4-mapped", "https://[::ffff:10.0.0.5]/", "accept"),
    ("no-path", "https://api.corp.internal", "accept"),
    ("query-only", "https://api.corp.internal?q", "accept"),
    ("at-in-fragment", "https://evil.example#@corp.internal/", "accept"),
    ("at-in-query", "https://evil.example/?@corp.internal", "accept"),
    ("percent-in-path", "https://api.corp.internal/a%2Fb", "accept"),
    ("a-label", "https://xn--bcher-kva.corp.internal/", "accept"),
    ("max-port", "https://api.corp.internal:65535/", "accept"),
    ("backslash-userinfo", "https://evil.example\\@corp.internal/", "refuse"),
    ("backslash-path", "https://corp.internal\\evil.example/", "refuse"),
    ("userinfo", "https://user@corp.internal/", "refuse"),
    ("userinfo-empty", "https://@corp.internal/", "refuse"),
    ("userinfo-host-swap", "https://corp.internal:443@evil.example/", "refuse"),
    ("userinfo-password", "https://a:b@corp.internal/", "refuse"),
    ("port-too-big", "https://corp.internal:99999/", "refuse"),
    ("port-zero", "https://corp.internal:0/", "refuse"),
    ("port-empty", "https://corp.internal:/", "refuse"),
    ("port-sign", "https://corp.internal:+80/", "refuse"),
    ("pct-host-dot", "https://corp%2einternal/", "refuse"),
    ("pct-host-slash", "https://evil.example%2F.corp.internal/", "refuse"),
    ("pct-host-at", "https://evil.example%40corp.internal/", "refuse"),
    ("pct-host-letter", "https://ex%61mple.corp.internal/", "refuse"),
    ("zone-id", "https://[fe80::1%25eth0]/", "refuse"),
    ("zone-id-raw", "https://[fe80::1%eth0]/", "refuse"),
    ("tab-in-host", "https://corp.inte\trnal/", "refuse"),
    ("newline-in-host", "https://evil.example\n.corp.internal/", "refuse"),
    ("space-in-path", "https://corp.internal/a b", "refuse"),
    ("nul", "https://corp.internal\x00.evil.example/", "refuse"),
    ("del", "https://corp.internal/\x7f", "refuse"),
    ("unicode-slash", "https://evil.example\uff0f.corp.internal/", "refuse"),
    ("unicode-host", "https://bücher.corp.internal/", "refuse"),
    ("short-ipv4", "https://127.1/", "refuse"),
    ("hex-ipv4", "https://0x7f.0.0.1/", "refuse"),
    ("octal-ipv4", "https://010.0.0.5/", "refuse"),
    ("hex-last-label", "https://foo.0x10/", "refuse"),
    ("five-octets", "https://1.2.3.4.5/", "refuse"),
    ("trailing-dot", "https://corp.internal./", "refuse"),
    ("no-authority", "https:corp.internal", "refuse"),
    ("triple-slash", "https:///corp.internal/", "refuse"),
    ("empty-label", "https://corp..internal/", "refuse"),
    ("underscore", "https://corp_internal.example/", "refuse"),
    ("pipe", "https://corp.internal/a|b", "refuse"),
    ("bad-escape", "https://corp.internal/%zz", "refuse"),
    ("two-hashes", "https://corp.internal/#a#b", "refuse"),
    ("brackets-in-reg-name", "https://corp.internal]/", "refuse"),
    ("ipvfuture", "https://[v1.fe80::1]/", "refuse"),
    ("urn", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "refuse"),
]


@pytest.fixture(scope="module")
def whatwg_hosts() -> dict[str, dict[str, str] | None]:
    """Node's reading of every typed URI and of every URI privca normalised."""
    node = require_tool("node")
    texts = [text for _id, text, _expected in CASES]
    for _id, text, _expected in CASES:
        with contextlib.suppress(InputError):
            texts.append(parse_uri(text).text)
    result = subprocess.run(
        [node, "-e", NODE_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(zip(texts, json.loads(result.stdout), strict=True))


def _privca_host(text: str) -> str:
    uri = parse_uri(text)
    return f"[{uri.host}]" if ":" in uri.host else uri.host


@pytest.mark.parametrize(("text", "expected"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_privca_and_whatwg_agree_on_the_host_or_privca_refuses(
    whatwg_hosts: dict[str, dict[str, str] | None], text: str, expected: str
) -> None:
    if expected == "refuse":
        with pytest.raises(InputError):
            parse_name(f"uri:{text}")
        return
    name = parse_name(f"uri:{text}")
    host = _privca_host(text)
    typed = whatwg_hosts[text]
    written = whatwg_hosts[name.value]
    assert typed is not None and written is not None, (typed, written)
    # RFC 3986 hosts are case-insensitive; WHATWG keeps the case of non-special schemes.
    assert typed["hostname"].lower() == host, typed
    # What goes into the certificate reads back with exactly privca's host.
    assert written["hostname"] == host, written


def test_every_refused_case_is_one_whatwg_reads_differently_or_not_at_all(
    whatwg_hosts: dict[str, dict[str, str] | None],
) -> None:
    """The refusals are not arbitrary: for each one, Node either fails to parse it or reads
    a host other than the one between '://' and the next '/' (what urlsplit-style code
    would check), or the input is outside RFC 3986."""
    from urllib.parse import urlsplit

    disagreements = 0
    for _id, text, expected in CASES:
        if expected != "refuse":
            continue
        node = whatwg_hosts[text]
        try:
            python_host = urlsplit(text).hostname
        except ValueError:
            python_host = None
        if node is None or python_host is None or node["hostname"] != python_host:
            disagreements += 1
    # Most refusals are real parser differentials, not just strictness.
    assert disagreements >= 20


ZONE_IDS = [
    ("bare", "fe80::1%eth0"),
    ("prefixed", "ip:fe80::1%eth0"),
    ("numeric", "fe80::1%2"),
    ("encoded", "ip:fe80::1%25eth0"),
]


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in ZONE_IDS])
def test_ipv6_zone_ids_are_refused_as_names(text: str) -> None:
    with pytest.raises(InputError, match="zone id"):
        parse_names([text])


@pytest.mark.parametrize("text", ["fe80::%eth0/64", "fe80::1%eth0"])
def test_ipv6_zone_ids_are_refused_as_subtrees(text: str) -> None:
    with pytest.raises(InputError, match="zone id"):
        parse_subtree(text)


def test_zone_ids_are_refused_as_acme_identifiers_and_verify_names() -> None:
    import datetime as dt

    from privca.acme.issuer import name_of
    from privca.x509.verify import verify_chain

    with pytest.raises(InputError, match="zone id"):
        name_of("ip", "fe80::1%eth0")
    leaf = _self_signed_leaf()
    with pytest.raises(InputError, match="zone id"):
        verify_chain(leaf, [leaf], [], dt.datetime.now(dt.UTC), "fe80::1%eth0")


def _self_signed_leaf():  # any certificate: the name is refused before it is looked at
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
