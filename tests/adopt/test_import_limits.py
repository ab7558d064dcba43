"""Serials and CRL numbers an old CA's records hold that no CRL, and no store, can carry:
refused at import by file (and line), exit 2, nothing written. They were taken in (exit
0), and then every `privca crl` failed (exit 70) or the import itself did."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adopt.conftest import Runbook, run
from tests.conftest import Cli, assert_user_error, tree_snapshot

ZERO = "R\t290307112958Z\t261203112959Z\t00\tunknown\t/CN=zero\n"
LONG = "R\t290307112958Z\t261203112959Z\t" + "7F" * 40 + "\tunknown\t/CN=long\n"
TOO_MANY_FOR_THE_STORE = "0100000000000000000000\n"  # crlnumber: the *next* number


def _append_index(line: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        index = directory / "index.txt"
        index.write_text(index.read_text() + line)

    return damage


def _crlnumber(text: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        (directory / "crlnumber").write_text(text)

    return damage


CASES = {
    # with serial 0 `audit verify` said TAMPERED on the untouched store, too
    "serial-zero": (_append_index(ZERO), "serial 00 is not positive"),
    "serial-over-20-octets": (_append_index(LONG), "is longer than 20 octets"),
    "crl-number-over-2^63": (_crlnumber(TOO_MANY_FOR_THE_STORE), "crlnumber' gives CRL number"),
}


@pytest.mark.parametrize(("damage", "fragment"), list(CASES.values()), ids=list(CASES))
def test_easyrsa_records_no_crl_can_carry_are_refused(
    run_cli: Cli, easyrsa_pki: Path, damage: Callable[[Path], None], fragment: str
) -> None:
    damage(easyrsa_pki)
    before = tree_snapshot(easyrsa_pki)
    result = run_cli(
        "import", "easyrsa", str(easyrsa_pki), "--new-passphrase-file", str(run_cli.passphrase_file)
    )
    assert_user_error(result, fragment)
    if "serial" in fragment:
        assert "index.txt' line " in result.stderr
    assert not run_cli.home.exists()
    assert tree_snapshot(easyrsa_pki) == before


@pytest.mark.parametrize(("damage", "fragment"), list(CASES.values()), ids=list(CASES))
def test_openssl_records_no_crl_can_carry_are_refused(
    run_cli: Cli, runbook: Runbook, damage: Callable[[Path], None], fragment: str
) -> None:
    damage(runbook.ca_dir)
    result = run_cli(*runbook.import_args("--new-passphrase-file", str(run_cli.passphrase_file)))
    assert_user_error(result, fragment)
    assert not run_cli.home.exists()


def test_a_certificate_file_with_serial_zero_is_refused(run_cli: Cli, runbook: Runbook) -> None:
    """Not in index.txt, only a file given with --certs: the same limit, naming it."""
    directory = runbook.ca_dir
    run(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "zero.key", "-subj", "/CN=zero.corp.internal", "-out", "zero.csr",
        cwd=directory,
    )  # fmt: skip
    run(
        "x509", "-req", "-in", "zero.csr", "-CA", "certs/ca.crt", "-CAkey", "private/ca.key",
        "-set_serial", "0", "-days", "30", "-out", "zero.crt", cwd=directory,
    )  # fmt: skip
    args = runbook.import_args(
        "--new-passphrase-file", str(run_cli.passphrase_file),
        "--certs", str(directory / "zero.crt"),
    )  # fmt: skip
    assert_user_error(run_cli(*args), "zero.crt': its serial is not positive")
    assert not run_cli.home.exists()
    # A real process: cryptography's warning about the serial printed two lines above it.
    command = [sys.executable, "-m", "privca", "--home", str(run_cli.home), *args]
    process = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.startswith("privca: error: "), process.stderr
    assert not run_cli.home.exists()


def test_a_crl_whose_number_the_store_cannot_continue_is_refused(
    run_cli: Cli, runbook: Runbook
) -> None:
    """`openssl ca -gencrl` numbered from a crlnumber of 2^63 - 1: privca's next CRL would
    be 2^63, more than the store keeps."""
    directory = runbook.ca_dir
    config = directory / "openssl.cnf"
    config.write_text(
        config.read_text().replace(
            "[policy_anything]",
            "crlnumber = $dir/crlnumber\ndefault_crl_days = 30\n[policy_anything]",
        )
    )
    (directory / "crlnumber").write_text("7FFFFFFFFFFFFFFF\n")
    run("ca", "-config", "openssl.cnf", "-gencrl", "-out", "crl.pem", cwd=directory)
    (directory / "crlnumber").write_text("02\n")  # the CRL alone is past the limit
    result = run_cli(*runbook.import_args("--new-passphrase-file", str(run_cli.passphrase_file)))
    assert_user_error(result, "crl.pem' gives CRL number 8000000000000000")
    assert not run_cli.home.exists()
