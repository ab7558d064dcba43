"""`privca trust` through click, in process, on sandboxed stores; plus one real subprocess."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from privca.cli.main import cli
from privca.trust import read_anchor
from tests.trust.support import TestCA, snapshot


def invoke(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "trust", *args], env=env)


@pytest.fixture
def sandbox(debian_root: Path, nss_db: Path, tmp_path: Path) -> list[str]:
    """Store options that point all three stores at throwaway copies."""
    return [
        "--system-root",
        str(debian_root),
        "--nss-db",
        str(nss_db),
        "--java-truststore",
        str(tmp_path / "truststore.p12"),
    ]


def states(home: Path, root: Path, sandbox: list[str]) -> dict[str, str]:
    result = invoke(home, "status", str(root), *sandbox, "--json")
    assert result.exit_code == 0, result.output
    return {entry["store"]: entry["state"] for entry in json.loads(result.stdout)["stores"]}


def test_install_status_uninstall_across_all_stores(
    tmp_path: Path, root_ca: TestCA, sandbox: list[str], debian_root: Path
) -> None:
    before = snapshot(debian_root)
    root = str(root_ca.path)
    assert states(tmp_path, root_ca.path, sandbox) == {
        "system": "absent",
        "nss": "absent",
        "java": "absent",
    }
    assert invoke(tmp_path, "status", root, *sandbox, "--check").exit_code == 1
    result = invoke(tmp_path, "install", root, *sandbox)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(" installed ") == 3
    assert invoke(tmp_path, "status", root, *sandbox, "--check").exit_code == 0
    assert states(tmp_path, root_ca.path, sandbox) == dict.fromkeys(
        ("system", "nss", "java"), "present"
    )

    again = invoke(tmp_path, "install", root, *sandbox, "--json")
    assert {o["result"] for o in json.loads(again.stdout)["outcomes"]} == {"already-installed"}

    result = invoke(tmp_path, "uninstall", root, *sandbox)
    assert result.exit_code == 0, result.output
    assert result.stdout.count(" removed ") == 3
    assert set(states(tmp_path, root_ca.path, sandbox).values()) == {"absent"}
    assert snapshot(debian_root) == before


def test_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, root_ca: TestCA, sandbox: list[str], debian_root: Path
) -> None:
    before = snapshot(debian_root)
    result = invoke(tmp_path, "install", str(root_ca.path), *sandbox, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing changed" in result.stdout
    assert "$ write " in result.stdout and "update-ca-certificates" in result.stdout
    assert "certutil -A" in result.stdout and "keytool -importcert" in result.stdout
    assert snapshot(debian_root) == before
    assert not (tmp_path / "truststore.p12").exists()
    assert set(states(tmp_path, root_ca.path, sandbox).values()) == {"absent"}


def test_uninstall_of_a_root_not_installed_is_a_clear_exit_0(
    tmp_path: Path, root_ca: TestCA, sandbox: list[str]
) -> None:
    result = invoke(tmp_path, "uninstall", str(root_ca.path), *sandbox)
    assert result.exit_code == 0, result.output
    assert "not installed in: system,nss,java; nothing to remove" in result.stdout


def test_without_root_the_ca_in_home_is_used(tmp_path: Path, root_ca: TestCA, nss_db: Path) -> None:
    home = tmp_path / "ca"
    (home / "certs").mkdir(parents=True)
    (home / "certs/root.crt").write_bytes(root_ca.pem)
    result = invoke(home, "status", "--stores", "nss", "--nss-db", str(nss_db), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["root"]["file"] == str(home / "certs/root.crt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a certificate at all", "is not a certificate"),
        ("leaf", "is not a CA certificate"),
    ],
    ids=["missing", "garbage", "leaf"],
)
def test_bad_root_exits_2_and_touches_nothing(
    tmp_path: Path,
    root_ca: TestCA,
    sandbox: list[str],
    debian_root: Path,
    content: bytes | str | None,
    message: str,
) -> None:
    root = tmp_path / "root.crt"
    if isinstance(content, bytes):
        root.write_bytes(content)
    elif content == "leaf":
        root.write_bytes(root_ca.leaf_pem)
    before = snapshot(debian_root)
    result = invoke(tmp_path, "install", str(root), *sandbox)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("privca: error: ") and message in result.stderr
    assert snapshot(debian_root) == before
    assert not (tmp_path / "truststore.p12").exists()


def test_no_root_and_no_ca_in_home_exits_2(tmp_path: Path) -> None:
    result = invoke(tmp_path / "empty", "status")
    assert result.exit_code == 2
    assert "no CA root certificate" in result.stderr and "hint:" in result.stderr


@pytest.mark.parametrize(
    ("stores", "tool", "hint"),
    [
        ("system", "update-ca-certificates", "apt install ca-certificates"),
        ("nss", "certutil", "apt install libnss3-tools"),
        ("java", "keytool", "default-jre-headless"),
    ],
    ids=["update-ca-certificates", "certutil", "keytool"],
)
def test_missing_tool_exits_3_with_the_install_hint(
    tmp_path: Path,
    root_ca: TestCA,
    sandbox: list[str],
    debian_root: Path,
    stores: str,
    tool: str,
    hint: str,
) -> None:
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    before = snapshot(debian_root)
    env = {"PATH": str(empty_path), "JAVA_HOME": ""}
    result = invoke(tmp_path, "install", str(root_ca.path), "--stores", stores, *sandbox, env=env)
    assert result.exit_code == 3, result.output
    assert f"'{tool}' was not found on PATH" in result.stderr
    assert hint in result.stderr
    assert snapshot(debian_root) == before
    assert not (tmp_path / "truststore.p12").exists()


def _load_p12(data: bytes) -> object:
    return pkcs12.load_pkcs12(data, b"changeit").additional_certs


PARSERS: dict[str, Callable[[bytes], object]] = {
    "pem": x509.load_pem_x509_certificate,
    "der": x509.load_der_x509_certificate,
    "windows": x509.load_der_x509_certificate,
    "mobileconfig": plistlib.loads,
    "firefox-policy": json.loads,
    "k8s-configmap": yaml.safe_load,
    "trust-manager": yaml.safe_load,
    "p12-truststore": _load_p12,
}


@pytest.mark.parametrize("output_format", sorted(PARSERS))
def test_bundle_out_writes_a_file_that_parses(
    tmp_path: Path, root_ca: TestCA, output_format: str
) -> None:
    out = tmp_path / f"out.{output_format}"
    result = invoke(
        tmp_path, "bundle", str(root_ca.path), "--format", output_format, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    assert PARSERS[output_format](out.read_bytes())


def test_bundle_pem_to_stdout(tmp_path: Path, root_ca: TestCA) -> None:
    result = invoke(tmp_path, "bundle", str(root_ca.path))
    assert result.exit_code == 0
    assert result.stdout_bytes == root_ca.pem


def test_env_writes_the_bundle_and_prints_exports(
    tmp_path: Path, root_ca: TestCA, other_ca: TestCA
) -> None:
    system = tmp_path / "system.pem"
    system.write_bytes(other_ca.pem)
    bundle = tmp_path / "bundle.pem"
    args = ["env", str(root_ca.path), "--system-bundle", str(system), "--bundle", str(bundle)]
    without = invoke(tmp_path, *args)
    assert without.exit_code == 0
    assert "export NODE_EXTRA_CA_CERTS=" in without.stdout
    assert "export SSL_CERT_FILE" not in without.stdout and "--write-bundle" in without.stdout

    result = invoke(tmp_path, *args, "--write-bundle", "--format", "json")
    assert result.exit_code == 0, result.output
    variables = json.loads(result.stdout)
    assert variables["REQUESTS_CA_BUNDLE"] == str(bundle)
    assert variables["NODE_EXTRA_CA_CERTS"] == str(root_ca.path)
    assert bundle.read_bytes() == other_ca.pem + root_ca.pem


def test_env_refuses_a_der_root_for_node(tmp_path: Path, root_ca: TestCA) -> None:
    der = tmp_path / "root.der"
    der.write_bytes(read_anchor(root_ca.path).der)
    result = invoke(tmp_path, "env", str(der))
    assert result.exit_code == 2 and "only PEM" in result.stderr


def test_python_m_privca_trust_status(tmp_path: Path, root_ca: TestCA, nss_db: Path) -> None:
    env = {**os.environ, "PRIVCA_TRUST_NSS_DBS": str(nss_db)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "privca",
            "--home",
            str(tmp_path),
            "trust",
            "status",
            str(root_ca.path),
            "--stores",
            "nss",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    [report] = json.loads(completed.stdout)["stores"]
    assert report == {
        "store": "nss",
        "location": str(nss_db),
        "state": "absent",
        "probe": report["probe"],
        "note": None,
    }
