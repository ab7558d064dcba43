"""A local-development CA as mkcert users expect it: constrained to localhost and the
loopback networks, one `issue` for `localhost 127.0.0.1 ::1`, and OpenSSL (which checks
name constraints) accepts the certificate for each of the three names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli, openssl, require_tool

NAMES = ("localhost", "127.0.0.1", "::1")


@pytest.fixture
def dev_certificate(run_cli: Cli, tmp_path: Path) -> Path:
    init = run_cli(
        "init", "--name", "dev", "--permit", "localhost", "--permit", "127.0.0.0/8",
        "--permit", "::1/128", "--passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert init.exit_code == 0, init.stderr
    out = tmp_path / "certs"
    issued = run_cli(
        "issue", *NAMES, "--out", str(out), "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert issued.exit_code == 0, issued.stderr
    return out / "localhost.crt"


@pytest.mark.parametrize(
    "check",
    [
        ["-verify_hostname", "localhost"],
        ["-verify_ip", "127.0.0.1"],
        ["-verify_ip", "::1"],
    ],
    ids=["localhost", "127.0.0.1", "::1"],
)
def test_openssl_accepts_each_name_under_the_constraints(
    run_cli: Cli, dev_certificate: Path, check: list[str]
) -> None:
    require_tool("openssl")
    certs = run_cli.home / "certs"
    result = openssl(
        "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(certs / "root.crt"),
        "-untrusted", str(certs / "issuing.crt"), *check, str(dev_certificate),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_outside_the_dev_constraints_are_refused(run_cli: Cli, dev_certificate: Path) -> None:
    """The control: the same CA refuses anything but loopback, and OpenSSL agrees about a
    name the constraints do not cover."""
    for name in ("db.corp.internal", "10.0.0.5", "localhost.example.com"):
        result = run_cli("issue", name, "--passphrase-file", str(run_cli.passphrase_file))
        assert result.exit_code == 2, (name, result.stderr)
    certs = run_cli.home / "certs"
    mismatch = openssl(
        "verify", "-x509_strict", "-CAfile", str(certs / "root.crt"), "-untrusted",
        str(certs / "issuing.crt"), "-verify_hostname", "db.corp.internal", str(dev_certificate),
    )  # fmt: skip
    assert mismatch.returncode != 0
