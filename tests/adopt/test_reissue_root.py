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


def test_a_reissued_roots_crl_is_published_under_every_serial_of_its_key(
    run_cli: Cli,
) -> None:
    """The re-issued root is the same CRL issuer (name and key): one CRL sequence, written
    under the old serial too (the URL issuing CAs made before name in their distribution
    point), so that file never goes stale; monitoring watches the one sequence, not a
    dead copy of it that would turn critical once its nextUpdate passed."""
    home_cli = run_cli
    passphrase = ["--passphrase-file", str(home_cli.passphrase_file)]
    assert home_cli("init", "--name", "Example Internal CA", *passphrase).exit_code == 0
    old_root = x509.load_pem_x509_certificate((home_cli.home / "certs" / "root.crt").read_bytes())
    named = f"{old_root.serial_number:x}.crl"  # what issuing CAs made until now name
    assert home_cli("rotate", "root", "--same-key", *passphrase).exit_code == 0
    new_serial = format(
        x509.load_pem_x509_certificate(
            (home_cli.home / "certs" / "root.crt").read_bytes()
        ).serial_number,
        "x",
    )
    assert f"{new_serial}.crl" != named
    result = home_cli("crl", "--root", *passphrase)
    assert result.exit_code == 0, result.stderr
    crl_dir = home_cli.home / "crl"
    newest = (crl_dir / f"{new_serial}.crl").read_bytes()
    assert (crl_dir / named).read_bytes() == newest == (crl_dir / "root.crl").read_bytes()

    items = json.loads(home_cli("check", "--json").output)["items"]
    root_crls = [i["serial"] for i in items if i["kind"] == "crl" and "Root" in i["label"]]
    assert root_crls == [new_serial]
    prometheus = home_cli("check", "--format", "prometheus").output
    gauges = [
        line for line in prometheus.splitlines()
        if line.startswith("privca_crl_next_update_timestamp_seconds{") and "Root" in line
    ]  # fmt: skip
    assert len(gauges) == 1 and new_serial in gauges[0]
