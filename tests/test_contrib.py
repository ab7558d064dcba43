"""The shipped systemd units are well-formed and use privca commands that exist."""

import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
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
            if key.startswith("Exec") and "bin/privca " in value:
                verb = re.search(r"bin/privca (\S+)", value).group(1)
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


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def _readme_init_command() -> list[str]:
    readme = (UNITS.parents[1] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if "privca --home /srv/ca init" in line)
    return shlex.split(line.strip())


def test_privca_service_starts_as_written(tmp_path: Path) -> None:
    """The unit's ExecStart, with the unit's environment, against a CA made by the README's
    command: it must start and answer /health (only the home, the port and the credentials
    directory are this test's own)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    home = tmp_path / "ca"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "privca-passphrase").write_bytes(b"test passphrase 1\n")
    (credentials / "privca-passphrase").chmod(0o400)
    init = [sys.executable, "-m", "privca", *_readme_init_command()[1:]]
    init[init.index("/srv/ca")] = str(home)
    init += ["--passphrase-file", str(credentials / "privca-passphrase")]
    made = subprocess.run(init, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr

    service = _unit("privca.service")["Service"]
    environment = dict(os.environ)
    for line in (UNITS / "privca.service").read_text().splitlines():
        if line.startswith("Environment="):  # configparser keeps only the last one
            key, _, setting = line.removeprefix("Environment=").partition("=")
            environment[key] = setting
    assert environment["PRIVCA_HOME"] == "/var/lib/privca"  # systemd's StateDirectory
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen_host = environment["PRIVCA_LISTEN"].rpartition(":")[0]
    environment.update(
        PRIVCA_HOME=str(home),
        PRIVCA_LISTEN=f"{listen_host}:{port}",  # the unit's address, a free port
        CREDENTIALS_DIRECTORY=str(credentials),
        TMPDIR=str(tmp_path),
    )
    exec_start = re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], service["ExecStart"])
    argv = shlex.split(exec_start)
    assert argv[0] == "/usr/local/bin/privca"
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", *argv[1:]],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    name = environment["PRIVCA_SERVER_NAME"]
    try:
        deadline = time.monotonic() + 30
        while True:
            answer = subprocess.run(
                [curl, "-sSf", "--max-time", "5", "--cacert", str(home / "certs" / "root.crt"),
                 "--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/health"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if answer.returncode == 0:
                break
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, answer.stderr
            time.sleep(0.2)
        assert '"status":"ok"' in answer.stdout
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_the_readme_says_where_the_units_expect_privca() -> None:
    """The units run privca by an absolute path, while the README installs it into a
    virtualenv (`pip install .`): a reader who copied a unit as its header says got
    status 203/EXEC, since nothing said the program had to be there, nor that the unit
    needs a `privca` user and its CA home under /var/lib/privca."""
    readme = (UNITS.parents[1] / "README.md").read_text()
    paragraph = next(p for p in readme.split("\n\n") if p.startswith("`contrib/systemd/`"))
    paragraph = " ".join(paragraph.split())
    programs = {
        match
        for unit in UNITS.iterdir()
        for match in re.findall(r"(/\S+/bin/privca)(?=\s)", unit.read_text())
    }
    assert programs
    for program in programs:
        assert f"`{program}`" in paragraph, program
    assert "PRIVCA_HOME=/var/lib/privca" in (UNITS / "privca.service").read_text()
    assert "`/var/lib/privca`" in paragraph
