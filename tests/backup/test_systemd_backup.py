"""contrib/systemd/privca-backup.service as written: its commands, run with the unit's
environment (only the paths are this test's), back up and keep the newest $KEEP."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from tests.backup.conftest import manifest_of

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "privca-backup.service"


def _unit_commands() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The unit's Environment= settings and its Exec lines, in order."""
    environment: dict[str, str] = {}
    commands: list[tuple[str, str]] = []
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            environment[key] = value
        elif line.startswith("Exec"):
            key, _, value = line.partition("=")
            commands.append((key, value))
    return environment, commands


def _as_shell(command: str, environment: dict[str, str]) -> str:
    """What systemd would run: ${VAR} expanded, %% unescaped, privca from this checkout,
    the privileged "+" prefix dropped and the unit's user (privca) this test's own."""
    command = re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], command)
    command = command.replace("%%", "%").removeprefix("+")
    command = command.replace("-o privca -g privca", f"-o {os.getuid()} -g {os.getgid()}")
    return command.replace("/usr/local/bin/privca", f"{sys.executable} -m privca")


def test_every_unit_that_opens_the_home_runs_as_the_servers_user() -> None:
    """privca refuses a home another user owns (root included): the backup and renewal
    units ran as root against the home privca.service (User=privca) owns, and always
    exited 3."""
    units = sorted(UNIT.parent.glob("*.service"))
    assert len(units) == 3
    for unit in units:
        lines = unit.read_text().splitlines()
        assert "Environment=PRIVCA_HOME=/var/lib/privca" in lines, unit.name
        assert "User=privca" in lines and "Group=privca" in lines, unit.name
        for line in lines:
            if line.startswith("Exec") and "privca " in line:
                # Only hooks and directory making run with root's rights ("+").
                assert not line.partition("=")[2].startswith("+/usr/local/bin/privca"), line


def test_backup_unit_backs_up_and_keeps_the_newest(home: Path, tmp_path: Path) -> None:
    environment, commands = _unit_commands()
    assert environment["PRIVCA_HOME"] == "/var/lib/privca"
    assert [key for key, _ in commands] == ["ExecStartPre", "ExecStart", "ExecStartPost"]
    backups = tmp_path / "backups"
    run_environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")},
        **environment,
        "PRIVCA_HOME": str(home),
        "BACKUP_DIR": str(backups),
        "KEEP": "2",
    }
    made: list[str] = []
    for _ in range(3):
        for _key, command in commands:
            argv = shlex.split(_as_shell(command, run_environment))  # as systemd splits it
            result = subprocess.run(
                argv, env=run_environment, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, (command, result.stderr)
        made.append(max(p.name for p in backups.iterdir()))
        time.sleep(1.1)  # archive names have a resolution of one second
    assert backups.stat().st_mode & 0o777 == 0o700
    kept = sorted(p.name for p in backups.iterdir())
    assert kept == sorted(made[-2:])
    for name in kept:
        assert re.fullmatch(r"privca-\d{8}T\d{6}Z\.tar\.gz", name)
        assert (backups / name).stat().st_mode & 0o777 == 0o600
        assert manifest_of(backups / name)["summary"]["certificates"] == 2  # type: ignore[index]


RENEW_UNIT = UNIT.parent / "privca-renew@.service"


def test_renew_units_condition_skips_only_when_not_due_and_fails_on_errors(
    run_cli, tmp_path: Path
) -> None:
    """ExecCondition: 0 renews, 1 skips; any exit from 1 to 254 would make systemd skip the
    unit silently, so privca's 2 and 3 (a missing certificate, a wrong CERT_DIR) become
    255, which fails it."""
    [condition] = [
        line.partition("=")[2]
        for line in RENEW_UNIT.read_text().splitlines()
        if line.startswith("ExecCondition=")
    ]
    secret = ["--passphrase-file", str(run_cli.passphrase_file)]
    assert run_cli("init", "--name", "Renew CA", *secret).exit_code == 0
    certs = tmp_path / "certs"
    issued = run_cli("issue", "db.corp.internal", "--out", str(certs), *secret)
    assert issued.exit_code == 0, issued.stderr

    def run(cert_dir: Path) -> int:
        environment = {**os.environ, "PRIVCA_HOME": str(run_cli.home), "CERT_DIR": str(cert_dir)}
        command = _as_shell(condition.replace("%i", "db.corp.internal"), environment)
        return subprocess.run(shlex.split(command), env=environment, timeout=60).returncode

    assert run(certs) == 1  # fresh: not due, skipped
    assert run(tmp_path / "nowhere") == 255  # a wrong CERT_DIR fails the unit
