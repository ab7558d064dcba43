"""`privca serve --publish-listen`: OCSP, CRLs and CA certificates over plain HTTP from a
process of their own, next to the ACME/TLS listener. Real processes, real sockets, openssl
ocsp and curl as clients; a revocation made by another process; SIGTERM; a killed
publication process; the command-line errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from privca.authority import CertificateAuthority
from tests.conftest import (
    PASSPHRASE,
    Cli,
    Result,
    assert_user_error,
    openssl,
    require_tool,
    tree_snapshot,
)
from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from tests.server.conftest import ServedCA, _served, free_port


class Served:
    """One `privca serve` with a publication listener; its log in a file."""

    def __init__(self, served: ServedCA, passphrase: Path, tmp: Path, *extra: str) -> None:
        self.served = served
        self.port, self.publish = free_port(), free_port()
        self.log = tmp / "serve.log"
        tls = "--no-tls" not in extra
        self.main = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.base = f"http://127.0.0.1:{self.publish}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "privca", "--home", str(served.ca.home.root), "serve",
                 "--listen", f"127.0.0.1:{self.port}",
                 "--publish-listen", f"127.0.0.1:{self.publish}",
                 "--passphrase-file", str(passphrase),
                 *(["--server-name", "127.0.0.1"] if tls else []), *extra],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while self.status("/health") != 200 or self.status("/health", main=True) != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(self.log.read_text()[-3000:])
            time.sleep(0.2)
        found = re.search(r"publication process \(pid (\d+)\)", self.log.read_text())
        assert found, self.log.read_text()
        self.publication_pid = int(found.group(1))
        workers = re.search(r"\d+ workers? \(pids ([\d, ]+)\)", self.log.read_text())
        assert workers, self.log.read_text()
        self.worker_pids = [int(pid) for pid in workers.group(1).split(", ")]

    def curl(self, url: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["curl", "-sS", "--max-time", "5", "--cacert", self.served.path("root.crt"),
             "-o", "/dev/null", "-w", "%{http_code}", url],
            capture_output=True, timeout=10,
        )  # fmt: skip

    def status(self, path: str, *, main: bool = False) -> int:
        out = self.curl((self.main if main else self.base) + path).stdout
        return int(out or b"0")

    def ocsp_status(self, leaf: str) -> str:
        result = openssl(
            "ocsp", "-issuer", self.served.path("issuing.crt"), "-cert", self.served.path(leaf),
            "-url", f"{self.base}/ocsp", "-CAfile", self.served.path("root.crt"),
        )  # fmt: skip
        assert "Response verify OK" in result.stderr, result.stderr
        return result.stdout.splitlines()[0].rsplit(": ", 1)[1]

    def children(self) -> list[int]:
        return [*self.worker_pids, self.publication_pid]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def started() -> Iterator[list[Served]]:
    servers: list[Served] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_publication_listener_serves_revocation_not_acme_and_stops_on_sigterm(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path, started: list[Served]
) -> None:
    require_tool("curl")
    require_tool("openssl")
    server = Served(served_ca, passphrase_file, tmp_path, "--allow-loopback-validation")
    started.append(server)
    # The main listener is the ACME server over TLS, the publication one plain HTTP.
    assert server.status("/acme/directory", main=True) == 200
    assert server.status("/acme/directory") == 404
    assert server.status("/") == 404  # no index: nothing an operator or ACME client uses
    assert server.status("/metrics") == 404  # the operator's (main or --metrics-listen)
    for path in ("/crl/issuing.crl", "/crl/root.pem", "/ca/root.crt", "/ca/chain.pem"):
        assert server.status(path) == 200, path

    assert server.ocsp_status("good.crt") == "good"
    assert server.ocsp_status("revoked.crt") == "revoked"
    # Revoked by another process: on SQLite the next answer is exact (docs/ha.md).
    with CertificateAuthority.open(served_ca.ca.home.root, PASSPHRASE) as other:
        other.revoke(format(served_ca.good.serial, "x"), "keyCompromise")
    assert server.ocsp_status("good.crt") == "revoked"

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0, server.log.read_text()[-3000:]
    for pid in server.children():
        assert not Path(f"/proc/{pid}").exists(), f"{pid} outlived serve"
    assert _free(server.port) and _free(server.publish)
    text = server.log.read_text()
    # The publication process's access log says which process answered.
    assert re.search(r"publication: 127\.0\.0\.1:\d+ - \"POST /ocsp HTTP/1\.0\" 200", text)
    assert "Traceback" not in text


def test_a_killed_publication_process_stops_serve_with_exit_3(
    served_ca: ServedCA, passphrase_file: Path, tmp_path: Path, started: list[Served]
) -> None:
    require_tool("curl")
    server = Served(served_ca, passphrase_file, tmp_path, "--no-tls", "--no-acme")
    started.append(server)
    assert len(server.worker_pids) == 1  # --workers 1: the parent supervises both
    os.kill(server.publication_pid, signal.SIGKILL)
    assert server.process.wait(60) == 3
    text = server.log.read_text()
    assert (
        "privca: error: the publication process stopped (exit code -9); the others were stopped"
        in text
    ), text[-3000:]
    assert not Path(f"/proc/{server.worker_pids[0]}").exists(), "the worker outlived serve"
    assert _free(server.port) and _free(server.publish)


def test_publication_process_over_postgresql_follows_revocations_within_the_tolerance(
    make_ca: Callable[..., CertificateAuthority],
    postgres_url: str,  # noqa: F811
    passphrase_file: Path,
    tmp_path: Path,
    started: list[Served],
) -> None:
    """docs/ha.md "OCSP answers": over PostgreSQL a cached answer is not checked on every
    request; the publication process's own watcher brings a revocation made elsewhere
    within about a second."""
    require_tool("curl")
    require_tool("openssl")
    served = _served(make_ca(store_url=postgres_url), tmp_path / "files")
    server = Served(served, passphrase_file, tmp_path, "--no-tls", "--no-acme")
    started.append(server)
    assert server.ocsp_status("good.crt") == "good"  # cached now
    with CertificateAuthority.open(served.ca.home.root, PASSPHRASE) as other:
        other.revoke(format(served.good.serial, "x"), "keyCompromise")
    revoked_at = time.monotonic()
    while server.ocsp_status("good.crt") != "revoked":
        assert time.monotonic() - revoked_at < 5, "the revocation never reached the answer"
        time.sleep(0.1)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0, server.log.read_text()[-3000:]


def test_publish_listen_errors_are_one_line_and_write_nothing(run_cli: Cli) -> None:
    result = run_cli(
        "init", "--name", "Publish CA", "--passphrase-file", str(run_cli.passphrase_file)
    )
    assert result.exit_code == 0, result.output
    before = tree_snapshot(run_cli.home)
    port = free_port()

    def serve(*args: str) -> Result:
        return run_cli(
            "serve", "--no-tls", "--listen", f"127.0.0.1:{port}",
            "--passphrase-file", str(run_cli.passphrase_file), *args,
        )  # fmt: skip

    assert_user_error(serve("--publish-listen", f"127.0.0.1:{port}"), "same address")
    # All addresses and one of them on one port collide too: the same refusal, not "in use".
    assert_user_error(serve("--publish-listen", f"0.0.0.0:{port}"), "same address")
    assert_user_error(serve("--publish-listen", "8080"), "--publish-listen")
    hostile = serve("--publish-listen", "\x1b[31m:80")
    assert hostile.exit_code in (2, 3) and "\x1b" not in hostile.stderr, hostile.stderr
    assert hostile.stderr.startswith("privca: error: "), hostile.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = serve("--publish-listen", f"127.0.0.1:{busy}")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith(f"privca: error: 127.0.0.1:{busy} is in use"), result.stderr
    assert _free(port)  # the main listener, bound first, was closed again
    assert tree_snapshot(run_cli.home) == before
