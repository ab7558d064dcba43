"""`privca check --format nagios` as a Nagios plugin: one status line whose perfdata
(after the first '|') is privca's alone, and UNKNOWN (exit 3) for anything it cannot
answer, bad arguments included (a bare exit 2 reads as CRITICAL)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import PASSPHRASE, Cli, write

FORGED = "db | certificates=0;;;0 critical=0;;;0"


def signed_by_the_ca(
    cli: Cli,
    path: Path,
    common_name: str,
    left: dt.timedelta = dt.timedelta(days=2),
    lifetime: dt.timedelta = dt.timedelta(days=32),
) -> Path:
    """A certificate the CA's issuing key signed outside privca (as `import certificates`
    takes them): its name is whatever was in the request, and it expires `left` from now
    after `lifetime` (check scales its windows down to a short lifetime)."""
    issuing = x509.load_pem_x509_certificate((cli.home / "certs/issuing.crt").read_bytes())
    key = serialization.load_pem_private_key(
        (cli.home / "private/issuing.key").read_bytes(), PASSPHRASE
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuing.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + left - lifetime)
        .not_valid_after(now + left)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return write(path, leaf.public_bytes(serialization.Encoding.PEM))


def test_a_pipe_in_a_certificate_name_adds_no_perfdata(home_cli: Cli, tmp_path: Path) -> None:
    leaf = signed_by_the_ca(home_cli, tmp_path / "forged.crt", FORGED)
    imported = home_cli("import", "certificates", str(leaf))
    assert imported.exit_code == 0, imported.output + imported.stderr

    result = home_cli("check", "--format", "nagios")
    assert result.exit_code == 2, result.output
    (line,) = result.stdout.splitlines()
    status, perfdata = line.split("|", 1)  # Nagios splits at the first '|'
    assert status.startswith("PRIVCA CRITICAL - 1 certificates, 1 critical"), line
    assert "db \\x7c certificates=0" in status  # the name, readable, escaped
    assert perfdata.strip().startswith("certificates=1;;;0 warning=0;;;0 critical=1;;;0"), line


@pytest.mark.parametrize(
    "args",
    [
        ("--warn", "bogus"),
        ("--crit", "|x"),
        ("--warn", "7d", "--crit", "30d"),
        ("--json",),
    ],
)
def test_bad_arguments_are_unknown_for_nagios(home_cli: Cli, args: tuple[str, ...]) -> None:
    result = home_cli("check", "--format", "nagios", *args)
    assert result.exit_code == 3, result.output + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("PRIVCA UNKNOWN - "), line
    assert "|" not in line, line


@pytest.mark.parametrize("fmt", ["text", "json", "prometheus"])
def test_bad_arguments_stay_input_errors_for_other_formats(home_cli: Cli, fmt: str) -> None:
    result = home_cli("check", "--format", fmt, "--warn", "7d", "--crit", "30d")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("privca: error: --crit is longer than --warn")
    assert result.stdout == ""


HOSTILE = "\x1b[31mred\nPRIVCA OK - fine"

# Command lines click itself refuses, before `check` runs: a Nagios plugin called wrongly
# (the Monitoring Plugins guidelines: UNKNOWN, exit 3; a 2 reads as CRITICAL).
USAGE_ERRORS = [
    ("check", "--format", "nagios", "--bogus"),
    ("check", "--format=nagios", "--warn"),  # a missing value
    ("check", "--format", "nagios", "--format", "xml"),  # last one wins: a bad choice
    ("check", "--format", "nagios", "extra"),
    ("check", "--format", "nagios", "--format", HOSTILE),
    ("check", "--format", "nagios", HOSTILE),
    ("check", "--format", "nagios", "--out", "/tmp/x", f"--{HOSTILE}"),
    ("-v", "check", "--format", "nagios", "--json", "--json=yes"),  # a flag given a value
    ("--bogus", "check", "--format", "nagios"),  # the group's own options
]


def _privca(tmp_path: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """privca in its own process, as Nagios runs it: argv as given, no terminal."""
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(tmp_path / "home"), *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PRIVCA_HOME": ""},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("args", USAGE_ERRORS)
def test_usage_errors_are_unknown_for_nagios(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = _privca(tmp_path, *args)
    assert result.returncode == 3, result
    (line,) = result.stdout.decode().splitlines()
    assert line.startswith("PRIVCA UNKNOWN - "), line
    assert line.isprintable() and "|" not in line, line  # no escape, no forged perfdata
    assert result.stderr == b""


def test_a_hostile_value_is_shown_escaped_on_the_unknown_line(tmp_path: Path) -> None:
    result = _privca(tmp_path, "check", "--format", "nagios", "--format", HOSTILE)
    assert result.returncode == 3, result
    (line,) = result.stdout.decode().splitlines()  # the newline began no status line
    assert "\x1b" not in line  # the terminal escape is shown, not acted on
    assert "x1b[31mred" in line and "nPRIVCA OK - fine" in line, line


def test_an_argument_that_is_not_utf8_is_unknown_for_nagios(tmp_path: Path) -> None:
    result = _privca(tmp_path, "check", "--format", "nagios", "--warn", b"\xff7d")
    assert result.returncode == 3, result
    assert result.stdout == b"PRIVCA UNKNOWN - an argument is not UTF-8 text\n"


@pytest.mark.parametrize("fmt", ["text", "json", "prometheus"])
def test_usage_errors_stay_exit_2_for_other_formats(tmp_path: Path, fmt: str) -> None:
    for args in [("--bogus",), ("--warn",), ("extra",), (HOSTILE,)]:
        result = _privca(tmp_path, "check", "--format", fmt, *args)
        assert result.returncode == 2, result
        assert result.stdout == b""
        lines = result.stderr.decode().splitlines()
        assert lines[0].startswith("privca: error: "), lines
        assert lines[1:] and all(line.startswith("  hint: ") for line in lines[1:]), lines
        assert "\x1b" not in result.stderr.decode()


def test_a_nagios_looking_word_elsewhere_is_not_nagios(tmp_path: Path) -> None:
    # `nagios` as another option's value, or --format before the command, is no plugin.
    for args in [("check", "--out", "nagios", "--bogus"), ("--format", "nagios", "check")]:
        result = _privca(tmp_path, *args)
        assert result.returncode == 2, result
        assert result.stderr.startswith(b"privca: error: "), result
