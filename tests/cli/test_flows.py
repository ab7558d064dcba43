"""The operator's path through the CLI, in process."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from privca.cli.main import COMMANDS, cli
from tests.conftest import PASSPHRASE, Cli, assert_user_error, openssl, tree_snapshot


def test_init_prints_where_things_are(run_cli: Cli) -> None:
    result = run_cli(
        "init", "--name", "Example Internal CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0
    assert "root.crt" in result.output
    assert stat.S_IMODE((run_cli.home / "private").stat().st_mode) == 0o700


def test_init_passphrase_from_environment(run_cli: Cli, monkeypatch) -> None:
    monkeypatch.setenv("PRIVCA_PASSPHRASE", PASSPHRASE.decode())
    assert run_cli("init", "--name", "Env CA").exit_code == 0
    assert b"ENCRYPTED" in (run_cli.home / "private" / "issuing.key").read_bytes()


def test_init_without_any_passphrase_source_is_refused(run_cli: Cli) -> None:
    assert_user_error(run_cli("init", "--name", "X"), "no passphrase")
    assert not run_cli.home.exists()


def test_init_no_passphrase_warns(run_cli: Cli) -> None:
    result = run_cli("init", "--name", "Plain CA", "--no-passphrase")
    assert result.exit_code == 0
    assert "unencrypted" in result.stderr
    assert b"BEGIN PRIVATE KEY" in (run_cli.home / "private" / "root.key").read_bytes()


def test_init_json(run_cli: Cli) -> None:
    result = run_cli(
        "init",
        "--name",
        "J CA",
        "--single-tier",
        "--key-type",
        "rsa-2048",
        "--passphrase-file",
        str(run_cli.passphrase_file),
        "--json",
    )
    doc = json.loads(result.output)
    assert doc["issuing"] is None and doc["encrypted_keys"] is True


def test_issue_writes_key_cert_chain_with_modes(home_cli: Cli, out_dir: Path) -> None:
    result = home_cli(
        "issue",
        "db.corp.internal",
        "10.0.0.5",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    key, crt, chain = (out_dir / f"db.corp.internal.{s}" for s in ("key", "crt", "chain.pem"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(crt.stat().st_mode) == 0o644
    certs = x509.load_pem_x509_certificates(chain.read_bytes())
    assert len(certs) == 2 and certs[0] == x509.load_pem_x509_certificate(crt.read_bytes())
    verified = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        str(home_cli.home / "certs" / "root.crt"),
        "-untrusted",
        str(home_cli.home / "certs" / "issuing.crt"),
        "-verify_hostname",
        "db.corp.internal",
        str(crt),
    )
    assert verified.returncode == 0, verified.stderr


def test_issue_refuses_name_outside_policy_and_writes_nothing(home_cli: Cli, out_dir: Path) -> None:
    result = home_cli(
        "issue",
        "db.corp.internal",
        "db",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, "name 'db' is outside the permitted DNS subtrees: corp.internal")
    assert list(out_dir.iterdir()) == []
    assert json.loads(home_cli("list", "--json").output) == []


def test_issue_p12(home_cli: Cli, out_dir: Path, tmp_path: Path) -> None:
    p12_pass = tmp_path / "p12.txt"
    p12_pass.write_text("bundle pass\n")
    p12_pass.chmod(0o600)
    result = home_cli(
        "issue",
        "app.corp.internal",
        "--p12",
        "--p12-passphrase-file",
        str(p12_pass),
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    bundle = (out_dir / "app.corp.internal.p12").read_bytes()
    key, cert, extra = pkcs12.load_key_and_certificates(bundle, b"bundle pass")
    assert key is not None and cert is not None and len(extra) == 2
    parsed = openssl(
        "pkcs12",
        "-in",
        str(out_dir / "app.corp.internal.p12"),
        "-passin",
        "pass:bundle pass",
        "-nokeys",
    )
    assert parsed.returncode == 0, parsed.stderr


def test_issue_refuses_existing_output(home_cli: Cli, out_dir: Path) -> None:
    (out_dir / "db.corp.internal.crt").write_text("keep me")
    result = home_cli(
        "issue",
        "db.corp.internal",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, "already exists")
    assert (out_dir / "db.corp.internal.crt").read_text() == "keep me"
    assert json.loads(home_cli("list", "--json").output) == []


def test_csr_then_sign(home_cli: Cli, out_dir: Path) -> None:
    service = out_dir / "service"
    result = home_cli("csr", "mail.corp.internal", "10.0.0.9", "--out", str(service))
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE((service / "mail.corp.internal.key").stat().st_mode) == 0o600
    signed_dir = out_dir / "signed"
    result = home_cli(
        "sign",
        str(service / "mail.corp.internal.csr"),
        "--out",
        str(signed_dir),
        "--profile",
        "server",
        "--json",
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    (doc,) = json.loads(result.output)
    assert doc["names"] == ["mail.corp.internal", "10.0.0.9"] and doc["profile"] == "server"
    verify = home_cli(
        "verify",
        str(signed_dir / "mail.corp.internal.crt"),
        "--name",
        "10.0.0.9",
        "--key",
        str(service / "mail.corp.internal.key"),
    )
    assert verify.exit_code == 0 and "OK" in verify.output


def test_sign_many_in_one_command(home_cli: Cli, out_dir: Path) -> None:
    csrs = []
    for i in range(25):
        home_cli("csr", f"svc{i}.corp.internal", "--out", str(out_dir / "csr"))
        csrs.append(str(out_dir / "csr" / f"svc{i}.corp.internal.csr"))
    result = home_cli(
        "sign",
        *csrs,
        "--out",
        str(out_dir / "crt"),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    assert len(list((out_dir / "crt").glob("*.crt"))) == 25
    assert len(json.loads(home_cli("list", "--json").output)) == 25


def test_sign_is_all_or_nothing(home_cli: Cli, out_dir: Path) -> None:
    home_cli("csr", "good.corp.internal", "--out", str(out_dir))
    home_cli("csr", "bad.example.com", "--out", str(out_dir))
    result = home_cli(
        "sign",
        str(out_dir / "good.corp.internal.csr"),
        str(out_dir / "bad.example.com.csr"),
        "--out",
        str(out_dir / "crt"),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert_user_error(result, "bad.example.com")
    assert not (out_dir / "crt").exists()
    assert json.loads(home_cli("list", "--json").output) == []


def test_sign_to_a_named_file(home_cli: Cli, out_dir: Path) -> None:
    home_cli("csr", "one.corp.internal", "--out", str(out_dir))
    target = out_dir / "served.pem"
    result = home_cli(
        "sign",
        str(out_dir / "one.corp.internal.csr"),
        "--out",
        str(target),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    assert target.exists() and (out_dir / "served.chain.pem").exists()


def test_list_and_show_json_shape(home_cli: Cli, out_dir: Path) -> None:
    home_cli(
        "issue",
        "db.corp.internal",
        "--days",
        "10",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    home_cli(
        "issue",
        "web.corp.internal",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    listed = json.loads(home_cli("list", "--json").output)
    assert [d["names"] for d in listed] == [["db.corp.internal"], ["web.corp.internal"]]
    for doc in listed:
        assert set(doc) >= {
            "serial",
            "names",
            "profile",
            "issuer",
            "not_before",
            "not_after",
            "status",
        }
        assert doc["serial"] == doc["serial"].lower()
        assert doc["not_after"].endswith("Z") and doc["status"] == "valid"
    expiring = json.loads(home_cli("list", "--expiring", "30d", "--json").output)
    assert [d["names"] for d in expiring] == [["db.corp.internal"]]
    shown = json.loads(home_cli("show", "web.corp.internal", "--json").output)
    assert shown["serial"] == listed[1]["serial"] and "BEGIN CERTIFICATE" in shown["pem"]
    pem = home_cli("show", listed[0]["serial"], "--pem").output
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    table = home_cli("list").output
    assert "db.corp.internal" in table and "valid" in table


def test_verify_failures_exit_1_with_reason(home_cli: Cli, out_dir: Path, tmp_path: Path) -> None:
    home_cli(
        "issue",
        "db.corp.internal",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    crt = str(out_dir / "db.corp.internal.crt")
    wrong_name = home_cli("verify", crt, "--name", "web.corp.internal")
    assert wrong_name.exit_code == 1 and "FAILED" in wrong_name.output
    other = tmp_path / "other"
    home_cli("csr", "x.corp.internal", "--out", str(other))
    wrong_key = home_cli("verify", crt, "--key", str(other / "x.corp.internal.key"), "--json")
    assert wrong_key.exit_code == 1
    assert json.loads(wrong_key.output)["key_matches"] is False


def test_verify_with_ca_file_needs_no_home(home_cli: Cli, out_dir: Path, tmp_path: Path) -> None:
    home_cli(
        "issue",
        "db.corp.internal",
        "--out",
        str(out_dir),
        "--passphrase-file",
        str(home_cli.passphrase_file),
    )
    root = tmp_path / "root.crt"
    root.write_text(home_cli("export", "root").output)
    result = home_cli(
        "verify",
        str(out_dir / "db.corp.internal.chain.pem"),
        "--ca-file",
        str(root),
        home=tmp_path / "no-ca-here",
    )
    assert result.exit_code == 0, result.output + result.stderr


def test_export(home_cli: Cli, tmp_path: Path) -> None:
    chain = home_cli("export", "chain").output
    assert chain.count("BEGIN CERTIFICATE") == 2
    target = tmp_path / "root.pem"
    assert home_cli("export", "root", "--out", str(target)).exit_code == 0
    assert target.read_text().count("BEGIN CERTIFICATE") == 1


def test_quickstart(tmp_path: Path, run_cli: Cli) -> None:
    result = run_cli("quickstart", "--dir", str(tmp_path / "qs"))
    assert result.exit_code == 0, result.stderr
    assert "TLS" in result.output
    assert (tmp_path / "qs" / "certs" / "localhost.crt").exists()


def test_quickstart_refuses_a_live_ca_home(home_cli: Cli) -> None:
    """`quickstart --dir $PRIVCA_HOME` wrote the demo's unencrypted localhost key into the
    home's certs/ and a second CA into ca/."""
    before = tree_snapshot(home_cli.home)
    result = home_cli("quickstart", "--dir", str(home_cli.home))
    assert_user_error(result, "is a CA home")
    assert tree_snapshot(home_cli.home) == before


def test_help_does_not_import_cryptography() -> None:
    code = (
        "import sys; from privca.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'cryptography' not in sys.modules and 'sqlalchemy' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_real_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(tmp_path / "none"), "list"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("privca: error: no CA found")
    assert "Traceback" not in result.stderr


def test_unknown_serial_is_exit_2(home_cli: Cli) -> None:
    assert_user_error(home_cli("show", "deadbeefdeadbeef"), "no certificate")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_loads_and_has_help(command: str) -> None:
    """The lazy command table points at modules and attributes that exist."""
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "Usage:" in result.output


def test_list_hides_what_privca_renews_by_itself(home_cli: Cli) -> None:
    from privca.authority import CertificateAuthority

    ca = CertificateAuthority.open(home_cli.home, PASSPHRASE)
    ca.issue(["ca.corp.internal"], profile="privca-server", days=30)
    ca.issue_ocsp_responder(ca.issuing_record())
    ca.issue(["db.corp.internal"])
    ca.close()
    assert [d["names"] for d in json.loads(home_cli("list", "--json").output)] == [
        ["db.corp.internal"]
    ]
    assert len(json.loads(home_cli("list", "--all", "--json").output)) == 3


def test_quickstart_runs_again_with_its_ca_and_a_fresh_certificate(
    run_cli: Cli, tmp_path: Path
) -> None:
    directory = tmp_path / "qs"
    first = run_cli("quickstart", "--dir", str(directory))
    assert first.exit_code == 0, first.stdout + first.stderr
    root = (directory / "ca" / "certs" / "root.crt").read_bytes()
    cert = directory / "certs" / "localhost.crt"
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    second = run_cli("quickstart", "--dir", str(directory))
    assert second.exit_code == 0, second.stdout + second.stderr
    assert "Reusing the demo CA" in second.stdout
    assert (directory / "ca" / "certs" / "root.crt").read_bytes() == root
    assert x509.load_pem_x509_certificate(cert.read_bytes()).serial_number != serial
    listed = json.loads(run_cli("list", "--json", home=directory / "ca").stdout)
    assert sorted(d["status"] for d in listed) == ["superseded", "valid"]


def test_quickstart_never_suggests_trusting_the_demo_root(run_cli: Cli, tmp_path: Path) -> None:
    """Its next steps said `privca trust install  # trust the root on this machine`: the
    system, NSS and Java stores would trust a root without name constraints whose keys lie
    unencrypted in ./privca-quickstart, so reading them meant minting any site's
    certificate. Trusting a root is suggested for the real CA only."""
    result = run_cli("quickstart", "--dir", str(tmp_path / "qs"))
    assert result.exit_code == 0, result.stderr
    assert "never install it in a trust store" in result.stdout
    for line in result.stdout.splitlines():
        if "privca trust install" in line:
            assert line.startswith("For a real CA: privca init "), line
