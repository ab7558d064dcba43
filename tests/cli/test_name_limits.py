"""The number of names in one certificate is capped by policy ([policy] max_names), for
issue and for CSRs alike: 5,000 names once made a 141 KB certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from privca.x509.build import build_csr
from privca.x509.names import parse_names
from tests.conftest import Cli, assert_user_error, tree_snapshot, write


def test_issue_and_sign_refuse_more_names_than_max_names(run_cli: Cli, tmp_path: Path) -> None:
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Limits CA", *secret).exit_code == 0
    before = tree_snapshot(run_cli.home)
    many = [f"n{i}.example" for i in range(101)]
    result = run_cli("issue", *many, "--out", str(tmp_path / "o"), *secret)
    assert_user_error(result, "101 names in one certificate exceed the policy maximum of 100")
    csr = build_csr(
        ec.generate_private_key(ec.SECP256R1()),
        parse_names([f"h{i}.example" for i in range(5000)]),
    )
    path = write(tmp_path / "huge.csr", csr.public_bytes(Encoding.PEM))
    signed = run_cli("sign", str(path), "--out", str(tmp_path / "o"), *secret)
    assert_user_error(signed, "5000 names in one certificate exceed")
    assert tree_snapshot(run_cli.home).keys() == before.keys()

    settings = run_cli.home / "privca.toml"
    settings.write_text(settings.read_text().replace("max_names = 100", "max_names = 2"))
    three = run_cli(
        "issue", "a.example", "b.example", "c.example", "--out", str(tmp_path / "o"), *secret
    )
    assert_user_error(three, "maximum of 2")
    two = run_cli("issue", "a.example", "b.example", "--out", str(tmp_path / "o"), *secret)
    assert two.exit_code == 0, two.output


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("a..b.corp.internal", "a DNS name is"),
        ("a_b.corp.internal", "a DNS name is"),
        ("email:nobody", "email:user@domain"),
        ("ip:1.2.3", "10.0.0.5"),
        ("10.0.0.256", "10.0.0.5"),
        ("uri:nope", "uri:scheme://host/path"),
    ],
)
def test_a_bad_name_says_what_its_kind_looks_like(home_cli: Cli, name: str, hint: str) -> None:
    """Name errors came without a hint line (the standard: an error and a hint)."""
    result = home_cli("issue", name, "--out", "/nonexistent/never-written")
    assert_user_error(result, "name")
    assert result.stderr.splitlines()[1].startswith("  hint: ") and hint in result.stderr
