"""A CA home with a few certificates, and helpers to back it up and read archives."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority
from privca.x509.encoding import serial_hex
from tests.conftest import Cli


@pytest.fixture
def home(run_cli: Cli) -> Path:
    """A two-tier CA made with `privca init`, two certificates issued, one revoked, a CRL."""
    secret = str(run_cli.passphrase_file)
    assert run_cli("init", "--name", "Backup Test CA", "--passphrase-file", secret).exit_code == 0
    ca = CertificateAuthority.open(run_cli.home, run_cli.passphrase_file.read_bytes().strip())
    try:
        ca.issue(["one.corp.internal"])
        revoked = ca.issue(["two.corp.internal"])
        ca.revoke(serial_hex(revoked.serial), reason="keyCompromise")
    finally:
        ca.close()
    assert run_cli("crl", "--passphrase-file", secret).exit_code == 0
    return run_cli.home


@pytest.fixture
def backup(run_cli: Cli, home: Path, tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(100))

    def make(*extra: str) -> Path:
        out = tmp_path / f"backup{next(counter)}.tar.gz"
        result = run_cli("backup", "--out", str(out), *extra)
        assert result.exit_code == 0, result.stderr
        return out

    return make


def members(archive: Path) -> dict[str, bytes]:
    """Every member of an archive with its bytes (read with the standard tarfile)."""
    with tarfile.open(archive, "r:gz") as tar:
        found: dict[str, bytes] = {}
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            found[info.name] = extracted.read() if extracted else b""
        return found


def manifest_of(archive: Path) -> dict[str, object]:
    return json.loads(members(archive)["manifest.json"])


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A plain .tar.gz (no privca seal), for hostile archives."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
