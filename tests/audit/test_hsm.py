"""On an HSM home the audit key is made on the token that holds the issuing CA's key
(non-extractable, like it), and its checkpoints and exports still verify with openssl."""

from __future__ import annotations

from pathlib import Path

from privca.authority import CertificateAuthority
from tests.conftest import Cli, openssl
from tests.keys.test_pkcs11 import MODULE, PIN, softhsm  # noqa: F401  (fixture)


def test_the_audit_key_lives_on_the_token(
    softhsm: str,  # noqa: F811
    run_cli: Cli,
    tmp_path: Path,
) -> None:
    home = tmp_path / "hsm-ca"
    with CertificateAuthority.init(
        home, "HSM CA", passphrase=PIN, hsm_module=MODULE, hsm_token=softhsm
    ) as ca:
        ca.issue(["svc.corp.internal"])
        checkpoint = ca.audit_checkpoint()
        data, signature = ca.audit_export(ca.root.not_valid_before_utc)
    assert (home / "certs" / "audit-key.ref").read_text().startswith("pkcs11:")
    assert not list((home / "private").glob("audit-*"))  # nothing of it on disk
    statement = tmp_path / "statement.json"
    statement.write_bytes(checkpoint.statement)
    p7s = tmp_path / "statement.p7s"
    p7s.write_bytes(checkpoint.signature)
    export, export_sig = tmp_path / "export.json", tmp_path / "export.json.p7s"
    export.write_bytes(data)
    export_sig.write_bytes(signature)
    root = home / "certs" / "root.crt"
    for content, sig in ((statement, p7s), (export, export_sig)):
        check = openssl(
            "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig),
            "-content", str(content), "-CAfile", str(root), "-out", "/dev/null",
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
    result = run_cli("audit", "verify-export", str(export), home=home)
    assert result.exit_code == 0, result.stderr
