"""One certificate is renewed once: a second renewal of it (in turn, or racing) used to
commit too, leaving two valid successors (the name then ambiguous for every later renew)
and one new key written nowhere."""

from __future__ import annotations

import json
from pathlib import Path

from privca._time import utcnow
from privca.authority import CertificateAuthority
from tests.conftest import PASSPHRASE, Cli, assert_user_error


def test_a_renewed_certificate_is_not_renewed_again(run_cli: Cli, tmp_path: Path) -> None:
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Renew Twice", *secret).exit_code == 0
    out = str(tmp_path / "out")
    issued = run_cli("issue", "web.corp.internal", "--out", out, *secret, "--json")
    old = json.loads(issued.stdout)["serial"]
    first = run_cli("renew", old, "--out", out, *secret, "--json")
    assert first.exit_code == 0, first.stderr
    new = json.loads(first.stdout)["serial"]
    again = run_cli("renew", old, "--out", str(tmp_path / "again"), *secret)
    assert_user_error(again, f"was renewed already, by {new}")
    assert f"privca renew {new}" in again.stderr
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())
    listed = json.loads(run_cli("list", "--json").stdout)
    assert [d["serial"] for d in listed if d["status"] == "valid"] == [new]


def test_the_store_marks_a_certificate_superseded_once(run_cli: Cli) -> None:
    """Two renewals racing: the second one's mark changes nothing (renew then revokes its
    own certificate and says so), and the first successor stays recorded."""
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Renew Race", "--passphrase-file", secret).exit_code == 0
    ca = CertificateAuthority.open(run_cli.home, PASSPHRASE)
    try:
        old, first, second = (ca.issue([f"r{i}.corp.internal"]).serial for i in range(3))
        assert ca.supersede(old, first, utcnow()) is True
        assert ca.supersede(old, second, utcnow()) is False
        record = ca.certificate_by_serial(old)
        assert record is not None and record.superseded_by == first
    finally:
        ca.close()
