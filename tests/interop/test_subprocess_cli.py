"""The real `python -m privca` process, start to finish, judged by openssl.

init -> issue -> openssl verify on the written files -> privca verify, plus the runbook's
file modes: service key 0600, CA keys 0400 inside a 0700 private/.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE, require_tool, write
from tests.interop.conftest import openssl_output

NAME = "db.corp.internal"
IP = "10.0.0.5"


def _privca(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    return subprocess.run(
        [sys.executable, "-m", "privca", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "tier", [pytest.param([], id="two-tier"), pytest.param(["--single-tier"], id="single-tier")]
)
def test_init_issue_verify_as_processes(tmp_path: Path, tier: list[str]) -> None:
    require_tool("openssl")
    home, out = tmp_path / "home", tmp_path / "out"
    passphrase = write(tmp_path / "passphrase.txt", PASSPHRASE + b"\n", 0o600)

    init = _privca(
        home, "init", "--name", "Subprocess Internal CA",
        "--permit", "corp.internal", "--permit", "10.0.0.0/8",
        "--passphrase-file", str(passphrase), *tier,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    issue = _privca(
        home, "issue", NAME, IP, "--out", str(out), "--passphrase-file", str(passphrase)
    )
    assert issue.returncode == 0, issue.stderr

    key, crt, chain = (out / f"{NAME}.{suffix}" for suffix in ("key", "crt", "chain.pem"))
    certs = home / "certs"
    untrusted = [] if tier else ["-untrusted", str(certs / "issuing.crt")]
    verified = subprocess.run(
        [
            "openssl", "verify", "-x509_strict", "-purpose", "sslserver",
            "-CAfile", str(certs / "root.crt"), *untrusted,
            "-verify_hostname", NAME, "-verify_ip", IP, str(crt),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, openssl_output(verified)
    # The chain file alone is enough for a client that has the root (what servers send).
    from_chain = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(certs / "root.crt"),
         "-untrusted", str(chain), str(crt)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert from_chain.returncode == 0, openssl_output(from_chain)

    checked = _privca(home, "verify", str(crt), "--name", NAME, "--key", str(key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout
    wrong = _privca(home, "verify", str(crt), "--name", "other.corp.internal")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr

    assert _mode(key) == 0o600
    assert _mode(crt) == 0o644
    private = home / "private"
    assert _mode(private) == 0o700
    keys = sorted(p.name for p in private.iterdir())
    # eab.key seals the EAB secrets in the inventory (raw AES key, same 0400 rule).
    assert keys == (["eab.key", "root.key"] if tier else ["eab.key", "issuing.key", "root.key"])
    assert _mode(private / "eab.key") == 0o400
    for ca_key in private.glob("*.key"):
        if ca_key.name == "eab.key":
            continue
        assert _mode(ca_key) == 0o400, ca_key
        assert b"ENCRYPTED PRIVATE KEY" in ca_key.read_bytes()
    # openssl reads the encrypted CA key with the passphrase (the format is standard).
    opened = subprocess.run(
        ["openssl", "pkey", "-in", str(private / "root.key"), "-passin",
         f"file:{passphrase}", "-noout"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert opened.returncode == 0, openssl_output(opened)
