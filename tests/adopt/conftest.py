"""CAs built the hand-made way, with the real tools: the OpenSSL runbook and easy-rsa.

Each is built once per session into a template directory and copied for every test, so
a test may damage its copy (the hostile cases) without slowing the others down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool, write

EASYRSA = Path("/usr/share/easy-rsa/easyrsa")
OLD_PASSPHRASE = "runbook old passphrase"

MINIMAL_CA_CONFIG = """\
[ca]
default_ca = CA_default
[CA_default]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/certs/ca.crt
private_key = $dir/private/ca.key
default_md = sha256
default_days = 730
policy = policy_anything
copy_extensions = copy
unique_subject = no
[policy_anything]
commonName = supplied
"""


def run(*args: str, cwd: Path) -> None:
    result = _openssl_in(cwd, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)


def _openssl_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def service_certificate(
    ca_dir: Path, host: str, out: Path, *, extensions: tuple[str, ...] = ()
) -> Path:
    """The runbook's per-service steps: genpkey, req with a SAN, x509 -req copyall."""
    key, csr = out / f"{host}.key", out / f"{host}.csr"
    run(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        str(key),
        cwd=ca_dir,
    )
    addext = [item for ext in extensions for item in ("-addext", ext)]
    run(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        f"/CN={host}",
        *addext,
        "-out",
        str(csr),
        cwd=ca_dir,
    )
    crt = out / f"{host}.crt"
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        "certs/ca.crt",
        "-CAkey",
        "private/ca.key",
        "-CAcreateserial",
        "-copy_extensions",
        "copyall",
        "-days",
        "730",
        "-out",
        str(crt),
        "-passin",
        f"pass:{OLD_PASSPHRASE}",
        cwd=ca_dir,
    )
    return crt


def build_runbook_ca(root: Path, *, bits: int = 2048, encrypted: bool = False) -> Path:
    """A CA directory as the runbook makes it, plus `openssl ca` issuance and a revocation."""
    ca_dir = root / "ssl-ca"
    for sub in ("certs", "private", "newcerts"):
        (ca_dir / sub).mkdir(parents=True)
    (ca_dir / "private").chmod(0o700)
    crypt = ["-aes256", "-pass", f"pass:{OLD_PASSPHRASE}"] if encrypted else []
    run(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        f"rsa_keygen_bits:{bits}",
        *crypt,
        "-out",
        "private/ca.key",
        cwd=ca_dir,
    )
    (ca_dir / "private" / "ca.key").chmod(0o400)
    run(
        "req",
        "-new",
        "-x509",
        "-days",
        "3650",
        "-key",
        "private/ca.key",
        "-passin",
        f"pass:{OLD_PASSPHRASE}",
        "-subj",
        "/CN=Example Runbook CA",
        "-out",
        "certs/ca.crt",
        cwd=ca_dir,
    )
    services = root / "services"
    services.mkdir()
    service_certificate(
        ca_dir, "db.corp.internal", services, extensions=("subjectAltName=DNS:db.corp.internal",)
    )
    # `openssl ca`: an index.txt, sequential serials, newcerts/, one revocation.
    write(ca_dir / "openssl.cnf", MINIMAL_CA_CONFIG)
    write(ca_dir / "index.txt", "")
    write(ca_dir / "serial", "01\n")
    for host in ("web1.corp.internal", "web2.corp.internal"):
        run(
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            f"{host}.key",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host}",
            "-out",
            f"{host}.csr",
            cwd=ca_dir,
        )
        run(
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-passin",
            f"pass:{OLD_PASSPHRASE}",
            "-in",
            f"{host}.csr",
            "-out",
            str(services / f"{host}.crt"),
            cwd=ca_dir,
        )
    run(
        "ca",
        "-config",
        "openssl.cnf",
        "-passin",
        f"pass:{OLD_PASSPHRASE}",
        "-revoke",
        "newcerts/02.pem",
        "-crl_reason",
        "keyCompromise",
        cwd=ca_dir,
    )
    return root


@dataclass(frozen=True)
class Runbook:
    """One test's copy of a runbook CA: the directory and the files around it."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ssl-ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "certs" / "ca.crt"

    @property
    def services(self) -> Path:
        return self.root / "services"

    def import_args(self, *extra: str) -> list[str]:
        return [
            "import",
            "openssl",
            str(self.ca_dir),
            "--certs",
            str(self.services / "db.corp.internal.crt"),
            *extra,
        ]


def _copy(template: Path, tmp_path: Path) -> Runbook:
    target = tmp_path / "source"
    shutil.copytree(template, target, symlinks=True)
    return Runbook(target)


@pytest.fixture(scope="session")
def runbook_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("openssl")
    return build_runbook_ca(tmp_path_factory.mktemp("runbook"))


@pytest.fixture(scope="session")
def encrypted_runbook_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("openssl")
    return build_runbook_ca(tmp_path_factory.mktemp("runbook-enc"), encrypted=True)


@pytest.fixture
def runbook(runbook_template: Path, tmp_path: Path) -> Runbook:
    return _copy(runbook_template, tmp_path)


@pytest.fixture
def encrypted_runbook(encrypted_runbook_template: Path, tmp_path: Path) -> Runbook:
    return _copy(encrypted_runbook_template, tmp_path)


def easyrsa(pki: Path, *args: str) -> None:
    env = {**os.environ, "EASYRSA_BATCH": "1", "EASYRSA_PKI": str(pki)}
    result = subprocess.run(
        [str(EASYRSA), *args],
        cwd=pki.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def easyrsa_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not EASYRSA.exists():
        if os.environ.get("CI"):
            pytest.fail("easy-rsa is missing in CI; .ci/run must install it")
        pytest.skip("easy-rsa is not installed")
    require_tool("openssl")
    pki = tmp_path_factory.mktemp("easyrsa") / "pki"
    easyrsa(pki, "init-pki")
    easyrsa(pki, "--req-cn=Example EasyRSA CA", "build-ca", "nopass")
    easyrsa(pki, "build-server-full", "srv1", "nopass")
    easyrsa(pki, "build-client-full", "cli1", "nopass")
    easyrsa(pki, "revoke", "cli1", "keyCompromise")
    easyrsa(pki, "gen-crl")
    return pki


@pytest.fixture
def easyrsa_pki(easyrsa_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pki"
    shutil.copytree(easyrsa_template, target, symlinks=True)
    return target
