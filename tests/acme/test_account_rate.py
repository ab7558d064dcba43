"""newAccount is rate limited per client network: an account costs a client nothing and
each may place orders_per_window orders, so with EAB optional (the default) the orders of
one client had no bound (the review grew the store ~9 GB an hour)."""

from __future__ import annotations

import pytest

from privca.acme.ratelimit import NetworkRate, client_network
from privca.errors import InputError
from tests.acme.jwsclient import RawClient
from tests.server.conftest import live_server  # noqa: F401  (fixture)

URN = "urn:ietf:params:acme:error:"


def test_new_accounts_beyond_the_limit_are_rate_limited(start_acme) -> None:
    server = start_acme(accounts_per_window=3)
    clients = [RawClient(server.url, str(server.root_pem)) for _ in range(4)]
    for client in clients[:3]:
        assert client.register().status_code == 201
    refused = clients[3].register()
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == URN + "rateLimited"
    assert int(refused.headers["Retry-After"]) > 0
    assert "new accounts per client network" in refused.json()["detail"]
    # An existing account is found, not made: never limited.
    again = clients[0].post(
        clients[0].directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
    )
    assert again.status_code == 200, again.text


def test_ipv6_clients_count_per_64() -> None:
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2::ffff")
    assert client_network("2001:db8:1:2::1") != client_network("2001:db8:1:3::1")
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    rate = NetworkRate(limit=2, window=60)
    assert rate.take("2001:db8::1", 0) is None
    assert rate.take("2001:db8::2", 1) is None
    assert rate.take("2001:db8::3", 2) == 58  # the same /64: wait until the first expires
    assert rate.take("2001:db8:0:1::1", 2) is None  # another /64
    assert rate.take("2001:db8::4", 60.5) is None  # the first left the window


def test_the_networks_tracked_are_bounded() -> None:
    rate = NetworkRate(limit=1, window=3600, max_networks=100)
    for index in range(1000):
        assert rate.take(f"10.0.{index // 256}.{index % 256}", index) is None
    assert len(rate._events) == 100


def test_accounts_per_window_is_read_from_privca_toml() -> None:
    from privca.cli.serve import acme_settings
    from privca.settings import Settings

    settings = Settings.from_toml('[ca]\nname = "X"\n[acme]\naccounts_per_window = 5\n', "t")
    assert acme_settings(settings.acme).accounts_per_window == 5
    for wrong in ("many", 0):
        with pytest.raises(InputError):
            acme_settings({"accounts_per_window": wrong})


def test_x_forwarded_for_does_not_choose_the_address_counted(ca, live_server) -> None:  # noqa: F811
    """uvicorn took the client's address from X-Forwarded-For sent from 127.0.0.1, so any
    local process could open accounts past the limit by naming a new address each time.
    The listener options are `privca serve`'s own (server/limits.uvicorn_options)."""
    from privca.acme.service import AcmeSettings
    from privca.server.settings import ServerSettings

    server = live_server(ca, ServerSettings(acme=AcmeSettings(accounts_per_window=1)))
    directory = f"{server.base}/acme/directory"
    assert RawClient(directory, "").register().status_code == 201
    for forged in ("198.51.100.7", "203.0.113.9"):
        client = RawClient(directory, "")
        client.session.headers["X-Forwarded-For"] = forged
        refused = client.register()
        assert refused.status_code == 429, refused.text
