"""A root rollover with the CA keys in SoftHSM2: the new root and issuing keys are made on
the token (no key file appears), and openssl accepts a new leaf under either root."""

from __future__ import annotations

from pathlib import Path

from privca.authority import CertificateAuthority
from privca.x509.encoding import pem_certificate
from tests.conftest import openssl, write
from tests.keys.test_pkcs11 import MODULE, PIN, softhsm

__all__ = ["softhsm"]  # the fixture, shared with test_pkcs11.py


def test_rollover_keeps_the_new_keys_on_the_token(softhsm: str, tmp_path: Path) -> None:
    home = tmp_path / "ca"
    ca = CertificateAuthority.init(
        home, "HSM CA", passphrase=PIN, hsm_module=MODULE, hsm_token=softhsm
    )
    old_root = write(tmp_path / "old-root.pem", pem_certificate(ca.root))
    ca.close()
    ca = CertificateAuthority.open(home, PIN)
    rollover = ca.rollover_root()
    assert [p.name for p in (home / "private").iterdir()] == ["eab.key"]
    assert ca.registry.root.key_ref.startswith("pkcs11:")
    ca.close()
    ca = CertificateAuthority.open(home, PIN)
    issued = ca.issue(["db.corp.internal"])
    assert rollover.issuing is not None
    assert issued.certificate.issuer == rollover.issuing.subject
    leaf = write(tmp_path / "leaf.pem", issued.certificate_pem())
    chain = write(tmp_path / "chain.pem", issued.chain_pem())
    for root in (old_root, home / "certs" / "root.crt"):
        result = openssl(
            "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)
        )
        assert result.returncode == 0, (root, result.stderr)
    ca.close()
