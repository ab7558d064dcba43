"""Nonces across a server start (SQLite): a spent nonce's commit skips the flush, so a
power cut could undo a spend; `privca serve` therefore takes a new nonce key when it
starts (no nonce from before verifies), and a client holding one gets a badNonce that
carries a fresh nonce to retry with."""

from __future__ import annotations

from privca.acme.service import AcmeSettings
from privca.server.settings import ServerSettings
from tests.acme.jwsclient import RawClient
from tests.server.conftest import ServedCA

ACCOUNT = {"termsOfServiceAgreed": True}


def test_a_starting_server_forgets_nonces_handed_out_before(
    served_ca: ServedCA, live_server
) -> None:
    settings = ServerSettings(acme=AcmeSettings())
    first = live_server(served_ca.ca, settings)
    client = RawClient(f"{first.base}/acme/directory", root_pem="")
    before_restart = client.nonce()

    live_server(served_ca.ca, settings)  # another `privca serve` starts on this home

    refused = client.post(client.directory["newAccount"], ACCOUNT, nonce=before_restart)
    assert refused.status_code == 400
    assert refused.json()["type"] == "urn:ietf:params:acme:error:badNonce"
    retry = refused.headers["Replay-Nonce"]
    created = client.post(client.directory["newAccount"], ACCOUNT, nonce=retry)
    assert created.status_code == 201, created.text
    # The nonce an answer hands out works once, whichever request spent it.
    again = client.post(client.directory["newAccount"], ACCOUNT, nonce=retry)
    assert again.json()["type"] == "urn:ietf:params:acme:error:badNonce"
    assert (
        client.post(
            client.directory["newAccount"], ACCOUNT, nonce=created.headers["Replay-Nonce"]
        ).status_code
        == 200
    )  # the account exists now
