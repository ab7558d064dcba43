"""A CA whose keys are on a token (SoftHSM2): the archive names them, never copies them,
and the restored home signs with the same token keys."""

from __future__ import annotations

from pathlib import Path

from privca.authority import CertificateAuthority
from tests.backup.conftest import manifest_of, members
from tests.conftest import Cli
from tests.keys.test_pkcs11 import MODULE, PIN, softhsm  # noqa: F401  (fixture)


def test_hsm_keys_are_referenced_not_copied(
    softhsm: str,  # noqa: F811
    run_cli: Cli,
    tmp_path: Path,
) -> None:
    home = tmp_path / "hsm-ca"
    CertificateAuthority.init(
        home, "HSM CA", passphrase=PIN, hsm_module=MODULE, hsm_token=softhsm
    ).close()
    archive = tmp_path / "hsm.tar.gz"
    result = run_cli("backup", "--out", str(archive), home=home)
    assert result.exit_code == 0, result.stderr
    assert "HSM keys are referenced" in result.stderr
    keys = manifest_of(archive)["keys"]
    assert len(keys["hsm"]) == 2 and all(ref.startswith("pkcs11:") for ref in keys["hsm"])  # type: ignore[index]
    assert [n for n in members(archive) if n.startswith("home/private/")] == [
        "home/private/eab.key"
    ]
    verify = run_cli("backup", "verify", str(archive))
    assert verify.exit_code == 0, verify.stderr
    target = tmp_path / "restored"
    result = run_cli("restore", str(archive), "--home", str(target))
    assert result.exit_code == 0, result.stderr
    assert "pkcs11:" in result.stderr
    restored = CertificateAuthority.open(target, PIN)
    try:
        restored.issue(["after.corp.internal"])
    finally:
        restored.close()
