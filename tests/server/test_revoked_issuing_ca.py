"""A serving CA and an issuing CA revoked by another process (`privca issuer revoke`,
root key at hand): the root's CRL it serves lists the revoked CA at the very next request,
not at the hourly re-read of the published file; OCSP and the issuing CAs' CRLs go on."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from privca.issuers import NewIssuer
from tests.conftest import PASSPHRASE
from tests.server.conftest import ServedCA
from tests.server.test_app import ocsp_request


def _lists(body: bytes, serial: int) -> bool:
    return x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(serial) is not None


def test_a_revocation_elsewhere_is_on_the_served_root_crl_at_once(
    served_ca: ServedCA, live_server, tmp_path: Path
) -> None:
    ca = served_ca.ca
    server = live_server(ca)
    old = ca.issuing
    by_serial = f"/crl/{ca.root.serial_number:x}.crl"
    for path in (by_serial, "/crl/root.crl"):
        reply = server.get(path)
        assert reply.status == 200 and not _lists(reply.body, old.serial_number)
    ca.rotate_issuing()

    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE)
    passphrase.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(ca.home.root), "issuer", "revoke",
            f"{old.serial_number:x}", "--reason", "caCompromise",
            "--passphrase-file", str(passphrase),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    for path in (by_serial, "/crl/root.crl"):
        reply = server.get(path)
        assert reply.status == 200 and _lists(reply.body, old.serial_number), path
        assert reply.body == (ca.home.crl / f"{ca.root.serial_number:x}.crl").read_bytes()
    # What the revoked CA signed can still be looked up: its CRL and OCSP answer.
    assert server.get(f"/crl/{old.serial_number:x}.crl").status == 200
    answer = server.post_ocsp(ocsp_request(served_ca.good.certificate, old))
    assert answer.status == 200


@pytest.mark.parametrize("key_here", [True, False], ids=["root-key-here", "root-key-away"])
def test_a_single_tier_root_that_signs_leaves_lists_a_revoked_ca_within_a_poll(
    make_ca, live_server, tmp_path: Path, key_here: bool
) -> None:
    """Its CRL is one the server signs (it signs leaves): a CA revocation must make it
    build a new one, as a leaf revocation does, not wait for the old one's half-life,
    whether `issuer revoke` published one (root key at hand) or not (the server's
    machine has the key, the operator's does not)."""
    ca = make_ca(single_tier=True, permitted=["corp.internal"])
    ca.issue(["db.corp.internal"])
    ca.create_issuer(NewIssuer("team-b", permitted=["b.corp.internal"]))
    team_b = ca.registry.active_issuing("team-b")
    assert team_b is not None
    server = live_server(ca)
    path = f"/crl/{ca.root.serial_number:x}.crl"
    before = server.get(path)
    assert before.status == 200 and not _lists(before.body, team_b.serial)

    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE)
    passphrase.chmod(0o600)
    root_key = ca.home.private / "root.key"
    if not key_here:
        shutil.move(root_key, tmp_path / "root.key")  # the server holds it unlocked
    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(ca.home.root), "issuer", "revoke",
            "team-b", "--reason", "caCompromise", "--passphrase-file", str(passphrase),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ("is not here" in done.stderr) is not key_here
    deadline = time.monotonic() + 10
    while True:
        reply = server.get(path)
        if _lists(reply.body, team_b.serial) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert reply.status == 200 and _lists(reply.body, team_b.serial)
    crl = x509.load_der_x509_crl(reply.body)
    # A root that signs leaves keeps its leaves' CRL period, and its numbers only grow.
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=ca.settings.crl_days)
    assert _number(reply.body) > _number(before.body)


def _number(body: bytes) -> int:
    crl = x509.load_der_x509_crl(body)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
