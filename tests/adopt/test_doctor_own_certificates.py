"""`privca doctor` never flags the certificates privca issues to itself (the serve TLS
certificate and the delegated OCSP responders): their fix would be "renew SERIAL", which
cannot work for a certificate without names, and privca replaces them by itself."""

from __future__ import annotations

import json
from pathlib import Path

from privca.authority import CertificateAuthority
from tests.cli.test_check_nagios import signed_by_the_ca
from tests.conftest import Cli


def test_own_server_and_responder_certificates_are_not_findings(run_cli: Cli) -> None:
    init = run_cli("init", "--name", "Doctor CA", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    ca = CertificateAuthority.open(run_cli.home, run_cli.passphrase_file.read_bytes().strip())
    with ca:
        issuing = ca.issuing_record()
        own = [ca.issue_ocsp_responder(issuing)[0].serial_number for _ in range(12)]
        own += [ca.issue(["ca.corp.internal"], profile="privca-server").serial for _ in range(4)]
    result = run_cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)
    assert {f["severity"] for f in findings} <= {"info"}, findings
    text = run_cli("doctor").stdout
    assert "subjectAltName" not in text and "renew SERIAL" not in text, text
    for serial in own:
        assert f"{serial:x}" not in text


def test_an_ordinary_leaf_is_still_examined(run_cli: Cli, tmp_path: Path) -> None:
    """The control: the same kind of certificate under a service profile is a finding
    (2 days left of 32: expiring by any rule; one issued now for 3 days is not, as a
    third of its lifetime is not yet reached)."""
    init = run_cli("init", "--name", "Doctor CA", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    leaf = signed_by_the_ca(run_cli, tmp_path / "soon.crt", "soon.corp.internal")
    imported = run_cli("import", "certificates", str(leaf))
    assert imported.exit_code == 0, imported.stdout + imported.stderr
    result = run_cli("doctor", "--json")
    assert result.exit_code == 1, result.stdout
    assert "leaf-expiring" in {f["code"] for f in json.loads(result.stdout)}
