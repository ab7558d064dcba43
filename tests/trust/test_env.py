"""`trust env`: variables that add the root, and a bundle for the ones that replace the list."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from privca.trust import TrustAnchor, read_anchor
from privca.trust.env import (
    build_combined_bundle,
    build_env_vars,
    render,
    replacing_bundle_for,
)
from privca.trust.linux import bundle_holds
from tests.trust.support import TestCA, TlsServer, python_handshake


@pytest.fixture
def anchor(root_ca: TestCA) -> TrustAnchor:
    return read_anchor(root_ca.path)


def test_without_a_complete_bundle_only_the_adding_variables_are_set(tmp_path: Path) -> None:
    names = [v.name for v in build_env_vars(tmp_path / "root.crt", None)]
    assert names == ["NODE_EXTRA_CA_CERTS", "LEGO_CA_CERTIFICATES", "LEGO_CA_SYSTEM_CERT_POOL"]


def test_shell_output_evaluates_in_bash(tmp_path: Path) -> None:
    root = tmp_path / "dir with 'quotes'" / "root.crt"
    variables = build_env_vars(root, tmp_path / "bundle.pem")
    script = render(variables, ["a comment"], "shell")
    shown = subprocess.run(
        ["bash", "-c", f'{script}\nprintf "%s|%s" "$NODE_EXTRA_CA_CERTS" "$SSL_CERT_FILE"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == f"{root}|{tmp_path / 'bundle.pem'}"


def test_systemd_output_is_a_service_drop_in_with_escaped_values(tmp_path: Path) -> None:
    variables = build_env_vars(Path('/srv/100%/"root".crt'), None)
    text = render(variables, ["why"], "systemd")
    lines = text.splitlines()
    assert "[Service]" in lines
    assert 'Environment="NODE_EXTRA_CA_CERTS=/srv/100%%/\\"root\\".crt"' in lines
    assert all(line.startswith(("#", "[Service]", "Environment=")) for line in lines)


def test_combined_bundle_keeps_the_system_cas_and_adds_the_root_once(
    anchor: TrustAnchor, other_ca: TestCA
) -> None:
    system = other_ca.pem.rstrip(b"\n")  # a bundle without a final newline
    combined = build_combined_bundle(system, anchor)
    assert combined.startswith(system) and combined.endswith(anchor.pem)
    assert build_combined_bundle(combined, anchor) == combined


def test_ssl_cert_file_pointing_at_the_combined_bundle_makes_python_trust_the_server(
    anchor: TrustAnchor, tls_server: TlsServer, tmp_path: Path, other_ca: TestCA
) -> None:
    system = tmp_path / "system.pem"
    system.write_bytes(other_ca.pem)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(build_combined_bundle(system.read_bytes(), anchor))
    assert replacing_bundle_for(anchor, bundle, system) == bundle
    assert anchor.source is not None
    variables = {v.name: v.value for v in build_env_vars(anchor.source, bundle)}
    env = {
        **os.environ,
        "SSL_CERT_FILE": variables["SSL_CERT_FILE"],
        "SSL_CERT_DIR": "/nonexistent",
    }
    assert python_handshake(tls_server.port, env).returncode == 0
    env["SSL_CERT_FILE"] = str(system)
    assert python_handshake(tls_server.port, env).returncode != 0


def test_a_system_bundle_holding_the_root_is_preferred(anchor: TrustAnchor, tmp_path: Path) -> None:
    system = tmp_path / "system.pem"
    system.write_bytes(anchor.pem)
    assert bundle_holds(system, anchor.der)
    assert replacing_bundle_for(anchor, tmp_path / "missing.pem", system) == system
    assert replacing_bundle_for(anchor, tmp_path / "missing.pem", None) is None


@pytest.mark.parametrize("output_format", ["shell", "systemd"])
def test_a_hostile_subject_or_path_stays_inside_its_comment(
    tmp_path: Path, output_format: str
) -> None:
    """The README's `eval "$(privca trust env ca.crt)"` on a root someone handed over: a
    line break in its subject (or in its file's path) ended the comment, and bash ran the
    rest of the line."""
    from click.testing import CliRunner
    from cryptography.hazmat.primitives import serialization

    from privca.cli.main import cli
    from tests.trust.support import build_root

    certificate, _key = build_root("Evil\ntouch PWNED #")
    folder = tmp_path / "roots\ntouch PWNED2 #"
    folder.mkdir()
    root = folder / "root.crt"
    root.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "home"), "trust", "env", str(root),
              "--format", output_format],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("CN=Evil\\x0atouch PWNED #" in line for line in lines)
    if output_format == "systemd":  # (shell values are single-quoted, line breaks and all)
        assert all(line.startswith(("#", "[Service]", "Environment=")) for line in lines)
    else:
        ran = subprocess.run(
            ["bash", "-c", f'{result.stdout}\nprintf "%s" "$NODE_EXTRA_CA_CERTS"'],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert ran.stdout == str(root)
        assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
