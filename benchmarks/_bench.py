"""Helpers shared by the benchmarks (not a benchmark itself): ports, process CPU, the
machine's description, a DNS server that resolves every name to loopback, and a private
PostgreSQL 15 cluster.

Imports nothing from privca, so that acme.py (whose file name shadows certbot's `acme`
package while benchmarks/ is on sys.path) can use it."""

from __future__ import annotations

import contextlib
import http.server
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_BIN = Path(os.environ.get("PRIVCA_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


class BenchError(RuntimeError):
    """The environment or a server misbehaved: the run is void (the message says why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc (Linux 3.5+ task/*/children)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in children.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads, and waited-for children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After "pid (comm)": fields[0] is the state; utime, stime, cutime, cstime are 11..14.
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def package_version(package: str) -> str:
    """A Debian package's version, or '?'."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return "?"


@contextlib.contextmanager
def dns_server() -> Iterator[str]:
    """pebble-challtestsrv answering every A query with 127.0.0.1; yields its HOST:PORT."""
    if shutil.which("pebble-challtestsrv") is None:
        raise BenchError("pebble-challtestsrv is not installed (Debian package pebble)")
    port = free_port()
    process = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-dns01", f"127.0.0.1:{port}",
            "-management", f"127.0.0.1:{free_port()}",
            "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        if process.poll() is not None:
            raise BenchError("pebble-challtestsrv did not start")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def challenge_responder(webroot: Path, port: int) -> Iterator[None]:
    """Serve webroot/.well-known/acme-challenge/* on 127.0.0.1:port (what lego writes)."""
    directory = webroot / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True, exist_ok=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            prefix = "/.well-known/acme-challenge/"
            token = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
            body = b""
            if token and "/" not in token and not token.startswith("."):
                with contextlib.suppress(OSError):
                    body = (directory / token).read_bytes()
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise BenchError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror})"
            + (": run as root, with nothing else on port 80" if port < 1024 else "")
        ) from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def challenge_responder_process(webroot: Path, port: int) -> Iterator[None]:
    """challenge_responder in a child process (keeps its CPU out of a profiled process)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "responder", str(webroot), str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        if process.stdout is None or process.stdout.readline().strip() != b"ready":
            raise BenchError(f"the challenge responder did not start on port {port}")
        yield
    finally:
        process.terminate()
        process.wait(10)


class Postgres:
    """A private PostgreSQL cluster in a temporary directory, on a free loopback port.

    Unlike the tests' throwaway cluster (tests/pg.py) it keeps PostgreSQL's durable
    defaults (fsync, synchronous_commit), as a production store would; `durable=False`
    turns them off. As root the server runs as the postgres user (initdb refuses root)."""

    def __init__(self, *, durable: bool = True, bindir: Path = PG_BIN) -> None:
        if not (bindir / "initdb").is_file():
            raise BenchError(f"no PostgreSQL binaries in {bindir} (set $PRIVCA_PG_BIN)")
        self.bindir = bindir
        self.durable = durable
        self.directory = Path(tempfile.mkdtemp(prefix="privca-bench-pg-", dir="/tmp"))
        self.port = 0
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", PG_USER, "--"]
        os.chmod(self.directory, 0o755)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self.prefix, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.directory,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if result.returncode != 0:
            raise BenchError(f"{Path(args[0]).name} failed:\n{result.stdout}{result.stderr}")

    def start(self) -> Postgres:
        data = self.directory / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER,
                  "-E", "UTF8", "--locale=C", "--no-instructions")  # fmt: skip
        self.port = free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.directory}",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l",
                  str(self.directory / "server.log"), "-o", " ".join(options),
                  "-w", "-t", "60", "-s", "start")  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        """A new database; returns the URL privca's store accepts."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={PG_USER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def database_bytes(self, name: str) -> int:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={name}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("CHECKPOINT")
            row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.port:
            with contextlib.suppress(BenchError, subprocess.SubprocessError):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"),
                          "-m", "fast", "-s", "stop")  # fmt: skip
            self.port = 0
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["responder"]:
    with challenge_responder(Path(sys.argv[2]), int(sys.argv[3])):
        print("ready", flush=True)
        threading.Event().wait()
