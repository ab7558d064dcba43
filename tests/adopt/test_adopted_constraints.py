"""An adopted CA's certificates may carry name constraints its privca.toml does not say:
privca issues only what they allow, and agrees with `openssl verify` on every name type.

Before, issuance asked only the [policy] section (empty for an adopted CA), and signed
leaves every client refuses (openssl: error 47, permitted subtree violation)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privca.x509.build import leaf_subject
from privca.x509.names import parse_names
from tests.adopt.conftest import Runbook
from tests.conftest import Cli, assert_user_error, openssl

CORP = x509.DNSName("corp.internal")
# (the root's nameConstraints, then names privca must refuse, then names it must issue)
CASES = {
    "permitted-dns": (
        x509.NameConstraints([CORP], None),
        [["evil.com"], ["ok.corp.internal", "evil.com"], ["*.example.org"]],
        [["ok.corp.internal"], ["*.corp.internal"]],
    ),
    "excluded-dns-only": (
        x509.NameConstraints(None, [x509.DNSName("secret.corp.internal")]),
        [["secret.corp.internal"], ["a.secret.corp.internal"]],
        [["ok.corp.internal"], ["evil.com"]],
    ),
    "leading-dot-dns-is-below-only": (
        x509.NameConstraints([x509.DNSName(".corp.internal")], None),
        [["corp.internal"]],
        [["a.corp.internal"]],
    ),
    "ip-network": (
        x509.NameConstraints(
            [CORP, x509.IPAddress(__import__("ipaddress").ip_network("10.1.0.0/16"))], None
        ),
        [["ok.corp.internal", "10.2.0.1"], ["192.0.2.1"]],
        [["ok.corp.internal", "10.1.2.3"]],
    ),
    "email-below-the-domain-only": (
        x509.NameConstraints([CORP, x509.RFC822Name(".corp.internal")], None),
        [["ok.corp.internal", "email:alice@corp.internal"]],
        [["ok.corp.internal", "email:alice@mail.corp.internal"]],
    ),
    "excluded-mailbox": (
        x509.NameConstraints(None, [x509.RFC822Name("root@corp.internal")]),
        [["ok.corp.internal", "email:root@corp.internal"]],
        [["ok.corp.internal", "email:alice@corp.internal"]],
    ),
    "excluded-uri-host": (
        x509.NameConstraints(None, [x509.UniformResourceIdentifier(".evil.example")]),
        [["ok.corp.internal", "uri:https://a.evil.example/x"]],
        [["ok.corp.internal", "uri:https://svc.corp.internal/x"]],
    ),
    # OpenSSL compares the bytes: a trailing dot in a subtree matches no name (a 'www.
    # example.com' was issued under 'example.com.', and refused under excluded 'bad.com.').
    "permitted-with-trailing-dot": (
        x509.NameConstraints([x509.DNSName("example.com.")], None),
        [["www.example.com"], ["example.com"]],
        [["10.1.2.3"]],
    ),
    "excluded-with-trailing-dot": (
        x509.NameConstraints(None, [x509.DNSName("bad.com.")]),
        [],
        [["x.bad.com"]],
    ),
    "mailbox-at-host": (  # '@host': any mailbox at exactly that host
        x509.NameConstraints([CORP, x509.RFC822Name("@corp.internal")], None),
        [["ok.corp.internal", "email:a@mail.corp.internal"]],
        [["ok.corp.internal", "email:a@corp.internal"]],
    ),
    "directory-name": (
        x509.NameConstraints(
            [CORP, x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ok")]))],
            None,
        ),
        [["ok.corp.internal"]],  # subject CN=ok.corp.internal is not below CN=ok
        [],
    ),
}  # fmt: skip


def _constrained_root(runbook: Runbook, constraints: x509.NameConstraints) -> None:
    """The runbook's root again, from its own key and subject, with `constraints`."""
    key_file = runbook.ca_dir / "private" / "ca.key"
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    old = x509.load_pem_x509_certificate(runbook.ca_cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)  # type: ignore[arg-type]
        .add_extension(constraints, critical=True)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    runbook.ca_cert.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    # The runbook's old service certificates were signed before: import only the root.
    for crt in runbook.services.glob("*.crt"):
        crt.unlink()


def _openssl_accepts(runbook: Runbook, names: list[str], tmp_path: Path) -> bool:
    """Whether `openssl verify` takes a leaf with these names and the subject privca would
    give it, signed by the root's key directly: the oracle privca must agree with."""
    key = serialization.load_pem_private_key(
        (runbook.ca_dir / "private" / "ca.key").read_bytes(), None
    )
    root = x509.load_pem_x509_certificate(runbook.ca_cert.read_bytes())
    parsed = parse_names(names)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(leaf_subject(parsed))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([n.general_name() for n in parsed]), False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    path = tmp_path / "oracle.crt"
    path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    result = openssl("verify", "-CAfile", str(runbook.ca_cert), str(path))
    return result.returncode == 0


@pytest.mark.parametrize(("constraints", "refused", "issued"), CASES.values(), ids=list(CASES))
def test_issuance_follows_the_adopted_roots_name_constraints_as_openssl_does(
    run_cli: Cli,
    runbook: Runbook,
    tmp_path: Path,
    constraints: x509.NameConstraints,
    refused: list[list[str]],
    issued: list[list[str]],
) -> None:
    _constrained_root(runbook, constraints)
    adopted = run_cli(
        "import", "openssl", str(runbook.ca_dir),
        "--new-passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert adopted.exit_code == 0, adopted.stderr
    for names in refused:
        assert not _openssl_accepts(runbook, names, tmp_path), names  # the oracle agrees
        out = tmp_path / "refused"
        result = run_cli(
            "issue", *names, "--profile", "server-client", "--out", str(out),
            "--passphrase-file", str(run_cli.passphrase_file),
        )  # fmt: skip
        assert_user_error(result, "name constraints")
        assert not out.exists()
    for names in issued:
        assert _openssl_accepts(runbook, names, tmp_path), names
        out = tmp_path / "issued"
        result = run_cli(
            "issue", *names, "--profile", "server-client", "--out", str(out),
            "--passphrase-file", str(run_cli.passphrase_file),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        [crt] = [p for p in out.glob("*.crt") if not p.name.endswith(".chain.crt")]
        check = openssl("verify", "-CAfile", str(runbook.ca_cert), str(crt))
        assert check.returncode == 0, check.stdout + check.stderr
        for path in out.iterdir():
            path.unlink()
    listed = run_cli("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    recorded = [doc["names"] for doc in json.loads(listed.stdout)]
    for names in refused:  # nothing recorded for a refusal either
        assert [str(n) for n in parse_names(names)] not in recorded


def test_a_policy_edited_beyond_the_cas_constraints_is_not_followed(
    run_cli: Cli, tmp_path: Path
) -> None:
    """A privca CA's certificates carry its policy; permitting more in privca.toml later
    does not make the certificates permit it, so such a leaf is refused, not signed."""
    passphrase = str(run_cli.passphrase_file)
    init = run_cli("init", "--name", "Corp", "--permit", "corp.internal",
                   "--passphrase-file", passphrase)  # fmt: skip
    assert init.exit_code == 0, init.stderr
    settings = run_cli.home / "privca.toml"
    text = settings.read_text()
    assert 'permitted = ["corp.internal"]' in text
    settings.write_text(text.replace(
        'permitted = ["corp.internal"]', 'permitted = ["corp.internal", "evil.com"]'
    ))  # fmt: skip
    out = tmp_path / "out"
    refused = run_cli("issue", "evil.com", "--out", str(out), "--passphrase-file", passphrase)
    assert_user_error(refused, "outside the permitted subtrees (corp.internal")
    assert not out.exists()
    issued = run_cli("issue", "ok.corp.internal", "--out", str(out),
                     "--passphrase-file", passphrase)  # fmt: skip
    assert issued.exit_code == 0, issued.stderr
