"""A signed export: `openssl cms -verify` accepts it against the root, one changed byte
fails both openssl and `privca audit verify-export`; checkpoints verify with openssl too."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import Cli, openssl


@pytest.fixture
def export(run_cli: Cli, audited_home: Path, tmp_path: Path) -> Path:
    out = tmp_path / "audit-export.json"
    result = run_cli(
        "audit", "export", "--since", "2000-01-01", "--out", str(out),
        "--passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return out


def cms_verify(content: Path, signature: Path, root: Path) -> tuple[int, str]:
    result = openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
        "-content", str(content), "-CAfile", str(root), "-out", "/dev/null",
    )  # fmt: skip
    return result.returncode, result.stderr


def test_openssl_verifies_the_export(audited_home: Path, export: Path) -> None:
    code, stderr = cms_verify(export, export.with_name(export.name + ".p7s"), _root(audited_home))
    assert code == 0, stderr
    document = json.loads(export.read_bytes())
    actions = [e["action"] for e in document["entries"]]
    assert {"root-ca-created", "issued", "revoked", "crl-issued"} <= set(actions)
    assert len(document["certificates"]) >= 3  # every issued certificate it names


def test_privca_verifies_the_export(run_cli: Cli, export: Path) -> None:
    result = run_cli("audit", "verify-export", str(export), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verified"] is True


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9], ids=["early-byte", "middle-byte", "late-byte"])
def test_one_changed_byte_fails(
    run_cli: Cli, audited_home: Path, export: Path, tmp_path: Path, where: float
) -> None:
    data = bytearray(export.read_bytes())
    position = int(len(data) * where)
    data[position] = ord("0") if data[position] != ord("0") else ord("1")
    changed = tmp_path / "changed.json"
    changed.write_bytes(bytes(data))
    signature = export.with_name(export.name + ".p7s")
    code, _stderr = cms_verify(changed, signature, _root(audited_home))
    assert code != 0
    result = run_cli("audit", "verify-export", str(changed), "--signature", str(signature))
    assert result.exit_code in (1, 2), result.stdout  # 2: no longer JSON at all
    assert "Traceback" not in result.output + result.stderr


def test_another_cas_root_is_refused(run_cli: Cli, export: Path, tmp_path: Path) -> None:
    other_home = tmp_path / "other"
    assert run_cli("init", "--name", "Other CA", "--no-passphrase", home=other_home).exit_code == 0
    result = run_cli("audit", "verify-export", str(export), "--root",
                     str(other_home / "certs" / "root.crt"))  # fmt: skip
    assert result.exit_code == 1
    assert "does not chain to this CA's root" in result.stderr


def test_openssl_verifies_a_checkpoint(audited_home: Path, tmp_path: Path) -> None:
    """As docs/audit.md tells an outsider: the statement and its signature, then openssl."""
    document = json.loads((audited_home / "certs" / "audit-checkpoint.json").read_text())
    statement = tmp_path / "statement.json"
    statement.write_bytes(document["statement"].encode())
    signature = tmp_path / "statement.p7s"
    signature.write_bytes(base64.b64decode(document["signature"]))
    code, stderr = cms_verify(statement, signature, _root(audited_home))
    assert code == 0, stderr
    assert json.loads(statement.read_text())["entries"] > 5


def test_the_audit_certificate_is_a_document_signer(audited_home: Path) -> None:
    text = openssl("x509", "-noout", "-text", "-in", str(audited_home / "certs" / "audit.crt"))
    assert "Digital Signature, Non Repudiation" in text.stdout
    assert "E-mail Protection" in text.stdout and "TLS Web" not in text.stdout
    assert "Subject Alternative Name" not in text.stdout
    chain = openssl(
        "verify", "-CAfile", str(_root(audited_home)), "-untrusted",
        str(audited_home / "certs" / "issuing.crt"), str(audited_home / "certs" / "audit.crt"),
    )  # fmt: skip
    assert chain.returncode == 0, chain.stderr


def _root(home: Path) -> Path:
    return home / "certs" / "root.crt"


def test_an_export_signed_by_a_tls_leaf_key_is_refused(
    run_cli: Cli, audited_home: Path, export: Path, tmp_path: Path
) -> None:
    """A certificate of this CA whose key sits on a web server must not speak for the log:
    only the audit key's certificate (profile audit-signer) signs exports."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from privca.x509.cms import sign_detached

    out = audited_home.parent / "out"
    leaf = x509.load_pem_x509_certificate((out / "one.corp.internal.crt").read_bytes())
    key = serialization.load_pem_private_key((out / "one.corp.internal.key").read_bytes(), None)
    issuing = x509.load_pem_x509_certificate((audited_home / "certs" / "issuing.crt").read_bytes())
    forged = tmp_path / "forged.p7s"
    forged.write_bytes(sign_detached(export.read_bytes(), leaf, key, (issuing,)))  # type: ignore[arg-type]
    result = run_cli("audit", "verify-export", str(export), "--signature", str(forged))
    assert result.exit_code == 1, result.stdout
    assert "is not an audit signer" in result.stderr
