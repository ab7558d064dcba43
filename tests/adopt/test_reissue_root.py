"""`privca rotate root --same-key`: the cure for the runbook root that lacks keyUsage."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from tests.adopt.conftest import Runbook
from tests.conftest import Cli, openssl


def _strict_verify(root: Path, leaf: Path, *untrusted: Path) -> bool:
    args = ["verify", "-x509_strict", "-CAfile", str(root)]
    for path in untrusted:
        args += ["-untrusted", str(path)]
    return openssl(*args, str(leaf)).returncode == 0


def test_reissued_root_passes_strict_checks_for_old_and_new_leaves(
    run_cli: Cli, runbook: Runbook, tmp_path: Path
) -> None:
    passphrase = ["--passphrase-file", str(run_cli.passphrase_file)]
    result = run_cli(*runbook.import_args("--new-passphrase-file", str(run_cli.passphrase_file)))
    assert result.exit_code == 0, result.stderr
    old_leaf = runbook.services / "db.corp.internal.crt"
    original_root = runbook.ca_cert
    assert not _strict_verify(original_root, old_leaf)  # the runbook's root lacks keyUsage
    doctor = json.loads(run_cli("doctor", "--json").output)
    assert "keyUsage" in json.dumps(doctor)

    result = run_cli("rotate", "root", "--same-key", *passphrase, "--json")
    assert result.exit_code == 0, result.stderr
    new_root = run_cli.home / "certs" / "root.crt"
    reissued = x509.load_pem_x509_certificate(new_root.read_bytes())
    old = x509.load_pem_x509_certificate(original_root.read_bytes())
    assert reissued.subject == old.subject and reissued.public_key() == old.public_key()
    assert reissued.extensions.get_extension_for_class(x509.KeyUsage).critical

    assert _strict_verify(new_root, old_leaf)  # nothing re-issued, now strict-clean
    out = tmp_path / "out"
    assert run_cli("issue", "new.corp.internal", "--out", str(out), *passphrase).exit_code == 0
    assert _strict_verify(new_root, out / "new.corp.internal.crt")
    # Clients that still hold the original root keep working (non-strict), as before.
    assert (
        openssl(
            "verify", "-CAfile", str(original_root), str(out / "new.corp.internal.crt")
        ).returncode
        == 0
    )
    assert run_cli("verify", str(old_leaf)).exit_code == 0
    assert run_cli("crl", *passphrase).exit_code == 0


def test_reissue_root_of_a_privca_ca_keeps_chains(make_ca, tmp_path: Path) -> None:
    ca = make_ca()
    before = ca.issue(["a.corp.internal"])
    ca.reissue_root()
    after = ca.issue(["b.corp.internal"])
    for issued in (before, after):
        report, status = ca.verify(issued.certificate)
        assert report.ok and status == "valid", report.problems
