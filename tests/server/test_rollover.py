"""`privca serve` during a root rollover: /ca/roots.pem and /ca/cross.pem, and the old
hierarchy's OCSP and CRL answers for what it signed before the rollover."""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography import x509
from cryptography.x509 import ocsp

from tests.server.conftest import LiveServer, ServedCA
from tests.server.test_app import load, ocsp_request


def test_roots_cross_and_old_hierarchy_answers(
    served_ca: ServedCA, live_server: Callable[..., LiveServer]
) -> None:
    ca = served_ca.ca
    old_root, old_issuing = ca.root, ca.issuing
    rollover = ca.rollover_root()
    new = ca.issue(["new.example"])
    server = live_server(ca)

    roots = x509.load_pem_x509_certificates(server.get("/ca/roots.pem").body)
    assert roots == [old_root, rollover.root]
    assert x509.load_pem_x509_certificates(server.get("/ca/cross.pem").body) == [rollover.cross]
    assert x509.load_pem_x509_certificate(server.get("/ca/root.crt").body) == rollover.root

    def status(cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
        reply = server.post_ocsp(ocsp_request(cert, issuer))
        return load(reply.body).certificate_status

    revoked = served_ca.revoked.certificate
    assert status(revoked, old_issuing) == ocsp.OCSPCertStatus.REVOKED
    assert status(served_ca.good.certificate, old_issuing) == ocsp.OCSPCertStatus.GOOD
    assert rollover.issuing is not None
    assert status(new.certificate, rollover.issuing) == ocsp.OCSPCertStatus.GOOD

    crl = x509.load_der_x509_crl(server.get(f"/crl/{old_issuing.serial_number:x}.crl").body)
    assert crl.is_signature_valid(old_issuing.public_key())
    assert crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None

    ca.retire_old_root(force=True)
    # The server follows the store: once retired, one root and no cross-certificate.
    for _ in range(50):
        if len(x509.load_pem_x509_certificates(server.get("/ca/roots.pem").body)) == 1:
            break

        time.sleep(0.1)
    assert x509.load_pem_x509_certificates(server.get("/ca/roots.pem").body) == [rollover.root]
    assert server.get("/ca/cross.pem").body == b""
