"""`privca serve` during a root rollover: /ca/roots.pem and /ca/cross.pem, and the old
hierarchy's OCSP and CRL answers for what it signed before the rollover."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from privca.x509.encoding import pem_certificate, pem_certificates
from tests.conftest import openssl, require_tool, write
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


def _crl_path(certificate: x509.Certificate) -> str:
    """The path of the CRL distribution point `certificate` names."""
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    full_name = points[0].full_name
    assert full_name is not None
    return urllib.parse.urlsplit(full_name[0].value).path


def _fetch_crls(server: LiveServer, chain: list[x509.Certificate]) -> bytes:
    """The CRL each certificate of `chain` names, fetched from the server, as one PEM."""
    found = b""
    for certificate in chain:
        reply = server.get(_crl_path(certificate))
        assert reply.status == 200, (certificate.subject.rfc4514_string(), reply.body)
        found += x509.load_der_x509_crl(reply.body).public_bytes(Encoding.PEM)
    return found


def test_full_chain_crl_check_of_both_hierarchies_with_served_crls(
    make_ca: Callable[..., CertificateAuthority],
    live_server: Callable[..., LiveServer],
    tmp_path: Path,
) -> None:
    """openssl verify -crl_check_all checks every certificate of the path, issuing CAs
    and the cross-certificate too, with the CRLs their distribution points name, fetched
    from `serve`: each hierarchy's issuing CA reaches its own root's CRL."""
    require_tool("openssl")
    ca = make_ca(base_url="http://ca.test")
    old_root, old_issuing = ca.root, ca.issuing
    old = ca.issue(["old.example"])
    gone = ca.issue(["gone.example"])
    rollover = ca.rollover_root()
    assert rollover.issuing is not None
    new = ca.issue(["new.example"])
    ca.revoke(format(gone.serial, "x"), "keyCompromise")
    server = live_server(ca)

    def verify(leaf: x509.Certificate, anchor: x509.Certificate, above: list[x509.Certificate]):
        name = format(leaf.serial_number, "x")
        files = {
            "anchor": write(tmp_path / f"{name}-anchor.pem", pem_certificate(anchor)),
            "chain": write(tmp_path / f"{name}-chain.pem", pem_certificates(above)),
            "crls": write(tmp_path / f"{name}-crls.pem", _fetch_crls(server, [leaf, *above])),
            "leaf": write(tmp_path / f"{name}.pem", pem_certificate(leaf)),
        }
        return openssl(
            "verify", "-x509_strict", "-crl_check_all", "-CAfile", str(files["anchor"]),
            "-untrusted", str(files["chain"]), "-CRLfile", str(files["crls"]),
            str(files["leaf"]),
        )  # fmt: skip

    cases = {
        "old leaf, old root": (old.certificate, old_root, [old_issuing]),
        "new leaf, new root": (new.certificate, rollover.root, [rollover.issuing]),
        "new leaf, old root via the cross-certificate": (
            new.certificate,
            old_root,
            [rollover.issuing, rollover.cross],
        ),
    }
    for case, (leaf, anchor, above) in cases.items():
        result = verify(leaf, anchor, above)
        assert result.returncode == 0, (case, result.stdout + result.stderr)
    revoked = verify(gone.certificate, old_root, [old_issuing])
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr

    # /crl/root.crl, named by issuing CAs made before roots had their own CRL URL, stays
    # the old root's while the rollover lasts; each root's own URL is its own.
    def served_issuer(path: str) -> x509.Name:
        return x509.load_der_x509_crl(server.get(path).body).issuer

    assert served_issuer("/crl/root.crl") == old_root.subject
    assert served_issuer(f"/crl/{old_root.serial_number:x}.crl") == old_root.subject
    assert served_issuer(f"/crl/{rollover.root.serial_number:x}.crl") == rollover.root.subject
    # A cross-certificate has no CRL of its own (and its root key never signs on request).
    assert server.get(f"/crl/{rollover.cross.serial_number:x}.crl").status == 404


def test_reverse_cross_and_the_old_roots_last_crl_are_served(
    make_ca: Callable[..., CertificateAuthority], live_server: Callable[..., LiveServer]
) -> None:
    ca = make_ca()
    old_root = ca.root
    rollover = ca.rollover_root(reverse_cross=True)
    reverse = rollover.reverse_cross
    assert reverse is not None
    server = live_server(ca)
    crosses = x509.load_pem_x509_certificates(server.get("/ca/cross.pem").body)
    assert crosses == [rollover.cross, reverse]
    assert server.get(f"/ca/{reverse.serial_number:x}.der").body == reverse.public_bytes(
        Encoding.DER
    )
    assert server.get(f"/crl/{reverse.serial_number:x}.crl").status == 404

    ca.retire_old_root(force=True)
    for _ in range(50):  # the server follows the store
        if server.get("/ca/cross.pem").body == b"":
            break
        time.sleep(0.1)
    assert server.get("/ca/cross.pem").body == b""
    last = x509.load_der_x509_crl(server.get(f"/crl/{old_root.serial_number:x}.crl").body)
    assert last.issuer == old_root.subject
    assert last.next_update_utc == old_root.not_valid_after_utc
    current = x509.load_der_x509_crl(server.get("/crl/root.crl").body)
    assert current.issuer == rollover.root.subject
    health = server.get("/health")
    assert b'"status":"ok"' in health.body, health.body
