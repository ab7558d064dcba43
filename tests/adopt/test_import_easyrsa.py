"""`privca import easyrsa`: a PKI built with Debian's easy-rsa 3 moves in."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from tests.conftest import Cli, assert_user_error, openssl, tree_snapshot


def adopt(run_cli: Cli, pki: Path, *extra: str) -> dict:
    result = run_cli(
        "import",
        "easyrsa",
        str(pki),
        "--new-passphrase-file",
        str(run_cli.passphrase_file),
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_statuses_profiles_and_revocation_come_in(run_cli: Cli, easyrsa_pki: Path) -> None:
    document = adopt(run_cli, easyrsa_pki)
    assert document["certificates"] == {"valid": 1, "expired": 0, "revoked": 1}
    assert document["name"] == "Example EasyRSA CA"
    docs = {d["names"][0]: d for d in json.loads(run_cli("list", "--json").stdout)}
    # easy-rsa puts the name in the SAN of servers only; the client's CN is its name.
    assert docs["srv1"]["profile"] == "server" and docs["srv1"]["status"] == "valid"
    assert docs["cli1"]["profile"] == "client" and docs["cli1"]["status"] == "revoked"
    assert docs["cli1"]["revocation_reason"] == "keyCompromise"
    line = next(
        row for row in (easyrsa_pki / "index.txt").read_text().splitlines() if row[0] == "R"
    )
    assert docs["cli1"]["serial"] == line.split("\t")[3].lower().lstrip("0")
    crt = x509.load_pem_x509_certificate((easyrsa_pki / "issued" / "srv1.crt").read_bytes())
    assert docs["srv1"]["serial"] == format(crt.serial_number, "x")
    codes = {f["code"] for f in document["findings"]}
    assert "source-service-keys" in codes  # easy-rsa keeps service keys beside the CA key
    assert "ca-no-key-usage" not in codes  # easy-rsa's root has keyUsage


def test_new_certificates_verify_and_doctor_explains_strict_failure(
    run_cli: Cli, easyrsa_pki: Path, tmp_path: Path
) -> None:
    adopt(run_cli, easyrsa_pki)
    result = run_cli(
        "issue",
        "vpn.corp.internal",
        "--out",
        str(tmp_path),
        "--passphrase-file",
        str(run_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.stderr
    crt = str(tmp_path / "vpn.corp.internal.crt")
    ca = str(easyrsa_pki / "ca.crt")
    verified = openssl("verify", "-CAfile", ca, crt)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # easy-rsa 3.1's root has keyUsage but a non-critical basicConstraints, which strict
    # verification refuses; doctor must say so rather than claim the root is fine.
    strict = openssl("verify", "-x509_strict", "-CAfile", ca, crt)
    assert strict.returncode != 0 and "not marked critical" in strict.stdout + strict.stderr
    doctor = run_cli("doctor", "--json")
    assert doctor.exit_code == 1
    codes = {f["code"] for f in json.loads(doctor.stdout)}
    assert "ca-basic-constraints-not-critical" in codes


def test_crl_keeps_the_old_revocation_and_continues(run_cli: Cli, easyrsa_pki: Path) -> None:
    adopt(run_cli, easyrsa_pki)
    assert run_cli("revoke", "srv1", "--reason", "cessationOfOperation").exit_code == 0
    assert run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file)).exit_code == 0
    pem = str(run_cli.home / "crl" / "current.pem")
    text = openssl("crl", "-in", pem, "-noout", "-text").stdout
    assert "Key Compromise" in text and "Cessation Of Operation" in text
    old = openssl("crl", "-in", str(easyrsa_pki / "crl.pem"), "-noout", "-text").stdout
    for serial in [line.split()[-1] for line in old.splitlines() if "Serial Number" in line]:
        assert serial in text
    assert (
        openssl("crl", "-in", pem, "-CAfile", str(easyrsa_pki / "ca.crt"), "-noout").returncode == 0
    )


def test_revoked_without_certificate_file_stays_on_the_crl(run_cli: Cli, easyrsa_pki: Path) -> None:
    for path in (easyrsa_pki / "revoked" / "certs_by_serial").glob("*.crt"):
        path.unlink()
    document = adopt(run_cli, easyrsa_pki)
    assert document["revocations_without_certificate"] == 1
    assert run_cli("crl", "--passphrase-file", str(run_cli.passphrase_file)).exit_code == 0
    text = openssl("crl", "-in", str(run_cli.home / "crl" / "current.pem"), "-noout", "-text")
    assert text.stdout.count("Serial Number") == 1


def test_missing_ca_key_names_the_file(run_cli: Cli, easyrsa_pki: Path) -> None:
    (easyrsa_pki / "private" / "ca.key").unlink()
    before = tree_snapshot(easyrsa_pki)
    result = run_cli("import", "easyrsa", str(easyrsa_pki), "--no-passphrase")
    assert_user_error(result, "private/ca.key' does not exist")
    assert not run_cli.home.exists()
    assert tree_snapshot(easyrsa_pki) == before


def test_not_a_pki_directory(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("import", "easyrsa", str(tmp_path / "nope"), "--no-passphrase")
    assert_user_error(result, "does not exist")
    assert not run_cli.home.exists()
