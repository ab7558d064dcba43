"""--cn on issue, csr and sign: the subject CN a client certificate needs (PostgreSQL maps
it to a user), refused where a profile or the policy does not allow it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.conftest import Cli, assert_user_error, tree_snapshot


def common_names(path: Path) -> list[str]:
    data = path.read_bytes()
    if b"CERTIFICATE REQUEST" in data:
        subject = x509.load_pem_x509_csr(data).subject
    else:
        subject = x509.load_pem_x509_certificate(data).subject
    return [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def test_issue_a_client_certificate_for_a_database_user(home_cli: Cli, out_dir: Path) -> None:
    result = home_cli(
        "issue", "email:alice@corp.internal", "--profile", "client", "--cn", "alice",
        "--out", str(out_dir), "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    certificate = out_dir / "alice@corp.internal.crt"
    assert common_names(certificate) == ["alice"]
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    # With a subject, the SAN is no longer critical (RFC 5280 4.2.1.6).
    assert not cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_an_email_certificate_without_cn_has_an_empty_subject(home_cli: Cli, out_dir: Path) -> None:
    result = home_cli(
        "issue", "email:bob@corp.internal", "--profile", "client", "--out", str(out_dir),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    cert = x509.load_pem_x509_certificate((out_dir / "bob@corp.internal.crt").read_bytes())
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_a_server_cn_that_is_one_of_the_names_takes_its_canonical_form(
    home_cli: Cli, out_dir: Path
) -> None:
    result = home_cli(
        "issue", "db.corp.internal", "10.0.0.5", "--cn", "10.0.0.5", "--out", str(out_dir),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert common_names(out_dir / "db.corp.internal.crt") == ["10.0.0.5"]


def test_csr_with_cn_then_sign_with_cn(home_cli: Cli, out_dir: Path) -> None:
    made = home_cli("csr", "email:carol@corp.internal", "--cn", "carol", "--out", str(out_dir))
    assert made.exit_code == 0, made.stderr
    csr = out_dir / "carol@corp.internal.csr"
    assert common_names(csr) == ["carol"]
    assert "privca sign carol@corp.internal.csr --cn carol" in made.output
    signed = home_cli(
        "sign", str(csr), "--profile", "client", "--cn", "carol", "--out", str(out_dir),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    assert "not copied" not in signed.stderr
    assert common_names(out_dir / "carol@corp.internal.crt") == ["carol"]


def test_a_csrs_own_cn_is_not_copied_and_the_operator_is_told(home_cli: Cli, out_dir: Path) -> None:
    made = home_cli("csr", "email:dave@corp.internal", "--cn", "postgres", "--out", str(out_dir))
    assert made.exit_code == 0, made.stderr
    signed = home_cli(
        "sign", str(out_dir / "dave@corp.internal.csr"), "--profile", "client",
        "--out", str(out_dir), "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    assert "asks for subject CN 'postgres'; not copied (give --cn to set it)" in signed.stderr
    assert common_names(out_dir / "dave@corp.internal.crt") == []


def test_a_hostile_cn_in_a_csr_is_escaped_in_the_warning(
    home_cli: Cli, out_dir: Path, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x\x1b]52;c;AAAA\x07")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("eve@corp.internal")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "eve.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    signed = home_cli(
        "sign", str(path), "--profile", "client", "--out", str(out_dir),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    assert "\x1b" not in signed.stderr and "\\x1b]52" in signed.stderr


# args -> fragment of the one-line error (exit 2, nothing written)
REFUSED = {
    "free-text-on-a-server": (
        ["db.corp.internal", "--cn", "alice"],
        "not one of the certificate's names",
    ),
    "server-cn-not-a-name": (
        ["db.corp.internal", "--profile", "server", "--cn", "other.corp.internal"],
        "not one of the certificate's names",
    ),
    "cn-outside-the-policy": (
        ["email:a@corp.internal", "--profile", "client", "--cn", "www.example.com"],
        "outside the permitted DNS subtrees",
    ),
    "dotted-user-name-openssl-would-refuse": (
        ["email:a@corp.internal", "--profile", "client", "--cn", "john.doe"],
        "refused",
    ),
    "address-outside-the-policy": (
        ["email:a@corp.internal", "--profile", "client", "--cn", "192.168.1.1"],
        "outside the permitted networks",
    ),
    "too-long": (["email:a@corp.internal", "--profile", "client", "--cn", "u" * 65], "longer"),
    "control-characters": (
        ["email:a@corp.internal", "--profile", "client", "--cn", "a\x1b[2Jb"],
        "control",
    ),
    "empty": (["email:a@corp.internal", "--profile", "client", "--cn", ""], "empty"),
}


@pytest.mark.parametrize(("args", "fragment"), REFUSED.values(), ids=list(REFUSED))
def test_refused_common_names(home_cli: Cli, out_dir: Path, args: list[str], fragment: str) -> None:
    before = tree_snapshot(home_cli.home)
    result = home_cli(
        "issue", *args, "--out", str(out_dir), "--passphrase-file", str(home_cli.passphrase_file)
    )
    assert_user_error(result, fragment)
    assert "\x1b" not in result.stderr
    assert list(out_dir.iterdir()) == []
    after = tree_snapshot(home_cli.home)
    assert {k for k in after if not k.startswith("privca.db")} == {
        k for k in before if not k.startswith("privca.db")
    }


def test_sign_cn_for_several_csrs_is_refused(home_cli: Cli, out_dir: Path) -> None:
    for name in ("a.corp.internal", "b.corp.internal"):
        assert home_cli("csr", name, "--out", str(out_dir)).exit_code == 0
    result = home_cli(
        "sign", str(out_dir / "a.corp.internal.csr"), str(out_dir / "b.corp.internal.csr"),
        "--cn", "a.corp.internal", "--out", str(out_dir),
        "--passphrase-file", str(home_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, "--cn names one certificate")


def test_renew_keeps_the_cn(home_cli: Cli, out_dir: Path) -> None:
    pass_file = str(home_cli.passphrase_file)
    issued = home_cli(
        "issue", "email:frank@corp.internal", "--profile", "client", "--cn", "Frank",
        "--out", str(out_dir), "--passphrase-file", pass_file,
    )  # fmt: skip
    assert issued.exit_code == 0, issued.stderr
    renewed = home_cli(
        "renew", "email:frank@corp.internal", "--out", str(out_dir / "renewed"),
        "--passphrase-file", pass_file,
    )  # fmt: skip
    assert renewed.exit_code == 0, renewed.stderr
    assert common_names(out_dir / "renewed" / "frank@corp.internal.crt") == ["Frank"]
