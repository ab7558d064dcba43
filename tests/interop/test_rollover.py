"""A root rollover judged by third parties: `openssl verify -x509_strict`, NSS `certutil
-V`, real TLS handshakes on 127.0.0.1 (Python ssl, openssl s_client, curl, Java) trusting
only the old root, then only the new one, pkilint on the cross-certificate, and the old
hierarchy's CRL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from privca.authority import CertificateAuthority
from privca.issuance import IssuedCertificate
from privca.keys.types import KeyType
from privca.x509.encoding import pem_certificate, pem_certificates, pem_private_key_unencrypted
from tests.conftest import openssl, require_tool, write
from tests.interop._tls import ClientResult, curl, python_client, s_client, serve

NAME = "svc.corp.internal"


@dataclass(frozen=True)
class Files:
    """PEM files of a CA that rolled over, and of one leaf before and one after."""

    ca: CertificateAuthority
    old_root: Path
    new_root: Path
    old: IssuedCertificate
    new: IssuedCertificate
    directory: Path

    def leaf(self, issued: IssuedCertificate, stem: str) -> dict[str, Path]:
        if issued.private_key is None:
            raise AssertionError("the test issues its own keys")
        d = self.directory
        return {
            "crt": write(d / f"{stem}.crt", issued.certificate_pem()),
            "chain": write(d / f"{stem}.chain.pem", issued.chain_pem()),
            "chain-new": write(d / f"{stem}.chain-new.pem", issued.chain_new_pem()),
            "key": write(d / f"{stem}.key", pem_private_key_unencrypted(issued.private_key), 0o600),
        }


@pytest.fixture(params=[KeyType.EC_P384, KeyType.RSA_2048], ids=lambda k: k.value)
def rolled(
    request: pytest.FixtureRequest, make_ca: Callable[..., CertificateAuthority], tmp_path: Path
) -> Files:
    ca = make_ca(key_type=request.param)
    old_root = write(tmp_path / "old-root.pem", pem_certificate(ca.root))
    old = ca.issue([NAME, "127.0.0.1"])
    ca.rollover_root(key_type=KeyType.EC_P384)
    new_root = write(tmp_path / "new-root.pem", pem_certificate(ca.root))
    new = ca.issue([NAME, "127.0.0.1"])
    return Files(ca, old_root, new_root, old, new, tmp_path)


def _verify(root: Path, untrusted: Path, leaf: Path) -> tuple[int, str]:
    result = openssl(
        "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(root),
        "-untrusted", str(untrusted), str(leaf),
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("trusted", ["old_root", "new_root"])
def test_openssl_verifies_a_new_leaf_under_either_root(rolled: Files, trusted: str) -> None:
    require_tool("openssl")
    files = rolled.leaf(rolled.new, "new")
    code, output = _verify(getattr(rolled, trusted), files["chain"], files["crt"])
    assert code == 0, output


def test_openssl_judges_the_chains_apart(rolled: Files) -> None:
    """The cross-certificate is what makes the old root work: without it, it fails."""
    require_tool("openssl")
    new = rolled.leaf(rolled.new, "new")
    assert _verify(rolled.new_root, new["chain-new"], new["crt"])[0] == 0
    assert _verify(rolled.old_root, new["chain-new"], new["crt"])[0] != 0
    old = rolled.leaf(rolled.old, "old")
    assert _verify(rolled.old_root, old["chain"], old["crt"])[0] == 0
    assert _verify(rolled.new_root, old["chain"], old["crt"])[0] != 0


CLIENTS = [
    pytest.param(python_client, "openssl", id="python-ssl"),
    pytest.param(s_client, "openssl", id="openssl-s_client"),
    pytest.param(curl, "curl", id="curl"),
]


@pytest.mark.parametrize(("client", "tool"), CLIENTS)
def test_handshake_trusting_only_the_old_then_only_the_new_root(
    rolled: Files, client: Callable[..., ClientResult], tool: str
) -> None:
    require_tool(tool)
    files = rolled.leaf(rolled.new, "new")
    with serve(files["chain"], files["key"]) as server:
        for root in (rolled.old_root, rolled.new_root):
            result = client(server.port, root, NAME)
            assert result.ok, (root.name, result.detail)
    # Served without the cross-certificate, a client that trusts only the old root fails.
    with serve(files["chain-new"], files["key"]) as server:
        assert not client(server.port, rolled.old_root, NAME).ok
        assert client(server.port, rolled.new_root, NAME).ok


def test_pre_rollover_leaf_keeps_its_handshake_and_its_crl(rolled: Files) -> None:
    require_tool("openssl")
    files = rolled.leaf(rolled.old, "old")
    with serve(files["chain"], files["key"]) as server:
        assert python_client(server.port, rolled.old_root, NAME).ok
    rolled.ca.revoke(format(rolled.old.serial, "x"), "keyCompromise")
    # The CA that signed the old leaf publishes its CRL still, listing the revocation.
    signer = next(
        a
        for a in rolled.ca.publishing_authorities()
        if a.certificate.subject == rolled.old.certificate.issuer
    )
    crl = rolled.ca.crl(signer)
    assert crl.get_revoked_certificate_by_serial_number(rolled.old.serial) is not None
    crl_file = write(rolled.directory / "old.crl.pem", crl.public_bytes(Encoding.PEM))
    result = openssl(
        "verify", "-x509_strict", "-crl_check", "-CRLfile", str(crl_file),
        "-CAfile", str(rolled.old_root), "-untrusted", str(files["chain"]), str(files["crt"]),
    )  # fmt: skip
    assert result.returncode != 0 and "revoked" in (result.stdout + result.stderr), result


def test_pkilint_finds_nothing_on_the_cross_certificate(rolled: Files) -> None:
    pytest.importorskip("pkilint")
    from tests.interop._pkilint import WARNING_OR_WORSE, lint_certificate, lint_chain

    registry = rolled.ca.registry
    cross = registry.cross
    previous = registry.previous_root
    assert cross is not None and previous is not None
    issuing = registry.issuing.certificate
    checks = {
        "cross": lint_certificate(cross.certificate),
        "old-root->cross": lint_chain(previous.certificate, cross.certificate),
        "cross->issuing": lint_chain(cross.certificate, issuing),
        "new-root": lint_certificate(registry.root.certificate),
    }
    for case, findings in checks.items():
        assert [str(f) for f in findings if f.severity in WARNING_OR_WORSE] == [], case


def test_cross_certificate_key_identifiers(rolled: Files) -> None:
    registry = rolled.ca.registry
    cross = registry.cross
    previous = registry.previous_root
    assert cross is not None and previous is not None
    aki = cross.certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == previous.key_identifier
    assert cross.key_identifier == registry.root.key_identifier


def _nss_validates(
    database: Path, trusted: Path, intermediates: list[x509.Certificate], leaf: bytes
) -> bool:
    """certutil -V in a fresh NSS database that trusts only `trusted` as a CA and holds
    `intermediates` without trust: does NSS accept the leaf as a TLS server?"""
    database.mkdir()
    db = f"sql:{database}"

    def certutil(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["certutil", *args, "-d", db], input=data, capture_output=True)

    assert certutil("-N", "--empty-password").returncode == 0
    assert (
        certutil("-A", "-n", "anchor", "-t", "C,,", "-a", data=trusted.read_bytes()).returncode == 0
    )
    for index, certificate in enumerate(intermediates):
        added = certutil(
            "-A", "-n", f"ca{index}", "-t", ",,", "-a", data=pem_certificate(certificate)
        )
        assert added.returncode == 0
    assert certutil("-A", "-n", "leaf", "-t", ",,", "-a", data=leaf).returncode == 0
    result = certutil("-V", "-u", "V", "-n", "leaf")
    return result.returncode == 0 and b"certificate is valid" in result.stdout


def test_nss_validates_a_new_leaf_under_either_root(rolled: Files) -> None:
    require_tool("certutil")
    leaf = rolled.new.certificate_pem()
    issuing, cross = rolled.new.chain[0], rolled.new.cross[0]
    d = rolled.directory
    assert _nss_validates(d / "nss-old", rolled.old_root, [issuing, cross], leaf)
    assert _nss_validates(d / "nss-new", rolled.new_root, [issuing], leaf)
    # Without the cross-certificate, a client that trusts only the old root has no path.
    assert not _nss_validates(d / "nss-old-bare", rolled.old_root, [issuing], leaf)


def test_java_handshake_trusting_only_the_old_then_only_the_new_root(rolled: Files) -> None:
    java = require_tool("java")
    from privca.trust import read_anchor
    from privca.trust.bundle import build_java_truststore

    client = Path(__file__).parents[1] / "trust" / "TlsClient.java"
    files = rolled.leaf(rolled.new, "new")
    with serve(files["chain"], files["key"]) as server:
        for root in (rolled.old_root, rolled.new_root):
            truststore = write(
                rolled.directory / f"{root.stem}.p12",
                build_java_truststore(read_anchor(root), "changeit"),
            )
            result = subprocess.run(
                [
                    java,
                    f"-Djavax.net.ssl.trustStore={truststore}",
                    "-Djavax.net.ssl.trustStorePassword=changeit",
                    str(client),
                    "127.0.0.1",
                    str(server.port),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0 and "handshake ok" in result.stdout, (
                root.name,
                result.stderr[-2000:],
            )


@pytest.mark.parametrize("old_key", [KeyType.EC_P384, KeyType.RSA_2048], ids=lambda k: k.value)
def test_reverse_cross_lets_a_client_of_the_new_root_verify_an_old_leaf(
    make_ca: Callable[..., CertificateAuthority], tmp_path: Path, old_key: KeyType
) -> None:
    """`--reverse-cross`: the old root signed by the new. Same subject, key and key
    identifier as the old root, AKI = the new root's SKI, valid inside both; openssl
    -x509_strict and pkilint accept it, and it is what lets a client that trusts only the
    new root build a path to a leaf of the old hierarchy."""
    require_tool("openssl")
    ca = make_ca(key_type=old_key)
    old_root, old_issuing = ca.root, ca.issuing
    old = ca.issue([NAME])
    rollover = ca.rollover_root(key_type=KeyType.EC_P384, reverse_cross=True)
    reverse = rollover.reverse_cross
    assert reverse is not None

    def ski(certificate: x509.Certificate) -> bytes:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest

    aki = reverse.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert reverse.subject == old_root.subject and reverse.issuer == rollover.root.subject
    assert reverse.public_key() == old_root.public_key()
    assert ski(reverse) == ski(old_root) and aki.key_identifier == ski(rollover.root)
    for root in (old_root, rollover.root):
        assert root.not_valid_before_utc <= reverse.not_valid_before_utc
        assert reverse.not_valid_after_utc <= root.not_valid_after_utc

    new_root = write(tmp_path / "new-root.pem", pem_certificate(rollover.root))
    leaf = write(tmp_path / "old.crt", old.certificate_pem())
    with_reverse = write(tmp_path / "with.pem", pem_certificates([old_issuing, reverse]))
    without = write(tmp_path / "without.pem", pem_certificate(old_issuing))
    code, output = _verify(new_root, with_reverse, leaf)
    assert code == 0, output
    assert _verify(new_root, without, leaf)[0] != 0  # the reverse cross is what does it
    # The same with a real handshake: the old service sends the reverse cross as well.
    assert old.private_key is not None
    key = write(tmp_path / "old.key", pem_private_key_unencrypted(old.private_key), 0o600)
    served = write(tmp_path / "served.pem", old.certificate_pem() + with_reverse.read_bytes())
    with serve(served, key) as server:
        result = python_client(server.port, new_root, NAME)
        assert result.ok, result.detail
    # The new issuing CA's chain still ends at the new root, and the old root's at itself.
    assert ca.registry.chain[-1] == rollover.root

    pytest.importorskip("pkilint")
    from tests.interop._pkilint import WARNING_OR_WORSE, lint_certificate, lint_chain

    checks = {
        "reverse": lint_certificate(reverse),
        "new-root->reverse": lint_chain(rollover.root, reverse),
        "reverse->old-issuing": lint_chain(reverse, old_issuing),
    }
    for case, findings in checks.items():
        assert [str(f) for f in findings if f.severity in WARNING_OR_WORSE] == [], case
