"""Two `privca serve` replicas over one PostgreSQL store: they never disagree."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509 import ocsp

from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.test_app import load, ocsp_request


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

    numbers = []
    for server in servers * 2:
        answer = load(server.post_ocsp(request).body)
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
        crl = x509.load_der_x509_crl(server.get("/crl/issuing.crl").body)
        assert crl.get_revoked_certificate_by_serial_number(leaf.serial) is not None
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    # Each replica caches its CRL; numbers they do build come from the shared counter.
    assert len(set(numbers[:2])) == 2
    assert numbers[2:] == numbers[:2]
    operator.close()
    for ca in replicas:
        ca.close()
