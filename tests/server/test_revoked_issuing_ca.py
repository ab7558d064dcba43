"""A serving CA and an issuing CA revoked by another process (`privca issuer revoke`,
root key at hand): the root's CRL it serves lists the revoked CA at the very next request,
not at the hourly re-read of the published file; OCSP and the issuing CAs' CRLs go on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509

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
