"""`privca import openssl`: a runbook CA moves in, and every verb works on it at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from privca._time import utcnow
from privca.store.authorities import crl_number_floor
from tests.adopt.conftest import OLD_PASSPHRASE, Runbook, build_runbook_ca
from tests.conftest import PASSPHRASE, Cli, openssl


def adopt(run_cli: Cli, runbook: Runbook, *extra: str) -> None:
    result = run_cli(
        *runbook.import_args("--new-passphrase-file", str(run_cli.passphrase_file), *extra)
    )
    assert result.exit_code == 0, result.output + result.stderr


def listed(run_cli: Cli) -> dict[str, dict]:
    result = run_cli("list", "--json")
    assert result.exit_code == 0, result.stderr
    return {doc["names"][0]: doc for doc in json.loads(result.stdout)}


def issue(run_cli: Cli, name: str, out: Path) -> Path:
    result = run_cli(
        "issue", name, "--out", str(out), "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.output + result.stderr
    return out / f"{name}.crt"


def test_old_certificates_appear_with_status_and_expiry(run_cli: Cli, runbook: Runbook) -> None:
    adopt(run_cli, runbook)
    docs = listed(run_cli)
    assert set(docs) == {"db.corp.internal", "web1.corp.internal", "web2.corp.internal"}
    assert docs["web1.corp.internal"]["serial"] == "1"
    assert docs["web1.corp.internal"]["status"] == "valid"
    assert docs["web2.corp.internal"]["status"] == "revoked"
    assert docs["web2.corp.internal"]["revocation_reason"] == "keyCompromise"
    assert docs["db.corp.internal"]["status"] == "valid"
    # No EKU in the runbook's certificates: they may be used for anything.
    assert docs["db.corp.internal"]["profile"] == "server-client"
    db = x509.load_pem_x509_certificate((runbook.services / "db.corp.internal.crt").read_bytes())
    assert docs["db.corp.internal"]["serial"] == format(db.serial_number, "x")
    assert docs["db.corp.internal"]["not_after"] == db.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # The revocation date is the one `openssl ca -revoke` wrote into index.txt.
    index_line = (runbook.ca_dir / "index.txt").read_text().splitlines()[1]
    revoked = index_line.split("\t")[2].split(",")[0]
    assert (
        docs["web2.corp.internal"]["revoked_at"][2:]
        .replace("-", "")
        .replace("T", "")
        .replace(":", "")
        == revoked
    )


def test_home_is_single_tier_with_the_original_root(run_cli: Cli, runbook: Runbook) -> None:
    adopt(run_cli, runbook)
    home = run_cli.home
    assert (home / "certs" / "root.crt").read_bytes() == runbook.ca_cert.read_bytes()
    assert "single_tier = true" in (home / "privca.toml").read_text()
    assert "permitted = []" in (home / "privca.toml").read_text()
    key = home / "private" / "root.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    assert stat.S_IMODE((home / "private").stat().st_mode) == 0o700
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The re-encrypted key is still the CA's key, and OpenSSL reads it.
    spki = openssl("pkey", "-in", str(key), "-passin", f"pass:{PASSPHRASE.decode()}", "-pubout")
    original = openssl("x509", "-in", str(runbook.ca_cert), "-noout", "-pubkey")
    assert spki.returncode == 0 and spki.stdout == original.stdout


def test_new_certificate_verifies_against_the_untouched_root(
    run_cli: Cli, runbook: Runbook, tmp_path: Path
) -> None:
    adopt(run_cli, runbook)
    crt = issue(run_cli, "new.corp.internal", tmp_path)
    plain = openssl("verify", "-CAfile", str(runbook.ca_cert), str(crt))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    # The runbook root has no keyUsage: strict verification refuses, as doctor says.
    strict = openssl("verify", "-x509_strict", "-CAfile", str(runbook.ca_cert), str(crt))
    assert strict.returncode != 0 and "key usage" in strict.stdout + strict.stderr
    doctor = run_cli("doctor", "--json")
    assert doctor.exit_code == 1
    codes = {f["code"]: f for f in json.loads(doctor.stdout)}
    assert codes["ca-no-key-usage"]["severity"] == "warning"
    assert "rotate issuing` alone does not help" in codes["ca-no-key-usage"]["fix"]
    assert codes["sequential-serials"]["severity"] == "warning"


def test_revoking_an_old_certificate_puts_it_in_the_next_crl(
    run_cli: Cli, runbook: Runbook
) -> None:
    adopt(run_cli, runbook)
    serial = listed(run_cli)["db.corp.internal"]["serial"]
    assert run_cli("revoke", serial, "--reason", "superseded").exit_code == 0
    result = run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file))
    assert result.exit_code == 0, result.stderr
    text = openssl("crl", "-in", str(run_cli.home / "crl" / "current.pem"), "-noout", "-text")
    assert serial.upper() in text.stdout
    assert "Serial Number: 02" in text.stdout  # revoked before the adoption
    assert "Key Compromise" in text.stdout and "Superseded" in text.stdout
    check = openssl(
        "crl",
        "-in",
        str(run_cli.home / "crl" / "current.pem"),
        "-CAfile",
        str(runbook.ca_cert),
        "-noout",
    )
    assert check.returncode == 0 and "verify OK" in check.stderr + check.stdout


def test_renewing_an_old_certificate(run_cli: Cli, runbook: Runbook, tmp_path: Path) -> None:
    adopt(run_cli, runbook)
    serial = listed(run_cli)["db.corp.internal"]["serial"]
    result = run_cli(
        "renew",
        serial,
        "--out",
        str(tmp_path),
        "--passphrase-file",
        str(run_cli.passphrase_file),
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["replaces"] == serial
    crt = tmp_path / "db.corp.internal.crt"
    assert openssl("verify", "-CAfile", str(runbook.ca_cert), str(crt)).returncode == 0
    statuses = {d["serial"]: d["status"] for d in json.loads(run_cli("list", "--json").stdout)}
    assert statuses[serial] == "superseded"


def test_rotate_issuing_gives_two_tiers_under_the_same_root(
    run_cli: Cli, runbook: Runbook, tmp_path: Path
) -> None:
    adopt(run_cli, runbook)
    result = run_cli("rotate", "issuing", "--passphrase-file", str(run_cli.passphrase_file))
    assert result.exit_code == 0, result.stderr
    assert "single_tier = false" in (run_cli.home / "privca.toml").read_text()
    crt = issue(run_cli, "after.corp.internal", tmp_path)
    issuing = str(run_cli.home / "certs" / "issuing.crt")
    verified = openssl("verify", "-CAfile", str(runbook.ca_cert), "-untrusted", issuing, str(crt))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # What doctor claims: a well-formed issuing CA does not satisfy strict clients, since
    # they check the root's own extensions too.
    strict = openssl(
        "verify", "-x509_strict", "-CAfile", str(runbook.ca_cert), "-untrusted", issuing, str(crt)
    )
    assert strict.returncode != 0 and "key usage" in strict.stdout + strict.stderr
    # The old certificates are still in the inventory, still valid.
    assert listed(run_cli)["web1.corp.internal"]["status"] == "valid"


def test_encrypted_runbook_key_with_passphrase_file(
    run_cli: Cli, encrypted_runbook: Runbook, tmp_path: Path
) -> None:
    old = tmp_path / "old-passphrase"
    old.write_text(OLD_PASSPHRASE + "\n")
    old.chmod(0o600)
    adopt(run_cli, encrypted_runbook, "--passphrase-file", str(old), "--name", "Corp CA")
    assert 'name = "Corp CA"' in (run_cli.home / "privca.toml").read_text()
    crt = issue(run_cli, "enc.corp.internal", tmp_path)
    assert openssl("verify", "-CAfile", str(encrypted_runbook.ca_cert), str(crt)).returncode == 0


def test_encrypted_key_passphrase_from_environment(
    run_cli: Cli, encrypted_runbook: Runbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVCA_IMPORT_PASSPHRASE", OLD_PASSPHRASE)
    monkeypatch.setenv("PRIVCA_PASSPHRASE", PASSPHRASE.decode())
    result = run_cli(*encrypted_runbook.import_args("--json"))
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["certificates"] == {"valid": 2, "expired": 0, "revoked": 1}
    assert document["encrypted_keys"] is True
    codes = {f["code"] for f in document["findings"]}
    assert "source-key-unencrypted" not in codes and "ca-no-key-usage" in codes


def test_rsa_4096_runbook_ca(run_cli: Cli, tmp_path: Path) -> None:
    """The runbook's real key size, once."""
    root = build_runbook_ca(tmp_path / "big", bits=4096)
    runbook = Runbook(root)
    adopt(run_cli, runbook)
    crt = issue(run_cli, "big.corp.internal", tmp_path)
    assert openssl("verify", "-CAfile", str(runbook.ca_cert), str(crt)).returncode == 0


def test_copyall_ca_leaf_and_loose_key_are_reported(run_cli: Cli, runbook: Runbook) -> None:
    from tests.adopt.conftest import service_certificate

    service_certificate(
        runbook.ca_dir,
        "evil.corp.internal",
        runbook.services,
        extensions=("basicConstraints=critical,CA:TRUE",),
    )
    (runbook.ca_dir / "private" / "ca.key").chmod(0o644)
    result = run_cli(
        *runbook.import_args(
            "--certs",
            str(runbook.services / "evil.corp.internal.crt"),
            "--no-passphrase",
            "--json",
        )
    )
    assert result.exit_code == 0, result.stderr
    findings = {f["code"]: f for f in json.loads(result.stdout)["findings"]}
    assert findings["leaf-is-ca"]["severity"] == "critical"
    assert "evil.corp.internal" in findings["leaf-is-ca"]["message"]
    assert findings["leaf-no-san"]["severity"] == "warning"  # evil has only a CN
    assert findings["source-key-permissions"]["severity"] == "critical"
    assert "0644" in findings["source-key-permissions"]["message"]
    doctor = json.loads(run_cli("doctor", "--json").stdout)
    assert {"leaf-is-ca", "ca-key-unencrypted"} <= {f["code"] for f in doctor}


def test_doctor_on_a_fresh_privca_home_has_no_problems(run_cli: Cli) -> None:
    init = run_cli("init", "--name", "Fresh CA", "--passphrase-file", str(run_cli.passphrase_file))
    assert init.exit_code == 0
    result = run_cli("doctor")
    assert result.exit_code == 0, result.output
    assert "[info]" in result.output and "[warning]" not in result.output


def test_real_process(tmp_path: Path, runbook: Runbook, passphrase_file: Path) -> None:
    home = tmp_path / "proc-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "privca",
            "--home",
            str(home),
            *runbook.import_args("--new-passphrase-file", str(passphrase_file)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Adopted CA 'Example Runbook CA'" in result.stdout
    assert "[warning]" in result.stdout
    assert (home / "certs" / "root.crt").read_bytes() == runbook.ca_cert.read_bytes()


def test_crl_numbers_continue_the_old_sequence(run_cli: Cli, runbook: Runbook) -> None:
    """`openssl ca` keeps the next CRLNumber in crlnumber: privca's first CRL continues
    above it (at its next number, or privca's time floor when that is higher), so clients
    holding the old CA's last CRL see privca's as newer."""
    ahead = crl_number_floor(utcnow()) + 10**9  # an old CA far ahead of the floor
    (runbook.ca_dir / "crlnumber").write_text(f"{ahead:x}\n")
    adopt(run_cli, runbook)
    result = run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["number"] == ahead
