"""The key of a certificate the store calls valid is never lost, and a file is never
replaced without --force:

- the key is written (fsynced) in --out before anything is issued, so a full directory
  fails first with nothing recorded (before, issue/renew recorded the certificate, renew
  marked the old one superseded, and then exited 3 without the key);
- the files are placed by link() without --force, so a file another run wrote since the
  check is not replaced (before, two `issue --out` at once both succeeded, the second
  silently overwriting the first's key);
- if the files cannot all be placed after the commit, the key is kept as NAME.SERIAL.key
  and the error says where it is and how to get the certificate."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import PASSPHRASE, Cli, assert_user_error, write

NAME = "db.corp.internal"


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


def _serials(cli: Cli) -> dict[str, str]:
    """serial -> status of every certificate for NAME."""
    result = cli("list", "--name", NAME)
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()[1:]]
    return {row[0]: row[-1] for row in rows}


def _kept_key_matches(cli: Cli, out: Path, stderr: str) -> str:
    """The serial the error names: its key is NAME.SERIAL.key and matches the certificate
    `privca show SERIAL --pem` gives back."""
    match = re.search(r"certificate ([0-9a-f]+) was issued and recorded", stderr)
    assert match, stderr
    serial = match.group(1)
    kept = out / f"{NAME}.{serial}.key"
    assert f"its key is kept in '{kept}'" in stderr
    assert f"privca show {serial} --pem" in stderr
    shown = cli("show", serial, "--pem")
    assert shown.exit_code == 0, shown.stderr
    certificate = x509.load_pem_x509_certificate(shown.stdout.encode())
    key = serialization.load_pem_private_key(kept.read_bytes(), None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    return serial


def _no_temporaries(out: Path) -> None:
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


@contextlib.contextmanager
def _appears_after_the_check(fifo: Path, action: object) -> Iterator[None]:
    """The passphrase comes through a FIFO: privca opens it after checking its outputs,
    so `action` (another run's file appearing) runs exactly between check and write."""
    os.mkfifo(fifo, 0o600)

    def other_run() -> None:
        with open(fifo, "wb") as writer:
            action()  # type: ignore[operator]
            writer.write(PASSPHRASE + b"\n")

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=60)


def test_a_file_written_by_another_run_since_the_check_is_not_replaced(
    home_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    theirs = b"another run's certificate\n"
    fifo = tmp_path / "passphrase"
    with _appears_after_the_check(fifo, lambda: write(out / f"{NAME}.crt", theirs)):
        result = home_cli("issue", NAME, "--out", str(out), "--passphrase-file", str(fifo))
    assert_user_error(result, "already exists")
    assert (out / f"{NAME}.crt").read_bytes() == theirs
    # Nothing of this run's at the targets, its key kept beside them.
    assert not (out / f"{NAME}.key").exists() and not (out / f"{NAME}.chain.pem").exists()
    serial = _kept_key_matches(home_cli, out, result.stderr)
    assert _serials(home_cli) == {serial: "valid"}
    _no_temporaries(out)


def test_with_force_a_file_that_cannot_be_replaced_keeps_the_key(
    home_cli: Cli, tmp_path: Path
) -> None:
    """A directory appears where the chain goes (after the check that refuses one): the
    write fails after the commit, exit 3, and the key is kept."""
    out = tmp_path / "out"
    out.mkdir()
    fifo = tmp_path / "passphrase"
    with _appears_after_the_check(fifo, lambda: (out / f"{NAME}.chain.pem").mkdir()):
        result = home_cli(
            "issue", NAME, "--out", str(out), "--force", "--passphrase-file", str(fifo)
        )
    assert_user_error(result, "cannot write", code=3)
    _kept_key_matches(home_cli, out, result.stderr)
    _no_temporaries(out)


@contextlib.contextmanager
def _tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs at `mount` (mounting needs root: skipped otherwise), unmounted lazily
    after (a descriptor still open in this process must not leave it mounted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        timeout=30,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (as the review used)."""
    with _tmpfs(tmp_path / "small", "size=64k") as mount:
        yield mount


def _fill(directory: Path, leave_pages: int) -> None:
    """Fill the file system with 4 KiB files, then free `leave_pages` of them."""
    fillers: list[Path] = []
    with contextlib.suppress(OSError):
        while True:
            path = directory / f"filler{len(fillers)}"
            fillers.append(path)
            path.write_bytes(b"\0" * 4096)
    for path in fillers[-1 - leave_pages :]:
        path.unlink()


def test_issue_into_a_full_directory_records_nothing(home_cli: Cli, small_tmpfs: Path) -> None:
    _fill(small_tmpfs, leave_pages=0)
    result = home_cli("issue", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert_user_error(result, "No space left", code=3)
    assert "issued and recorded" not in result.stderr
    assert _serials(home_cli) == {}
    _no_temporaries(small_tmpfs)


def test_issue_keeps_the_key_when_only_the_key_fits(home_cli: Cli, small_tmpfs: Path) -> None:
    _fill(small_tmpfs, leave_pages=1)
    result = home_cli("issue", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert_user_error(result, "No space left", code=3)
    serial = _kept_key_matches(home_cli, small_tmpfs, result.stderr)
    assert _serials(home_cli) == {serial: "valid"}
    _no_temporaries(small_tmpfs)


def test_a_kept_key_survives_the_next_run_when_no_inode_is_left(
    home_cli: Cli, tmp_path: Path
) -> None:
    """With no inode left, link() failed too and the key stayed under its temporary name,
    where the next run's cleanup of killed runs' leftovers removed it (review): the key of
    a certificate the store calls valid was gone. A rename needs no inode."""
    with _tmpfs(tmp_path / "few", "size=1m,nr_inodes=3") as mount:
        out = mount / "out"
        out.mkdir()
        result = home_cli("issue", NAME, "--out", str(out), *_pass(home_cli))
        assert_user_error(result, "No space left", code=3)
        serial = _kept_key_matches(home_cli, out, result.stderr)
        _no_temporaries(out)
        subprocess.run(["mount", "-o", "remount,nr_inodes=100", str(mount)], check=True)
        again = home_cli("issue", NAME, "--out", str(out), "--force", *_pass(home_cli))
        assert again.exit_code == 0, again.stderr
        assert (out / f"{NAME}.{serial}.key").exists()


def test_renew_into_a_full_directory_records_nothing(home_cli: Cli, small_tmpfs: Path) -> None:
    issued = home_cli("issue", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert issued.exit_code == 0, issued.stderr
    before = {p.name: p.read_bytes() for p in small_tmpfs.iterdir()}
    _fill(small_tmpfs, leave_pages=0)
    result = home_cli("renew", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert_user_error(result, "No space left", code=3)
    assert list(_serials(home_cli).values()) == ["valid"]  # not superseded, no successor
    for name, data in before.items():
        assert (small_tmpfs / name).read_bytes() == data


def test_renew_keeps_the_new_key_when_only_the_key_fits(home_cli: Cli, small_tmpfs: Path) -> None:
    issued = home_cli("issue", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert issued.exit_code == 0, issued.stderr
    _fill(small_tmpfs, leave_pages=1)
    result = home_cli("renew", NAME, "--out", str(small_tmpfs), *_pass(home_cli))
    assert_user_error(result, "No space left", code=3)
    serial = _kept_key_matches(home_cli, small_tmpfs, result.stderr)
    assert _serials(home_cli)[serial] == "valid"
    _no_temporaries(small_tmpfs)
