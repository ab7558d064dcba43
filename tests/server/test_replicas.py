"""Two `privca serve` replicas over one PostgreSQL store: they never disagree for long, and
serve one CRL once the store has it."""

from __future__ import annotations

import time

from cryptography import x509
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.test_app import load, ocsp_request

REVOKED = ocsp.OCSPCertStatus.REVOKED


def test_replicas_agree_on_revocations_and_crl_numbers(
    tmp_path,
    live_server,
    postgres_url: str,  # noqa: F811
) -> None:
    home = tmp_path / "ca"
    CertificateAuthority.init(
        home, "Replicated CA", passphrase=PASSPHRASE, store_url=postgres_url
    ).close()
    replicas = [CertificateAuthority.open(home, PASSPHRASE) for _ in range(2)]
    servers = [live_server(ca) for ca in replicas]
    operator = CertificateAuthority.open(home, PASSPHRASE)  # a third process: the CLI
    leaf = operator.issue(["db.corp.internal"])
    request = ocsp_request(leaf.certificate, operator.issuing)
    for server in servers:
        assert load(server.post_ocsp(request).body).certificate_status == ocsp.OCSPCertStatus.GOOD

    operator.revoke(format(leaf.serial, "x"), "keyCompromise")

    # A cached answer learns of the revocation from the replica's watcher (about a second
    # on PostgreSQL: no store round trip per OCSP request); a fresh one at once.
    deadline = time.monotonic() + 10
    for server in servers:
        while load(server.post_ocsp(request).body).certificate_status != REVOKED:
            assert time.monotonic() < deadline, "a replica never answered revoked"
            time.sleep(0.1)
    numbers = []
    for server in servers * 2:
        crl = x509.load_der_x509_crl(server.get("/crl/issuing.crl").body)
        assert crl.get_revoked_certificate_by_serial_number(leaf.serial) is not None
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    # The first replica asked built a CRL and put it in the store; the second serves that
    # one rather than building its own: one number, never a lower one from either.
    assert numbers == [numbers[0]] * 4
    operator.close()
    for ca in replicas:
        ca.close()
