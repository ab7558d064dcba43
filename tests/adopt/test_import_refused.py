"""Hostile and broken sources: a clear error naming the file (and line), exit 2, and
nothing written to the new home. The source directory is never changed either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from privca import establishment
from privca.adopt import adoption
from privca.adopt.openssl import read_openssl_ca
from privca.errors import InputError
from tests.adopt.conftest import Runbook, run
from tests.conftest import Cli, assert_user_error, tree_snapshot, write


def _malformed_index(rb: Runbook) -> list[str]:
    index = rb.ca_dir / "index.txt"
    index.write_text(index.read_text() + "V\tnot-a-time\t\t03\tunknown\t/CN=x\n")
    return []


def _bad_reason(rb: Runbook) -> list[str]:
    index = rb.ca_dir / "index.txt"
    index.write_text(index.read_text().replace(",keyCompromise", ",stolen"))
    return []


def _other_key(rb: Runbook) -> list[str]:
    run(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "other.key",
        cwd=rb.ca_dir,
    )
    return ["--key", str(rb.ca_dir / "other.key")]


def _foreign_certificate(rb: Runbook) -> list[str]:
    stranger = rb.root / "stranger"
    stranger.mkdir()
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "k.pem",
        "-subj",
        "/CN=db.corp.internal",
        "-days",
        "30",
        "-out",
        "x.crt",
        cwd=stranger,
    )
    return ["--certs", str(stranger / "x.crt")]


def _missing_ca_certificate(rb: Runbook) -> list[str]:
    rb.ca_cert.unlink()
    return []


def _glob_matching_nothing(rb: Runbook) -> list[str]:
    return ["--certs", str(rb.root / "nowhere" / "*.crt")]


def _index_contradicts_certificate(rb: Runbook) -> list[str]:
    index = rb.ca_dir / "index.txt"
    lines = index.read_text().splitlines()
    fields = lines[0].split("\t")
    fields[1] = "300101000000Z"
    index.write_text("\n".join(["\t".join(fields), *lines[1:]]) + "\n")
    return []


def _corrupt_crl(rb: Runbook) -> list[str]:
    write(rb.ca_dir / "crl.pem", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    return []


CASES: list[tuple[str, Callable[[Runbook], list[str]], str]] = [
    ("malformed-index-line", _malformed_index, "index.txt' line 3: expiry 'not-a-time'"),
    ("unknown-revocation-reason", _bad_reason, "line 2: revocation reason 'stolen'"),
    ("key-does-not-match", _other_key, "other.key' does not match the CA certificate"),
    ("foreign-certificate", _foreign_certificate, "x.crt' (CN=db.corp.internal"),
    ("missing-ca-certificate", _missing_ca_certificate, "no CA certificate in"),
    ("glob-matches-nothing", _glob_matching_nothing, "matches no file"),
    ("index-contradicts-file", _index_contradicts_certificate, "index line 1 says serial 01"),
    ("corrupt-crl", _corrupt_crl, "crl.pem' is not a valid CRL"),
]


@pytest.mark.parametrize(
    ("damage", "fragment"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_broken_source_writes_nothing(
    run_cli: Cli, runbook: Runbook, damage: Callable[[Runbook], list[str]], fragment: str
) -> None:
    extra = damage(runbook)
    source_before = tree_snapshot(runbook.root)
    result = run_cli(
        *runbook.import_args("--new-passphrase-file", str(run_cli.passphrase_file), *extra)
    )
    assert_user_error(result, fragment)
    assert not run_cli.home.exists()
    assert tree_snapshot(runbook.root) == source_before


def test_wrong_passphrase(run_cli: Cli, encrypted_runbook: Runbook, tmp_path: Path) -> None:
    wrong = write(tmp_path / "wrong", "not the passphrase\n", 0o600)
    result = run_cli(
        *encrypted_runbook.import_args(
            "--passphrase-file", str(wrong), "--new-passphrase-file", str(run_cli.passphrase_file)
        )
    )
    assert_user_error(result, "passphrase does not decrypt CA key")
    assert "ca.key" in result.stderr
    assert not run_cli.home.exists()


def test_encrypted_key_without_any_passphrase_source(
    run_cli: Cli, encrypted_runbook: Runbook
) -> None:
    result = run_cli(*encrypted_runbook.import_args("--no-passphrase"))
    assert_user_error(result, "PRIVCA_IMPORT_PASSPHRASE")
    assert not run_cli.home.exists()


def test_existing_ca_is_never_overwritten(run_cli: Cli, runbook: Runbook) -> None:
    assert run_cli("init", "--name", "There", "--no-passphrase").exit_code == 0
    before = tree_snapshot(run_cli.home)
    result = run_cli(*runbook.import_args("--no-passphrase"))
    assert_user_error(result, "a CA already exists")
    assert tree_snapshot(run_cli.home) == before


def test_existing_empty_directory_is_left_as_it_was(run_cli: Cli, runbook: Runbook) -> None:
    run_cli.home.mkdir()
    (run_cli.home / "notes.txt").write_text("mine")
    result = run_cli(*runbook.import_args("--no-passphrase", "--name", ""))
    assert_user_error(result, "CA name")
    assert tree_snapshot(run_cli.home) == {"notes.txt": b"mine"}


def test_failure_while_writing_removes_what_was_created(
    runbook: Runbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = read_openssl_ca(runbook.ca_dir, passphrase=lambda: None)

    def explode(*_args: object, **_kwargs: object) -> int:
        raise InputError("simulated failure half-way through")

    monkeypatch.setattr(establishment, "add_imported_certificates", explode)
    home = tmp_path / "half"
    with pytest.raises(InputError, match="half-way"):
        adoption.establish(plan, home, b"long enough passphrase")
    assert not home.exists()


def test_short_new_passphrase_is_refused_before_writing(
    run_cli: Cli, runbook: Runbook, tmp_path: Path
) -> None:
    short = write(tmp_path / "short", "abc\n", 0o600)
    result = run_cli(*runbook.import_args("--new-passphrase-file", str(short)))
    assert_user_error(result, "shorter than 8")
    assert not run_cli.home.exists()


def test_old_passphrase_is_asked_only_for_an_encrypted_key(runbook: Runbook) -> None:
    def never() -> bytes:
        raise AssertionError("asked for a passphrase the key does not need")

    plan = read_openssl_ca(runbook.ca_dir, passphrase=never)
    assert not plan.key_was_encrypted


def test_a_root_whose_extensions_cannot_be_read_is_refused(run_cli: Cli, runbook: Runbook) -> None:
    """An IP name constraint with host bits set (10.0.0.1/255.0.0.0): OpenSSL masks it,
    cryptography refuses to read the extensions. The import said nothing, and every
    command after it ended in an internal error (exit 70)."""
    run(
        "req", "-x509", "-new", "-key", "private/ca.key", "-subj", "/CN=Host Bits CA",
        "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "nameConstraints=critical,permitted;IP:10.0.0.1/255.0.0.0",
        "-out", "certs/ca.crt", cwd=runbook.ca_dir,
    )  # fmt: skip
    for crt in runbook.services.glob("*.crt"):
        crt.unlink()
    result = run_cli(
        "import", "openssl", str(runbook.ca_dir),
        "--new-passphrase-file", str(run_cli.passphrase_file),
    )  # fmt: skip
    assert_user_error(result, "an extension that cannot be read")
    assert "host bits" in result.stderr
    assert not run_cli.home.exists()
