"""What install refuses or serializes: parallel runs of the store's tool, a root outside
its validity, and a store location any user can write."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from privca.cli.main import cli
from privca.trust import read_anchor
from privca.trust.linux import bundle_holds
from tests.trust.support import DEBIAN, debian_bundle, make_ca, snapshot


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "trust", *args])


def root_valid(path: Path, start: dt.timedelta, end: dt.timedelta) -> Path:
    """A root valid from now+start to now+end."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, path.stem)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + start)
        .not_valid_after(now + end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_parallel_installs_all_succeed(debian_root: Path, tmp_path: Path) -> None:
    """update-ca-certificates takes no lock: six at once collided on its temporary
    bundle (chmod: cannot access ca-certificates.crt.new) and half of them exited 3."""
    roots = [make_ca(tmp_path / f"ca{n}", f"Parallel CA {n}", "root.crt").path for n in range(6)]
    argv = [sys.executable, "-m", "privca", "--home", str(tmp_path / "no-ca"), "trust",
            "install", "--stores", "system", "--system-root", str(debian_root)]  # fmt: skip
    running = [
        subprocess.Popen([*argv, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for root in roots
    ]
    results = [(p.wait(), p.stderr.read().decode() if p.stderr else "") for p in running]
    for process in running:
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    assert [code for code, _ in results] == [0] * 6, results
    bundle = debian_bundle(debian_root)
    assert all(bundle_holds(bundle, read_anchor(root).der) for root in roots)


def test_an_expired_root_is_refused(debian_root: Path, tmp_path: Path) -> None:
    root = root_valid(tmp_path / "expired.crt", -dt.timedelta(days=400), -dt.timedelta(days=1))
    before = snapshot(debian_root)
    result = invoke(tmp_path, "install", str(root), "--stores", "system",
                    "--system-root", str(debian_root))  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("privca: error: the root CN=expired expired on"), lines
    assert lines[1].startswith("  hint: install the CA's current root"), lines
    assert snapshot(debian_root) == before


def test_a_root_not_valid_yet_is_installed_with_a_warning(
    debian_root: Path, tmp_path: Path
) -> None:
    root = root_valid(tmp_path / "future.crt", dt.timedelta(days=10), dt.timedelta(days=400))
    result = invoke(tmp_path, "install", str(root), "--stores", "system",
                    "--system-root", str(debian_root))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "privca: warning: the root CN=future is not valid until" in result.stderr
    assert bundle_holds(debian_bundle(debian_root), read_anchor(root).der)


@pytest.mark.parametrize("target", ["anchors", "nssdb", "nss-file"])
def test_a_store_any_user_can_write_is_refused_and_nothing_changes(
    debian_root: Path, nss_db: Path, tmp_path: Path, target: str
) -> None:
    root = make_ca(tmp_path / "ca", "Shared Store CA", "root.crt").path
    shared = {
        "anchors": debian_root / DEBIAN.anchors_dir,
        "nssdb": nss_db,
        "nss-file": nss_db / "cert9.db",
    }[target]
    shared.chmod(0o777 if shared.is_dir() else 0o666)
    before = snapshot(debian_root), snapshot(nss_db)
    for verb in ("install", "uninstall"):
        result = invoke(tmp_path, verb, str(root), "--stores", "system,nss",
                        "--system-root", str(debian_root), "--nss-db", str(nss_db))  # fmt: skip
        assert result.exit_code == 3, result.output
        assert "is writable by any user" in result.stderr and str(shared) in result.stderr
        assert (snapshot(debian_root), snapshot(nss_db)) == before
