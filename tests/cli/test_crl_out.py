"""`privca crl --out FILE` says which CRL it wrote there. docs/postgresql.md builds
PostgreSQL's ssl_crl_file from it; with several issuers only the default issuer's current
CA's CRL goes to --out, and the output said nothing about FILE at all."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from tests.conftest import Cli


def test_crl_out_names_the_file_on_the_line_of_the_crl_written_there(
    home_cli: Cli, tmp_path: Path
) -> None:
    secret = ["--passphrase-file", str(home_cli.passphrase_file)]
    created = home_cli("issuer", "create", "team-a", "--permit", "a.corp.internal", *secret)
    assert created.exit_code == 0, created.stderr
    out = tmp_path / "issuing-crl.pem"
    result = home_cli("crl", "--out", str(out), *secret)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    named = [line for line in lines if line.endswith(f" and {out}")]
    assert len(named) == 1, lines
    written = x509.load_pem_x509_crl(out.read_bytes())
    issuer = written.issuer.rfc4514_string().removeprefix("CN=")
    assert f" of CN={issuer}:" in named[0]

    root_out = tmp_path / "root-crl.pem"
    result = home_cli("crl", "--root", "--out", str(root_out), *secret)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.rstrip().endswith(f" and {root_out}"), result.stdout
