"""A running server follows the CA: `privca rotate issuing` and `privca revoke` run as
other processes show in its answers within a second or two, without a restart and
without any request to trigger it; every caIssuers URL a leaf names keeps answering
across rotations and restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE
from tests.server.conftest import LiveServer, publish_root_crl
from tests.server.test_app import load, ocsp_request

FOLLOW_WITHIN = 2.5  # seconds: the watcher polls every second


def privca(home: Path, *args: str) -> str:
    """The real CLI in another process, as an operator would run it next to the server."""
    result = subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PRIVCA_PASSPHRASE": PASSPHRASE.decode()},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def ca_issuers_path(certificate: x509.Certificate) -> str:
    aia = certificate.extensions.get_extension_for_oid(
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS
    ).value
    url = next(
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    )
    return "/" + url.split("/", 3)[3]


def eventually(check: Callable[[], bool], within: float = FOLLOW_WITHIN) -> float:
    """Seconds until `check()` held; fails after `within`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "the server did not follow in time"
        time.sleep(0.1)
    return time.monotonic() - started


def test_rotation_and_revocation_by_other_processes_are_followed(
    make_ca, live_server: Callable[..., LiveServer]
) -> None:
    ca: CertificateAuthority = make_ca(base_url="http://ca.corp.internal")
    publish_root_crl(ca)
    home = ca.home.root
    old_issuing = ca.issuing
    before = ca.issue(["before.example"])
    server = live_server(ca)
    assert x509.load_der_x509_certificate(server.get("/ca/issuing.der").body) == old_issuing

    privca(home, "rotate", "issuing")
    other = CertificateAuthority.open(home, PASSPHRASE)
    new_issuing = other.issuing
    other.close()
    assert new_issuing != old_issuing

    # No request reaches the server while it catches up: the watcher alone must do it.
    time.sleep(FOLLOW_WITHIN)
    issuing_crl = x509.load_der_x509_crl(server.get("/crl/issuing.crl").body)
    assert issuing_crl.issuer == new_issuing.subject
    assert issuing_crl.is_signature_valid(new_issuing.public_key())
    by_serial = server.get(f"/crl/{new_issuing.serial_number:x}.crl")
    assert by_serial.status == 200
    assert x509.load_der_x509_crl(by_serial.body).is_signature_valid(new_issuing.public_key())
    assert x509.load_der_x509_certificate(server.get("/ca/issuing.der").body) == new_issuing

    out = home.parent / "leaf"
    privca(home, "issue", "after.example", "--out", str(out))
    after = x509.load_pem_x509_certificate((out / "after.example.crt").read_bytes())
    assert after.issuer == new_issuing.subject
    # Each leaf's caIssuers URL names its own issuer, and both answer.
    for leaf, issuer in ((before.certificate, old_issuing), (after, new_issuing)):
        path = ca_issuers_path(leaf)
        assert path == f"/ca/{issuer.serial_number:x}.der"
        assert x509.load_der_x509_certificate(server.get(path).body) == issuer
    assert load(server.post_ocsp(ocsp_request(after, new_issuing)).body).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )

    privca(home, "revoke", format(after.serial_number, "x"))

    def revoked_in_crl() -> bool:
        crl = x509.load_der_x509_crl(server.get("/crl/issuing.crl").body)
        return crl.get_revoked_certificate_by_serial_number(after.serial_number) is not None

    eventually(revoked_in_crl)
    status = load(server.post_ocsp(ocsp_request(after, new_issuing)).body).certificate_status
    assert status == ocsp.OCSPCertStatus.REVOKED
    # The watcher also rewrote the CRL on disk, so it survives a store outage.
    on_disk = (home / "crl" / f"{new_issuing.serial_number:x}.crl").read_bytes()
    assert x509.load_der_x509_crl(on_disk).get_revoked_certificate_by_serial_number(
        after.serial_number
    )

    # A restart (a new server over the same home) still answers every old URL.
    restarted = live_server(CertificateAuthority.open(home, PASSPHRASE))
    for leaf, issuer in ((before.certificate, old_issuing), (after, new_issuing)):
        body = restarted.get(ca_issuers_path(leaf)).body
        assert x509.load_der_x509_certificate(body) == issuer


def test_a_revocation_reaches_a_server_nobody_asks(
    served_ca, live_server: Callable[..., LiveServer]
) -> None:
    """The CRL the server publishes (memory and disk) is rebuilt by the watcher itself."""
    ca = served_ca.ca
    server = live_server(ca)
    server.get("/crl/issuing.crl")  # published once
    target = served_ca.good.serial
    privca(ca.home.root, "revoke", format(target, "x"))
    crl_file = ca.home.crl / f"{ca.issuing.serial_number:x}.crl"

    def on_disk() -> bool:
        crl = x509.load_der_x509_crl(crl_file.read_bytes())
        return crl.get_revoked_certificate_by_serial_number(target) is not None

    eventually(on_disk)
