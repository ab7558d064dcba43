"""The codebase's own rules: lint clean, layers respected, the library face pinned."""

import subprocess
import sys
from pathlib import Path

import pytest

import privca

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers() -> None:
    """Higher layers import lower ones, never the reverse; trust/ never needs a CA."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_api_is_pinned() -> None:
    assert privca.__all__ == [
        "AlreadyExists",
        "CertificateAuthority",
        "CheckFailed",
        "EnvironmentRefused",
        "InputError",
        "InsecurePermissions",
        "IssuancePolicy",
        "KeyType",
        "KeyUnavailable",
        "NotFound",
        "PolicyError",
        "PrivcaError",
        "Profile",
        "StoreUnavailable",
        "ToolMissing",
        "WrongPassphrase",
        "__version__",
    ]
    for name in privca.__all__:
        assert getattr(privca, name) is not None


def test_exit_codes_follow_the_convention() -> None:
    from privca import errors

    assert errors.InputError.exit_code == 2
    assert errors.PolicyError.exit_code == 2
    assert errors.EnvironmentRefused.exit_code == 3
    assert errors.InsecurePermissions.exit_code == 3
    assert errors.CheckFailed.exit_code == 1
    assert errors.PrivcaError.exit_code == 70


def test_mypy_strict_is_clean() -> None:
    """The package ships py.typed: what its users' type checkers see must hold."""
    pytest.importorskip("mypy", reason="mypy is not installed (it is in the test extras)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "src/privca"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_settings_keys_are_the_fields_they_become() -> None:
    """settings.py lists the keys privca.toml may hold (the rest is refused); the [acme]
    and [serve] limit keys are the fields of AcmeSettings and HttpLimits, which live in
    layers settings.py may not import. A field added on one side only would be refused in
    privca.toml, or silently dropped on the way to the server."""
    import dataclasses

    from privca.acme.service import AcmeSettings
    from privca.server.settings import HttpLimits
    from privca.settings import KNOWN_KEYS, SERVE_LIMIT_KEYS

    not_settings = {"rate_window", "max_body_bytes", "renew_nonce_key"}  # set by privca
    acme_fields = {f.name for f in dataclasses.fields(AcmeSettings)} - not_settings
    assert set(KNOWN_KEYS["acme"]) == acme_fields
    assert set(SERVE_LIMIT_KEYS) == {f.name for f in dataclasses.fields(HttpLimits)}
