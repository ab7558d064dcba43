"""`privca backup`, `backup verify` and `restore` on a real SQLite home, checked with the
real openssl: what the archive holds, its modes, that it never holds a key in the clear,
that any changed byte is caught, and that a restored home works."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from privca._time import utcnow
from privca.authority import CertificateAuthority
from privca.backup.archive import read_archive
from privca.backup.create import holds_clear_private_key
from privca.errors import CheckFailed, InputError
from tests.backup.conftest import manifest_of, members
from tests.conftest import PASSPHRASE, Cli, assert_user_error, openssl


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_archive_holds_the_home_and_a_manifest_of_hashes(
    backup: Callable[..., Path], home: Path
) -> None:
    archive = backup()
    assert _mode(archive) == 0o600
    found = members(archive)
    assert next(iter(found)) == "manifest.json"
    manifest = json.loads(found.pop("manifest.json"))
    assert set(found) == set(manifest["members"])
    assert {
        "home/privca.toml",
        "home/certs/root.crt",
        "home/certs/issuing.crt",
        "home/crl/root.crl",
        "home/private/root.key",
        "home/private/issuing.key",
        "store/privca.db",
    } <= set(found)
    for name, data in found.items():
        assert manifest["members"][name]["sha256"] == hashlib.sha256(data).hexdigest(), name
    # The key files byte for byte, as they are on disk (never decrypted).
    assert found["home/private/root.key"] == (home / "private" / "root.key").read_bytes()
    assert manifest["schema_revision"] and manifest["privca_version"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created_at"])
    assert manifest["summary"]["certificates"] == 2
    assert sorted(manifest["keys"]["included"]) == [
        "private/eab.key",
        "private/issuing.key",
        "private/root.key",
    ]


def test_no_member_ever_holds_a_clear_private_key(backup: Callable[..., Path]) -> None:
    for name, data in members(backup()).items():
        for line in data.splitlines():
            if line.startswith(b"-----BEGIN") and b"PRIVATE KEY" in line:
                assert line == b"-----BEGIN ENCRYPTED PRIVATE KEY-----", name


def test_exclude_keys_leaves_private_out(backup: Callable[..., Path]) -> None:
    archive = backup("--exclude-keys")
    assert not [name for name in members(archive) if name.startswith("home/private/")]
    assert sorted(manifest_of(archive)["keys"]["excluded"]) == [  # type: ignore[index]
        "private/eab.key",
        "private/issuing.key",
        "private/root.key",
    ]


def test_a_ca_with_clear_keys_is_refused_unless_keys_are_excluded(
    run_cli: Cli, tmp_path: Path
) -> None:
    assert run_cli("init", "--name", "Clear CA", "--no-passphrase").exit_code == 0
    out = tmp_path / "b.tar.gz"
    result = run_cli("backup", "--out", str(out))
    assert_user_error(result, "is not encrypted")
    assert not out.exists()
    result = run_cli("backup", "--out", str(out), "--exclude-keys")
    assert result.exit_code == 0, result.stderr
    assert not any(holds_clear_private_key(data) for data in members(out).values())


@pytest.mark.parametrize(
    "data, clear",
    [
        (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", False),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n", True),
        (b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n", True),
        (b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n", True),
        (b"  -----BEGIN OPENSSH PRIVATE KEY-----  \r\n", True),
        (b"-----BEGIN CERTIFICATE-----\n", False),
    ],
    ids=["pkcs8-encrypted", "pkcs8", "sec1", "legacy-pem", "openssh-indented", "certificate"],
)
def test_clear_key_detection(data: bytes, clear: bool) -> None:
    assert holds_clear_private_key(data) is clear


def test_restore_brings_back_a_working_ca(
    run_cli: Cli, backup: Callable[..., Path], home: Path, tmp_path: Path
) -> None:
    archive = backup()
    target = tmp_path / "restored"
    result = run_cli("restore", str(archive), "--home", str(target))
    assert result.exit_code == 0, result.stderr
    assert "old" in result.stdout and "May be missing" in result.stderr
    assert _mode(target) == 0o700
    assert _mode(target / "private") == 0o700
    assert _mode(target / "privca.toml") == 0o600
    assert _mode(target / "privca.db") == 0o600
    for key in (target / "private").iterdir():
        assert _mode(key) == 0o400, key
    assert _mode(target / "certs" / "root.crt") == 0o644
    # The same CA: same certificates, same keys, and it signs again.
    assert (target / "certs" / "root.crt").read_bytes() == (
        home / "certs" / "root.crt"
    ).read_bytes()
    ca = CertificateAuthority.open(target, PASSPHRASE)
    try:
        assert len(ca.inventory.find(now=utcnow())) == 2
        issued = ca.issue(["three.corp.internal"])
    finally:
        ca.close()
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(issued.certificate.public_bytes(Encoding.PEM))
    check = openssl(
        "verify",
        "-CAfile",
        str(target / "certs" / "root.crt"),
        "-untrusted",
        str(target / "certs" / "issuing.crt"),
        str(leaf),
    )
    assert check.returncode == 0, check.stderr
    # The restore is in the store's trail.
    with sqlite3.connect(target / "privca.db") as connection:
        actions = [
            row[0] for row in connection.execute("SELECT action FROM audit_log ORDER BY seq")
        ]
    assert actions[-2:] == ["restored", "issued"] or actions[-1] == "restored", actions


def test_verify_reports_what_the_backup_holds(run_cli: Cli, backup: Callable[..., Path]) -> None:
    archive = backup()
    result = run_cli("backup", "verify", str(archive))
    assert result.exit_code == 0, result.stderr
    assert "OK" in result.stdout
    assert "certificates: 2" in result.stdout
    assert "last CRL number" in result.stdout
    document = json.loads(run_cli("backup", "verify", str(archive), "--json").stdout)
    assert document["summary"]["certificates"] == 2
    assert document["certificates_verified"] == 2


def test_verify_of_a_backup_without_keys_passes_and_says_so(
    run_cli: Cli, backup: Callable[..., Path]
) -> None:
    result = run_cli("backup", "verify", str(backup("--exclude-keys")))
    assert result.exit_code == 0, result.stderr
    assert "not in the archive: " in result.stdout


def test_every_changed_byte_fails_verify(backup: Callable[..., Path], tmp_path: Path) -> None:
    """Every header and trailer byte, and a spread of bytes between: each one changed
    makes the archive fail (exit 1), never pass, never exit 2."""
    archive = backup()
    data = archive.read_bytes()
    positions = sorted({*range(120), *range(len(data) - 16, len(data)), *range(0, len(data), 31)})
    damaged = tmp_path / "damaged.tar.gz"
    for position in positions:
        changed = bytearray(data)
        changed[position] ^= 0x01
        damaged.write_bytes(changed)
        into = tmp_path / f"into{position}"
        into.mkdir()
        with pytest.raises(CheckFailed):
            read_archive(damaged, into)


def test_one_changed_byte_fails_the_verify_command(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    data = bytearray(backup().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(data)
    result = run_cli("backup", "verify", str(damaged))
    assert_user_error(result, "corrupt", code=1)
    result = run_cli("restore", str(damaged), "--home", str(tmp_path / "never"))
    assert_user_error(result, "corrupt", code=1)
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


def test_standard_tools_read_the_archive(backup: Callable[..., Path], tmp_path: Path) -> None:
    archive = backup()
    with tarfile.open(archive, "r:gz") as tar:
        assert "store/privca.db" in tar.getnames()
    assert os.system(f"gzip -t '{archive}'") == 0


def test_restored_store_matches_the_manifest(backup: Callable[..., Path], tmp_path: Path) -> None:
    archive = backup()
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(InputError):
        read_archive(tmp_path / "missing.tar.gz", into)
    manifest = read_archive(archive, into)
    with sqlite3.connect(into / "store" / "privca.db") as connection:
        count = connection.execute(
            "SELECT count(*) FROM certificates WHERE der IS NOT NULL"
        ).fetchone()[0]
    assert count == manifest.summary["certificates"] == 2


def test_backup_json_is_the_manifest(run_cli: Cli, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "j.tar.gz"
    result = run_cli("backup", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["path"] == str(out) and document["size"] == out.stat().st_size
    assert document["members"] == manifest_of(out)["members"]


def test_eab_secrets_stay_sealed_in_the_archive(run_cli: Cli, home: Path, tmp_path: Path) -> None:
    """The store's EAB HMAC keys are copied sealed, as they are on disk: the secret a
    client was given appears in no member, in any encoding."""
    import base64
    import gzip

    created = run_cli("acme", "eab", "create", "--label", "web", "--json")
    assert created.exit_code == 0, created.stderr
    secret = json.loads(created.stdout)["hmac_key"]
    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    out = tmp_path / "eab.tar.gz"
    assert run_cli("backup", "--out", str(out)).exit_code == 0
    assert json.loads(created.stdout)["kid"].encode() in members(out)["store/privca.db"]
    plain = gzip.decompress(out.read_bytes())
    for form in (secret.encode(), raw, raw.hex().encode(), base64.b64encode(raw)):
        assert form not in plain


def test_modes_hold_under_umask_000(backup: Callable[..., Path], tmp_path: Path) -> None:
    """Neither the archive nor the restored home depends on the umask for its modes."""
    import subprocess
    import sys

    archive = backup()
    out = tmp_path / "umask.tar.gz"
    target = tmp_path / "umask-home"
    home = archive.parent / "home"
    script = (
        f"umask 000 && {sys.executable} -m privca --home '{home}' backup --out '{out}' && "
        f"{sys.executable} -m privca restore '{out}' --home '{target}'"
    )
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _mode(out) == 0o600
    for path in [target, *target.rglob("*")]:
        assert not _mode(path) & 0o022, path  # nothing group- or world-writable
    assert _mode(target) == 0o700 and _mode(target / "private") == 0o700
    assert _mode(target / "privca.db") == 0o600 and _mode(target / "privca.toml") == 0o600


def test_check_keys_proves_the_passphrase_opens_the_backup(
    run_cli: Cli, backup: Callable[..., Path], tmp_path: Path
) -> None:
    import dataclasses

    from privca.backup.archive import Manifest, Member, build_archive

    archive = backup()
    secret = str(run_cli.passphrase_file)
    result = run_cli("backup", "verify", str(archive), "--check-keys", "--passphrase-file", secret)
    assert result.exit_code == 0, result.stderr
    assert "keys open and match their CAs: private/root.key, private/issuing.key" in result.stdout

    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    wrong.chmod(0o600)
    result = run_cli(
        "backup", "verify", str(archive), "--check-keys", "--passphrase-file", str(wrong)
    )
    assert_user_error(result, "passphrase")
    # Named as the archive holds it, not by its copy in a scratch directory gone since.
    assert "does not decrypt private/root.key of the backup" in result.stderr, result.stderr
    assert "privca-verify-" not in result.stderr

    # A key file swapped for another (still encrypted, same passphrase): it opens, but it
    # is not the key of the certificate: exit 1.
    files = members(archive)
    manifest = Manifest.parse(files.pop("manifest.json"))
    files["home/private/issuing.key"] = files["home/private/root.key"]
    hashed = {n: Member(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
    swapped = tmp_path / "swapped.tar.gz"
    swapped.write_bytes(build_archive(dataclasses.replace(manifest, members=hashed), files))
    assert run_cli("backup", "verify", str(swapped)).exit_code == 0  # hashes alone agree
    result = run_cli("backup", "verify", str(swapped), "--check-keys", "--passphrase-file", secret)
    assert_user_error(result, "does not match", code=1)


def test_check_keys_opens_the_audit_key_too(
    run_cli: Cli, home: Path, backup: Callable[..., Path], tmp_path: Path
) -> None:
    """The audit key swapped for another key of the home passed --check-keys, and the
    restored CA then failed its first checkpoint (exit 3)."""
    import dataclasses

    from privca.backup.archive import Manifest, Member, build_archive

    secret = str(run_cli.passphrase_file)
    assert run_cli("audit", "checkpoint", "--passphrase-file", secret).exit_code == 0
    archive = backup()
    files = members(archive)
    [audit_key] = [n for n in files if n.startswith("home/private/audit-")]
    result = run_cli("backup", "verify", str(archive), "--check-keys", "--passphrase-file", secret)
    assert result.exit_code == 0, result.stderr
    assert audit_key.removeprefix("home/") in result.stdout

    manifest = Manifest.parse(files.pop("manifest.json"))
    files[audit_key] = files["home/private/issuing.key"]
    hashed = {n: Member(hashlib.sha256(d).hexdigest(), len(d)) for n, d in files.items()}
    swapped = tmp_path / "swapped-audit.tar.gz"
    swapped.write_bytes(build_archive(dataclasses.replace(manifest, members=hashed), files))
    result = run_cli("backup", "verify", str(swapped), "--check-keys", "--passphrase-file", secret)
    assert_user_error(result, "does not match", code=1)
