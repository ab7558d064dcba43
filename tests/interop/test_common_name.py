"""Certificates with an operator-set CN pass pkilint and `openssl verify -x509_strict`;
and the CNs privca refuses are ones OpenSSL itself would reject under the CA's name
constraints (the rule mirrors the real client, it is not a guess)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from privca.authority import BACKDATE
from privca.errors import PolicyError
from privca.store.inventory import random_serial
from privca.x509 import profiles
from privca.x509.build import CertificateSpec, build_certificate
from privca.x509.encoding import pem_certificate
from privca.x509.names import parse_names
from tests.conftest import write
from tests.interop._pkilint import WARNING_OR_WORSE, lint_certificate
from tests.interop.conftest import CORP_PERMITTED, CAPool, openssl_output, openssl_verify

# (names, profile, cn): certificates privca issues with --cn
ISSUED = {
    "client-user": (["email:alice@corp.internal"], "client", "alice"),
    "client-unicode-user": (["email:j@corp.internal"], "client", "jürgen"),
    "client-free-text": (["uri:https://corp.internal/backup"], "client", "Backup Agent"),
    "client-dns-cn": (["email:ops@corp.internal"], "client", "ops.corp.internal"),
    "server-second-name": (["a.corp.internal", "b.corp.internal"], "server", "b.corp.internal"),
    "server-client-address": (["db.corp.internal", "10.0.0.5"], "server-client", "10.0.0.5"),
}


@pytest.mark.parametrize(("names", "profile", "cn"), ISSUED.values(), ids=list(ISSUED))
def test_issued_with_cn_passes_pkilint_and_openssl(
    ca_pool: CAPool, tmp_path: Path, names: list[str], profile: str, cn: str
) -> None:
    pytest.importorskip("pkilint")
    pooled = ca_pool.get(permitted=CORP_PERMITTED)
    issued = pooled.ca.issue(names, profile=profile, common_name=cn)
    cert = issued.certificate
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [cn]
    findings = [f for f in lint_certificate(cert) if f.severity in WARNING_OR_WORSE]
    assert not findings, findings
    path = write(tmp_path / "leaf.crt", issued.certificate_pem())
    purpose = "sslclient" if profile != "server" else "sslserver"
    result = openssl_verify(pooled, path, purpose=purpose)
    assert result.returncode == 0, openssl_output(result)


# CNs privca refuses under permit corp.internal + 10.0.0.0/8 for a certificate without DNS
# names; OpenSSL refuses the same certificate (built here without privca's check).
REFUSED = {
    "user-with-a-dot": (["email:j@corp.internal"], "john.doe"),
    "foreign-host": (["email:j@corp.internal"], "www.example.com"),
    "ipv4-read-as-dns": (["10.0.0.5"], "10.0.0.5"),
}


@pytest.mark.parametrize(("names", "cn"), REFUSED.values(), ids=list(REFUSED))
def test_a_refused_cn_is_one_openssl_rejects(
    ca_pool: CAPool, tmp_path: Path, names: list[str], cn: str
) -> None:
    pooled = ca_pool.get(permitted=CORP_PERMITTED)
    profile = "client" if names[0].startswith("email:") else "server"
    with pytest.raises(PolicyError):
        pooled.ca.issue(names, profile=profile, common_name=cn)
    # The same certificate signed without the check: OpenSSL's verify says no.
    ca = pooled.ca
    now = dt.datetime.now(dt.UTC)
    key = ca.issue(["probe.corp.internal"]).private_key
    cert = build_certificate(
        CertificateSpec(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
            public_key=key.public_key(),
            profile=profiles.leaf_profile(profile),
            serial=random_serial(),
            not_before=now - BACKDATE,
            not_after=now + dt.timedelta(days=1),
            names=parse_names(names),
        ),
        ca.signer(ca.issuing_record()),
    )
    path = write(tmp_path / "forged.crt", pem_certificate(cert))
    purpose = "sslclient" if profile == "client" else "sslserver"
    result = openssl_verify(pooled, path, purpose=purpose)
    assert result.returncode != 0, openssl_output(result)
    assert "permitted subtree violation" in result.stdout + result.stderr, openssl_output(result)
