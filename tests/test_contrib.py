"""The shipped systemd units are well-formed and use privca commands that exist."""

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from privca.cli.main import COMMANDS

UNITS = Path(__file__).resolve().parents[1] / "contrib" / "systemd"


@pytest.mark.parametrize("unit", sorted(p.name for p in UNITS.iterdir()))
def test_unit_parses_and_names_real_commands(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / unit)
    assert parser.has_section("Unit")
    for section in parser.sections():
        for key, value in parser.items(section):
            if key.startswith("Exec") and "privca " in value:
                verb = re.search(r"privca (\S+)", value).group(1)
                assert verb in COMMANDS, (unit, key, verb)
    text = (UNITS / unit).read_text()
    assert "--passphrase " not in text and "PRIVCA_PASSPHRASE=" not in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    for unit in UNITS.iterdir():
        shutil.copy(unit, tmp_path / unit.name.replace("@.", "@example."))
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
    )
    assert "Unknown key" not in result.stderr and "Unknown section" not in result.stderr
