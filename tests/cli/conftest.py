from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli


@pytest.fixture
def home_cli(run_cli: Cli) -> Cli:
    """A CLI bound to a freshly initialised two-tier CA with name constraints."""
    result = run_cli(
        "init",
        "--name",
        "Example Internal CA",
        "--permit",
        "corp.internal",
        "--permit",
        "10.0.0.0/8",
        "--passphrase-file",
        str(run_cli.passphrase_file),
    )
    assert result.exit_code == 0, result.output + result.stderr
    return run_cli


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path
