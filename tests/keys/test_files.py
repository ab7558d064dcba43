import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from privca.errors import InsecurePermissions, KeyUnavailable, WrongPassphrase
from privca.keys.files import PBKDF2_ROUNDS, encrypt_pkcs8, read_ca_key, write_ca_key
from privca.keys.types import KeyType

PASS = b"correct horse battery"


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    return directory


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_encrypted_key_reads_back_with_cryptography_and_openssl(
    key_type: KeyType, key_dir: Path
) -> None:
    key = key_type.generate()
    path = key_dir / "ca.key"
    write_ca_key(path, key, PASS)
    assert path.stat().st_mode & 0o777 == 0o400
    data = path.read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in data
    assert load_pem_private_key(data, PASS).public_key() == key.public_key()
    result = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", f"pass:{PASS.decode()}", "-pubout"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "PUBLIC KEY" in result.stdout


def test_kdf_is_pbes2_with_at_least_600k_rounds(key_dir: Path) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), PASS)
    parsed = subprocess.run(
        ["openssl", "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "PBES2" in parsed and "PBKDF2" in parsed and "hmacWithSHA256" in parsed
    assert "aes-256-cbc" in parsed
    rounds_hex = next(line for line in parsed.splitlines() if "INTEGER" in line).split(":")[-1]
    assert int(rounds_hex, 16) == PBKDF2_ROUNDS >= 600_000


def test_each_encryption_uses_fresh_salt_and_iv() -> None:
    key = KeyType.EC_P256.generate()
    assert encrypt_pkcs8(key, PASS, rounds=1000) != encrypt_pkcs8(key, PASS, rounds=1000)


def test_wrong_passphrase_is_a_user_error(key_dir: Path) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), PASS)
    with pytest.raises(WrongPassphrase, match="does not decrypt"):
        read_ca_key(path, b"wrong passphrase")


def test_unencrypted_key_when_asked(key_dir: Path) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), None)
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    assert read_ca_key(path, None) is not None


@pytest.mark.parametrize("mode", [0o440, 0o404, 0o600 | 0o004, 0o644], ids=oct)
def test_loose_key_file_mode_is_refused_with_the_fix(key_dir: Path, mode: int) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), PASS)
    path.chmod(mode)
    with pytest.raises(InsecurePermissions) as caught:
        read_ca_key(path, PASS)
    assert caught.value.exit_code == 3
    assert f"chmod 400 '{path}'" in (caught.value.hint or "")


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777], ids=oct)
def test_loose_private_directory_is_refused(key_dir: Path, mode: int) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), PASS)
    key_dir.chmod(mode)
    with pytest.raises(InsecurePermissions, match="private key directory") as caught:
        read_ca_key(path, PASS)
    assert "chmod 700" in (caught.value.hint or "")


def test_symlinked_key_is_refused(key_dir: Path, tmp_path: Path) -> None:
    real = key_dir / "real.key"
    write_ca_key(real, KeyType.EC_P256.generate(), PASS)
    link = key_dir / "ca.key"
    link.symlink_to(real)
    with pytest.raises(InsecurePermissions, match="symlink"):
        read_ca_key(link, PASS)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_key_owned_by_someone_else_is_refused(key_dir: Path) -> None:
    path = key_dir / "ca.key"
    write_ca_key(path, KeyType.EC_P256.generate(), PASS)
    os.chown(path, 65534, 65534)
    with pytest.raises(InsecurePermissions, match="owned by uid 65534"):
        read_ca_key(path, PASS)


def test_missing_key_is_environment_error(key_dir: Path) -> None:
    with pytest.raises(KeyUnavailable):
        read_ca_key(key_dir / "nope.key", PASS)
