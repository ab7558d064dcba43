"""Real TLS handshakes on 127.0.0.1 with the chain privca issues, trusting only its root.

Clients: Python ssl (VERIFY_X509_STRICT), `openssl s_client -verify_return_error`, curl.
Each succeeds for a certified DNS name and IP and fails for a name not in the certificate.
Mutual TLS: a client certificate of the `client`/`server-client` profile is accepted by a
server that requires one chaining to our root; one from another CA, or a server-only
certificate, is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from privca.keys.types import KeyType
from tests.conftest import require_tool
from tests.interop._tls import ClientResult, curl, python_client, s_client, serve
from tests.interop.conftest import CAPool, PooledCA

DNS_NAME = "svc.corp.internal"
LOOPBACK = "127.0.0.1"

Client = Callable[..., ClientResult]

CLIENTS = [
    pytest.param(python_client, id="python-ssl"),
    pytest.param(s_client, id="openssl-s_client"),
    pytest.param(curl, id="curl"),
]

# CA shapes served over TLS: the default, the runbook's single tier, Ed25519 CA keys, and a
# name-constrained CA (clients check the constraints during the handshake too).
CA_SHAPES = [
    pytest.param({}, id="default"),
    pytest.param({"key_type": KeyType.RSA_4096, "single_tier": True}, id="rsa-4096-single"),
    pytest.param({"key_type": KeyType.ED25519}, id="ed25519-two"),
    pytest.param({"permitted": ("corp.internal", "127.0.0.0/8")}, id="constrained"),
]

# (server_hostname, should the client accept)
HOST_CHECKS = [
    pytest.param(DNS_NAME, True, id="dns"),
    pytest.param(LOOPBACK, True, id="ip"),
    pytest.param("other.corp.internal", False, id="wrong-dns"),
]


def _tool_for(client: Client) -> None:
    if client is s_client:
        require_tool("openssl")
    elif client is curl:
        require_tool("curl")


@pytest.mark.parametrize("shape", CA_SHAPES)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("hostname", "accept"), HOST_CHECKS)
def test_server_handshake(
    ca_pool: CAPool, shape: dict[str, object], client: Client, hostname: str, accept: bool
) -> None:
    _tool_for(client)
    pooled = ca_pool.get(**shape)  # type: ignore[arg-type]
    leaf = pooled.leaf(DNS_NAME, LOOPBACK, profile="server")
    with serve(leaf.chain, leaf.key) as server:
        result = client(server.port, pooled.root_crt, hostname)
        outcome = server.next_outcome()
    assert result.ok is accept, result.detail
    if accept:
        assert outcome.ok, outcome
    else:
        # The server may see a completed handshake: curl checks the name after it.
        assert "match" in result.detail.lower(), result.detail  # "hostname mismatch" etc.


@pytest.mark.parametrize("client", CLIENTS)
def test_server_handshake_fails_without_our_root(
    ca_pool: CAPool, client: Client, tmp_path: Path
) -> None:
    """Control: the clients really verify. Trusting another CA's root, they refuse."""
    _tool_for(client)
    leaf = ca_pool.get().leaf(DNS_NAME, LOOPBACK, profile="server")
    stranger = ca_pool.get(name="Stranger CA")
    with serve(leaf.chain, leaf.key) as server:
        result = client(server.port, stranger.root_crt, DNS_NAME)
        server.next_outcome()
    assert not result.ok, result.detail
    assert "verif" in result.detail.lower() or "issuer" in result.detail.lower(), result.detail


def _mtls(
    server_ca: PooledCA, client_leaf_key: tuple[Path, Path], client: Client
) -> tuple[ClientResult, bool, str]:
    server_leaf = server_ca.leaf(DNS_NAME, LOOPBACK, profile="server")
    with serve(server_leaf.chain, server_leaf.key, client_ca=server_ca.root_crt) as server:
        result = client(server.port, server_ca.root_crt, DNS_NAME, cert=client_leaf_key)
        outcome = server.next_outcome()
    return result, outcome.ok, outcome.error or outcome.peer_subject


# (client certificate profile, its CA, accepted, why the server refuses it)
MTLS_CASES = [
    pytest.param("client", "own", True, "", id="client-profile"),
    pytest.param("server-client", "own", True, "", id="server-client-profile"),
    pytest.param("client", "stranger", False, "unable to get local issuer", id="other-ca"),
    pytest.param("server", "own", False, "unsuitable certificate purpose", id="server-only"),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("profile", "issuer", "accept", "refusal"), MTLS_CASES)
def test_mutual_tls(
    ca_pool: CAPool, client: Client, profile: str, issuer: str, accept: bool, refusal: str
) -> None:
    _tool_for(client)
    own = ca_pool.get()
    signer = own if issuer == "own" else ca_pool.get(name="Stranger CA")
    client_leaf = signer.leaf("worker.corp.internal", profile=profile)
    # The client presents leaf + issuing CA (the .chain.pem privca writes) and its key.
    result, server_ok, detail = _mtls(own, (client_leaf.chain, client_leaf.key), client)
    assert server_ok is accept, detail
    if accept:
        assert "worker.corp.internal" in detail
        assert result.ok, result.detail
    else:
        assert refusal in detail, detail
        if client is not s_client:
            # s_client with stdin closed leaves before the server's TLS 1.3 alert arrives.
            assert not result.ok, result.detail
