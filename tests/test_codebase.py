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
