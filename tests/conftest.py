"""Shared fixtures: CA homes made with the real code, the CLI runner, external tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from privca.authority import CertificateAuthority
from privca.cli.main import cli

PASSPHRASE = b"test passphrase 1"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may pick up a developer's real CA or passphrase."""
    monkeypatch.delenv("PRIVCA_HOME", raising=False)
    monkeypatch.delenv("PRIVCA_PASSPHRASE", raising=False)


@pytest.fixture
def make_ca(tmp_path: Path) -> Callable[..., CertificateAuthority]:
    """Create a CA under tmp_path; keyword arguments go to CertificateAuthority.init."""
    counter = iter(range(1000))
    opened: list[CertificateAuthority] = []

    def factory(**kwargs: Any) -> CertificateAuthority:
        home = kwargs.pop("home", None) or tmp_path / f"ca{next(counter)}"
        kwargs.setdefault("passphrase", PASSPHRASE)
        ca = CertificateAuthority.init(home, kwargs.pop("name", "Test Internal CA"), **kwargs)
        opened.append(ca)
        return ca

    yield factory
    for ca in opened:
        ca.close()


@pytest.fixture
def ca(make_ca: Callable[..., CertificateAuthority]) -> CertificateAuthority:
    """A default two-tier CA (P-384 root, P-256 issuing CA), no name constraints."""
    return make_ca()


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_bytes(PASSPHRASE + b"\n")
    path.chmod(0o600)
    return path


class Cli:
    """Run privca in process, as a user would type it, against one home."""

    def __init__(self, home: Path, passphrase_file: Path) -> None:
        self.home = home
        self.passphrase_file = passphrase_file
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, home: Path | None = None) -> Result:
        return self.runner.invoke(
            cli, ["--home", str(home or self.home), *args], input=input, catch_exceptions=False
        )


@pytest.fixture
def run_cli(tmp_path: Path, passphrase_file: Path) -> Cli:
    return Cli(tmp_path / "home", passphrase_file)


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes: to prove a failed command wrote nothing."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args],
        input=input.decode() if input else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI; .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path


def write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def assert_user_error(result: Result, fragment: str, code: int = 2) -> None:
    """One clear line (plus an optional hint) on stderr, the right exit code, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("privca: error: "), result.stderr
    assert all(line.startswith("  hint: ") for line in lines[1:]), result.stderr
    assert fragment.lower() in result.stderr.lower(), result.stderr


Names = Sequence[str]
