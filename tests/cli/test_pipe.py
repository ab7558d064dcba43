"""A reader that stops early (`privca list --all | head -1`) ends privca quietly with
status 0, like other Unix tools, instead of "internal error: BrokenPipeError".

Whether the writer sees EPIPE depends on who runs first, so each pipeline runs several
times through a real shell pipe, with several times more output than a pipe buffer holds,
so that the writer always meets the closed end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority
from privca.keys.types import KeyType
from privca.x509.csr import CertificateRequest
from privca.x509.names import parse_names

RUNS = 3


@pytest.fixture(scope="module")
def big_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with enough certificates that `list` writes well over 64 KiB."""
    home = tmp_path_factory.mktemp("pipe") / "ca"
    with CertificateAuthority.init(home, "Pipe CA", passphrase=None) as ca:
        key = KeyType.EC_P256.generate().public_key()
        requests = [
            CertificateRequest(
                public_key=key,
                names=parse_names([f"host-{index:05d}.corp.internal"]),
                ignored=(),
                asks_for_ca=False,
                source="test",
            )
            for index in range(2000)
        ]
        ca.sign_requests(requests)
    return home


@pytest.mark.parametrize(
    "pipeline",
    [
        pytest.param("list --all | head -1", id="list-head"),
        pytest.param("list --all --json | head -c 100", id="json-head"),
        pytest.param("list --status valid | true", id="reader-never-reads"),
    ],
)
def test_closed_pipe_ends_quietly(big_home: Path, pipeline: str) -> None:
    command, reader = pipeline.split(" | ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    script = (
        f"set -o pipefail; {sys.executable} -m privca --home {big_home} {command} "
        f"2>stderr.txt | {reader} >/dev/null"
    )
    for _ in range(RUNS):
        done = subprocess.run(["bash", "-c", script], cwd=big_home.parent, env=env, timeout=120)
        stderr = (big_home.parent / "stderr.txt").read_text()
        assert done.returncode == 0, stderr
        assert stderr == "", stderr


@pytest.mark.parametrize("command", ["verify {cert}", "verify {cert} --json", "audit verify"])
def test_a_closed_pipe_keeps_a_checking_commands_verdict(tmp_path: Path, command: str) -> None:
    """`privca verify revoked.crt | true` (or `| head -1`) used to end with 0: the reader's
    going away must not turn "it failed" into success under `set -o pipefail`."""
    from privca.x509.encoding import pem_certificate

    home = tmp_path / "ca"
    with CertificateAuthority.init(home, "Verdict CA", passphrase=None) as ca:
        issued = ca.issue(["gone.corp.internal"])
        ca.revoke("gone.corp.internal", "keyCompromise")
    cert = tmp_path / "gone.crt"
    cert.write_bytes(pem_certificate(issued.certificate))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVCA_")}
    argv = command.format(cert=cert)
    if command == "audit verify":  # a tampered log: the revocation undone in the store
        import sqlite3

        with sqlite3.connect(home / "privca.db") as connection:
            connection.execute("UPDATE certificates SET revocation_reason = NULL")
        connection.close()
    script = f"set -o pipefail; {sys.executable} -m privca --home {home} {argv} 2>stderr.txt | true"
    for _ in range(RUNS):
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, timeout=120)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert done.returncode == 1, stderr
        assert "Traceback" not in stderr and "internal error" not in stderr
