"""ACME per issuer, judged by certbot and lego (unmodified): /acme/<issuer>/directory
issues from that issuer's CA and refuses the other issuer's names; an EAB key bound to an
issuer admits only that issuer's directories; /acme/<profile>/directory and
/acme/directory keep meaning the default issuer; a disabled issuer refuses new orders."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from privca.issuers import NewIssuer
from tests.acme.conftest import AcmeServer
from tests.acme.test_certbot import certbot
from tests.acme.test_eab import _cert, eab_create, run_lego
from tests.conftest import openssl, require_tool


@pytest.fixture
def teams(start_acme: Callable[..., AcmeServer]) -> AcmeServer:
    server = start_acme()
    server.ca.create_issuer(NewIssuer("team-a", permitted=["a.test"]))
    server.ca.create_issuer(NewIssuer("team-b", permitted=["b.test"]))
    return server


def _get(server: AcmeServer, path: str) -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=str(server.root_pem))
    try:
        with urllib.request.urlopen(f"{server.base}{path}", context=context, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("path", "new_order"),
    [
        pytest.param("/directory", "/new-order", id="default"),
        pytest.param("/server/directory", "/server/new-order", id="profile"),
        pytest.param("/team-a/directory", "/team-a/new-order", id="issuer"),
        pytest.param("/team-a/server/directory", "/team-a/server/new-order", id="issuer-profile"),
    ],
)
def test_each_directory_names_its_own_new_order(
    teams: AcmeServer, path: str, new_order: str
) -> None:
    status, body = _get(teams, path)
    assert status == 200
    assert body["newOrder"] == teams.base + new_order


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/team-z/directory", id="unknown-issuer"),
        pytest.param("/team-a/nope/directory", id="unknown-profile"),
        pytest.param("/server/team-a/directory", id="reversed"),
    ],
)
def test_an_unknown_directory_is_not_found(teams: AcmeServer, path: str) -> None:
    status, body = _get(teams, path)
    assert status == 404
    assert body["type"] == "urn:ietf:params:acme:error:malformed"  # what notFound is sent as
    assert "no such ACME" in body["detail"]


def _certbot_order(server: AcmeServer, where: Path, directory: str, name: str):  # type: ignore[no-untyped-def]
    target = replace(server, url=f"{server.base}/{directory}/directory")
    return certbot(
        target,
        where,
        "certonly",
        "--standalone",
        "--http-01-port", str(server.http_port),
        "--http-01-address", "127.0.0.1",
        "--agree-tos",
        "--register-unsafely-without-email",
        "-d", name,
    )  # fmt: skip


def test_certbot_through_an_issuers_directory_gets_a_leaf_of_that_issuer(
    teams: AcmeServer, tmp_path: Path
) -> None:
    result = _certbot_order(teams, tmp_path, "team-a", "web.a.test")
    assert result.returncode == 0, result.stdout + result.stderr
    live = tmp_path / "config" / "live" / "web.a.test"
    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    team_a = teams.ca.registry.issuing_of("team-a")
    assert leaf.issuer == team_a.certificate.subject
    # The chain certbot got is the leaf + team-a's issuing CA: openssl verifies it strictly.
    done = openssl(
        "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(teams.root_pem),
        "-untrusted", str(live / "chain.pem"), str(live / "cert.pem"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [order] = [o for o in teams.store.orders() if o.certificate_serial]
    assert order.issuer == "team-a"
    # The other team's name through team-a's directory: refused.
    refused = _certbot_order(teams, tmp_path, "team-a", "web.b.test")
    assert refused.returncode != 0
    assert "outside the permitted DNS subtrees: a.test" in refused.stdout + refused.stderr


def test_an_eab_key_bound_to_an_issuer_admits_only_its_directories(
    start_acme: Callable[..., AcmeServer], tmp_path: Path, passphrase_file: Path
) -> None:
    require_tool("lego")
    server = start_acme(eab="required")
    server.ca.create_issuer(NewIssuer("team-a", permitted=["a.test"]))
    server.ca.create_issuer(NewIssuer("team-b", permitted=["b.test"]))
    key = eab_create(server.ca, passphrase_file, "--issuer", "team-b")
    assert key["issuer"] == "team-b"
    for directory in ("team-a", "server", ""):
        refused = run_lego(server, tmp_path / "l", key, "x.b.test", directory=directory)
        assert refused.returncode != 0
        assert "admits only issuer 'team-b'" in refused.stdout + refused.stderr, directory
    allowed = run_lego(server, tmp_path / "l", key, "x.b.test", directory="team-b")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    leaf = _cert(tmp_path / "l", "x.b.test")
    assert leaf.issuer == server.ca.registry.issuing_of("team-b").certificate.subject
    # Per-profile directory under the issuer works too.
    allowed = run_lego(server, tmp_path / "l", key, "y.b.test", directory="team-b/server")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_a_disabled_issuer_refuses_new_orders(
    teams: AcmeServer, tmp_path: Path, passphrase_file: Path
) -> None:
    require_tool("lego")
    teams.ca.disable_issuer("team-a")
    result = _certbot_order(teams, tmp_path, "team-a", "off.a.test")
    assert result.returncode != 0
    assert "issuer 'team-a' is disabled" in result.stdout + result.stderr


def test_an_issuer_refuses_a_profile_it_does_not_issue_at_new_order(
    teams: AcmeServer, tmp_path: Path
) -> None:
    teams.ca.create_issuer(NewIssuer("web-only", permitted=["w.test"], profiles=["server"]))
    refused = _certbot_order(teams, tmp_path, "web-only/server-client", "x.w.test")
    assert refused.returncode != 0
    assert "does not issue profile 'server-client'" in refused.stdout + refused.stderr
    assert not [o for o in teams.store.orders() if o.issuer == "web-only"]
    allowed = _certbot_order(teams, tmp_path / "ok", "web-only/server", "x.w.test")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def test_an_issuers_directory_offers_only_the_profiles_it_issues(teams: AcmeServer) -> None:
    teams.ca.create_issuer(NewIssuer("web-only", permitted=["w.test"], profiles=["server"]))
    _, limited = _get(teams, "/web-only/directory")
    assert list(limited["meta"]["profiles"]) == ["server"]
    _, every = _get(teams, "/team-a/directory")  # no profile list: every ACME profile
    assert "server" in every["meta"]["profiles"] and len(every["meta"]["profiles"]) > 1
