"""`privca doctor` never flags the certificates privca issues to itself (the serve TLS
certificate and the delegated OCSP responders): their fix would be "renew SERIAL", which
cannot work for a certificate without names, and privca replaces them by itself."""

from __future__ import annotations

import json

from privca.authority import CertificateAuthority
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


def test_an_ordinary_leaf_is_still_examined(run_cli: Cli) -> None:
    """The control: the same kind of certificate under a service profile is a finding."""
    init = run_cli("init", "--name", "Doctor CA", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0, init.stderr
    ca = CertificateAuthority.open(run_cli.home, run_cli.passphrase_file.read_bytes().strip())
    with ca:
        import datetime as dt

        from privca._time import utcnow

        ca.issue(["soon.corp.internal"], days=3, now=utcnow() - dt.timedelta(days=1))
    result = run_cli("doctor", "--json")
    assert result.exit_code == 1, result.stdout
    assert "leaf-expiring" in {f["code"] for f in json.loads(result.stdout)}
