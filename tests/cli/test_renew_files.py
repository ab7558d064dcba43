"""`renew --out DIR` replaces the certificate's own files (atomically, modes and owners
kept, the old ones as NAME.*.previous until the next renew) without --force, and refuses
what is not that certificate's. `--deploy-hook` on issue, renew and sign."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import Cli, assert_user_error, write

NAME = "db.corp.internal"


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _issue(cli: Cli, out: Path, *extra: str) -> None:
    result = cli("issue", NAME, "10.0.0.5", "--out", str(out), *_pass(cli), *extra)
    assert result.exit_code == 0, result.stderr


def _pass(cli: Cli) -> list[str]:
    return ["--passphrase-file", str(cli.passphrase_file)]


def _renew(cli: Cli, out: Path, *extra: str):
    return cli("renew", NAME, "--out", str(out), *_pass(cli), *extra)


def test_renew_replaces_its_files_keeping_modes_and_the_previous(
    home_cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "ssl"
    _issue(home_cli, out)
    crt, key, chain = (out / f"{NAME}{s}" for s in (".crt", ".key", ".chain.pem"))
    key.chmod(0o640)  # e.g. readable by the service's group
    crt.chmod(0o604)
    first = {p: p.read_bytes() for p in (crt, key, chain)}

    result = _renew(home_cli, out)
    assert result.exit_code == 0, result.stderr
    assert _serial(crt) != _serial(Path(str(crt) + ".previous"))
    for path, old in first.items():
        previous = path.with_name(path.name + ".previous")
        assert previous.read_bytes() == old, previous
        assert path.read_bytes() != old, path
        assert _mode(previous) == _mode(path)
    assert _mode(key) == 0o640 and _mode(crt) == 0o604 and _mode(chain) == 0o644
    assert "previous:" in result.stdout

    second = {p: p.read_bytes() for p in (crt, key, chain)}
    result = _renew(home_cli, out)
    assert result.exit_code == 0, result.stderr
    for path, old in second.items():  # .previous now holds the first renewal's files
        assert path.with_name(path.name + ".previous").read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{NAME}{s}{p}" for s in (".crt", ".key", ".chain.pem") for p in ("", ".previous")]
    )
    listed = json.loads(home_cli("list", "--all", "--json").stdout)
    assert [d["status"] for d in listed].count("valid") == 1


def test_reuse_key_leaves_the_key_alone(home_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ssl"
    _issue(home_cli, out)
    key = out / f"{NAME}.key"
    before = key.read_bytes()
    result = _renew(home_cli, out, "--reuse-key")
    assert result.exit_code == 0, result.stderr
    assert key.read_bytes() == before
    assert not (out / f"{NAME}.key.previous").exists()
    assert (out / f"{NAME}.crt.previous").exists()


@pytest.mark.parametrize(
    "squatter",
    ["other-certificate", "not-a-certificate", "key-without-certificate", "symlink"],
)
def test_files_that_are_not_the_certificates_are_refused(
    home_cli: Cli, tmp_path: Path, squatter: str
) -> None:
    _issue(home_cli, tmp_path / "first")
    out = tmp_path / "ssl"
    if squatter == "other-certificate":
        other = home_cli(
            "issue", "web.corp.internal", "--out", str(tmp_path / "web"), *_pass(home_cli)
        )
        assert other.exit_code == 0, other.stderr
        write(out / f"{NAME}.crt", (tmp_path / "web" / "web.corp.internal.crt").read_bytes())
        fragment = "holds a certificate for other names (web.corp.internal)"
        victim = out / f"{NAME}.crt"
    elif squatter == "not-a-certificate":
        victim = write(out / f"{NAME}.crt", "hand-written notes")
        fragment = "other names (none privca can read)"
    elif squatter == "key-without-certificate":
        victim = write(out / f"{NAME}.key", "someone's key", 0o600)
        fragment = "but not the certificate"
    else:
        out.mkdir()
        target = write(
            tmp_path / "elsewhere.crt", (tmp_path / "first" / f"{NAME}.crt").read_bytes()
        )
        (out / f"{NAME}.crt").symlink_to(target)
        victim = target
        fragment = "not a regular file"
    before = victim.read_bytes()
    listed = home_cli("list", "--all", "--json").stdout
    result = _renew(home_cli, out)
    assert_user_error(result, fragment)
    assert victim.read_bytes() == before
    assert home_cli("list", "--all", "--json").stdout == listed  # nothing issued
    forced = _renew(home_cli, out, "--force")
    assert forced.exit_code == 0, forced.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_owner_and_group_are_kept(home_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ssl"
    _issue(home_cli, out)
    key = out / f"{NAME}.key"
    os.chown(key, 65534, 65534)
    result = _renew(home_cli, out)
    assert result.exit_code == 0, result.stderr
    for path in (key, key.with_name(key.name + ".previous")):
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


HOOK = """#!/bin/sh
{
  echo "CERT=$PRIVCA_CERT"; echo "KEY=$PRIVCA_KEY"; echo "CHAIN=$PRIVCA_CHAIN"
  echo "NAMES=$PRIVCA_NAMES"; echo "SERIAL=$PRIVCA_SERIAL"
  openssl x509 -in "$PRIVCA_CERT" -noout -serial
} >> "$HOOK_LOG"
echo "a hook talking on stdout"
exit "${HOOK_STATUS:-0}"
"""


def _hook(tmp_path: Path) -> tuple[Path, Path]:
    hook = write(tmp_path / "hook.sh", HOOK, 0o755)
    return hook, tmp_path / "hook.log"


def _log(path: Path) -> list[dict[str, str]]:
    runs, current = [], {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        current[key] = value
        if key == "serial":
            runs.append(current)
            current = {}
    return runs


def test_deploy_hook_on_issue_renew_and_sign(
    home_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, log = _hook(tmp_path)
    monkeypatch.setenv("HOOK_LOG", str(log))
    out = tmp_path / "ssl"
    _issue(home_cli, out, "--deploy-hook", str(hook))
    result = _renew(home_cli, out, "--deploy-hook", str(hook), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)  # the hook's stdout did not end up here
    assert document["deploy_hook_status"] == 0
    csr = home_cli("csr", "mail.corp.internal", "--out", str(tmp_path / "mail"))
    assert csr.exit_code == 0
    signed = home_cli(
        "sign", str(tmp_path / "mail" / "mail.corp.internal.csr"), "--out", str(tmp_path / "mail"),
        "--deploy-hook", str(hook), *_pass(home_cli),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.stderr
    issued, renewed, sign = _log(log)
    for run in (issued, renewed):
        assert run["CERT"] == str((out / f"{NAME}.crt").absolute())
        assert run["KEY"] == str((out / f"{NAME}.key").absolute())
        assert run["CHAIN"] == str((out / f"{NAME}.chain.pem").absolute())
        assert run["NAMES"] == f"{NAME} 10.0.0.5"
        # The files were in place when the hook ran: the serial it read is the new one.
        assert int(run["serial"], 16) == int(run["SERIAL"], 16)
    assert issued["SERIAL"] != renewed["SERIAL"] == document["serial"]
    assert sign["NAMES"] == "mail.corp.internal"
    assert sign["KEY"] == str((tmp_path / "mail" / "mail.corp.internal.key").absolute())

    # A CSR of another key, signed into the same directory: the NAME.key there is not the
    # certificate's key, so the hook gets none (it used to get that one).
    other = home_cli("csr", "mail.corp.internal", "--out", str(tmp_path / "elsewhere"))
    assert other.exit_code == 0
    again = home_cli(
        "sign", str(tmp_path / "elsewhere" / "mail.corp.internal.csr"),
        "--out", str(tmp_path / "mail"), "--force", "--deploy-hook", str(hook), *_pass(home_cli),
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert _log(log)[-1]["KEY"] == ""


def test_failing_hook_is_reported_with_its_status_and_exit_1(
    home_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, log = _hook(tmp_path)
    monkeypatch.setenv("HOOK_LOG", str(log))
    monkeypatch.setenv("HOOK_STATUS", "7")
    out = tmp_path / "ssl"
    result = home_cli(
        "issue", NAME, "--out", str(out), "--deploy-hook", str(hook), *_pass(home_cli)
    )
    assert result.exit_code == 1, result.stderr
    # The hook's own output comes first (on stderr); then privca's one error and hint.
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("privca: error: the deploy hook exited with status 7 for ")
    assert hint == (
        "  hint: the certificate is issued and its files are in place; "
        "fix the hook and run it again by hand"
    )
    assert (out / f"{NAME}.crt").exists()  # files stay
    missing = home_cli(
        "renew", NAME, "--out", str(out), "--deploy-hook", "no-such-command-here",
        *_pass(home_cli),
    )  # fmt: skip
    assert missing.exit_code == 1, missing.stderr
    assert "exited with status 127 (command not found)" in missing.stderr.splitlines()[-2]


def test_hook_output_never_mixes_into_json_in_a_real_process(home_cli: Cli, tmp_path: Path) -> None:
    hook, log = _hook(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    env["HOOK_LOG"] = str(log)
    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(home_cli.home), "issue", NAME,
            "--out", str(tmp_path / "ssl"), "--deploy-hook", str(hook), "--json",
            *_pass(home_cli),
        ],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deploy_hook_status"] == 0
    assert "a hook talking on stdout" in done.stderr


def _secret_variables_in_the_source() -> set[str]:
    """Every PRIVCA_* name in src/ that holds a passphrase, PIN or password."""
    source = Path(__file__).parents[2] / "src" / "privca"
    names: set[str] = set()
    for path in source.rglob("*.py"):
        names.update(re.findall(r"\bPRIVCA_[A-Z0-9_]+", path.read_text()))
    return {n for n in names if re.search(r"PASS|PIN|SECRET|PASSWORD|TOKEN", n[len("PRIVCA") :])}


def test_the_hook_never_sees_privca_secrets_in_a_real_process(
    home_cli: Cli, tmp_path: Path
) -> None:
    """The hook used to inherit the CA passphrase and the store password with the rest of
    privca's environment (`env > file` in a hook wrote them out)."""
    from privca.cli.deploy import SECRET_VARIABLES

    assert _secret_variables_in_the_source() <= SECRET_VARIABLES
    seen = tmp_path / "hook-env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    env |= {name: f"leaked-{name}" for name in SECRET_VARIABLES}
    env["PGPASSWORD"] = "leaked-PGPASSWORD"  # libpq's own: the store's password, too
    env["PRIVCA_PASSPHRASE"] = home_cli.passphrase_file.read_text().strip()  # used, too
    env["HOOK_KEEPS_THIS"] = "kept"
    done = subprocess.run(
        [
            sys.executable, "-m", "privca", "--home", str(home_cli.home), "issue", NAME,
            "--out", str(tmp_path / "ssl"), "--deploy-hook", f"env > '{seen}'",
        ],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hook_env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert not SECRET_VARIABLES & hook_env.keys(), sorted(SECRET_VARIABLES & hook_env.keys())
    assert "PGPASSWORD" not in hook_env
    text = seen.read_text()
    assert "leaked-" not in text and env["PRIVCA_PASSPHRASE"] not in text
    assert hook_env["HOOK_KEEPS_THIS"] == "kept"
    assert hook_env["PRIVCA_CERT"] == str((tmp_path / "ssl" / f"{NAME}.crt").absolute())
