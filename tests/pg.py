"""A private PostgreSQL cluster for tests: started once per session, one database per test.

Usage from any test module or conftest (tests/ is a package; pytest puts its parent on sys.path):

    from tests.pg import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

`postgres_cluster` (session scope) starts the cluster on first use and stops it at the end
of the session; `postgres_url` (function scope) creates a fresh database and returns the
SQLAlchemy URL privca accepts, `postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME`, and
drops the database afterwards. Several modules may import the fixtures: they share one
cluster per process.

The cluster lives in a temporary directory under /tmp: initdb with trust authentication,
listening only on 127.0.0.1 on a free port, its unix socket in the same directory. initdb
refuses to run as root, so as root the server runs as the `postgres` system user (via
runuser or setpriv). Durability is off (fsync=off): these are throwaway clusters.

Binaries: $PRIVCA_PG_BIN, else /usr/lib/postgresql/<newest>/bin, else `pg_config --bindir`.
When they are missing the tests are skipped, unless $CI is set: then they fail, because
CI must install them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_USER = "postgres"
START_ATTEMPTS = 3


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    candidates: list[Path] = []
    if os.environ.get("PRIVCA_PG_BIN"):
        candidates.append(Path(os.environ["PRIVCA_PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> list[str]:
    """The command prefix that runs the server binaries: nothing unless we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise RuntimeError(
            f"running as root, and there is no '{PG_USER}' user to run PostgreSQL as"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", PG_USER, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        entry = pwd.getpwnam(PG_USER)
        return [
            setpriv,
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--init-groups",
        ]
    raise RuntimeError("running as root, and neither runuser nor setpriv is available")


class PostgresCluster:
    """One throwaway PostgreSQL cluster. `start()` then `url(create_database())`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.prefix = _as_server_user()
        self.directory: Path | None = None
        self.port = 0
        self.running = False

    @property
    def data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    @property
    def log(self) -> Path:
        assert self.directory is not None
        return self.directory / "server.log"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.directory,  # the server user must be able to enter the cwd
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def start(self) -> None:
        # mkdtemp makes 0700; the server user must traverse and write it.
        self.directory = Path(tempfile.mkdtemp(prefix="privca-pg-", dir="/tmp"))
        os.chmod(self.directory, 0o755)
        if self.prefix:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        result = self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-A", "trust",
            "-U", PG_USER,
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        if result.returncode != 0:
            self.cleanup()
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        error = ""
        for _attempt in range(START_ATTEMPTS):  # another process may take the port first
            self.port = free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.directory}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                ]
            )
            result = self._run(
                str(self.bindir / "pg_ctl"),
                "-D", str(self.data),
                "-l", str(self.log),
                "-o", options,
                "-w", "-t", "30", "-s",
                "start",
            )  # fmt: skip
            if result.returncode == 0:
                self.running = True
                atexit.register(self.stop)
                return
            error = result.stdout + result.stderr + self._log_tail()
        self.cleanup()
        raise RuntimeError(f"pg_ctl start failed:\n{error}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-s", "stop")  # fmt: skip
        self.cleanup()

    def cleanup(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # databases ---------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={dbname}"

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL privca's store accepts."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def add_password_role(self, password: str, method: str = "scram-sha-256") -> tuple[str, str]:
        """A login role that must authenticate with `password` over TCP (`method`:
        scram-sha-256 or md5), owning a fresh database; returns (role, database).

        The cluster trusts everyone else: a pg_hba.conf line for this role alone goes
        first, and the configuration is reloaded."""
        if method not in ("scram-sha-256", "md5"):
            raise ValueError(method)
        role = f"pw_{uuid.uuid4().hex[:12]}"
        dbname = self.create_database("pw")
        encryption = "scram-sha-256" if method == "scram-sha-256" else "md5"
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f"SET password_encryption = '{encryption}'")
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            connection.execute(f'ALTER DATABASE "{dbname}" OWNER TO "{role}"')
        hba = self.data / "pg_hba.conf"
        stat_before = hba.stat()
        hba.write_text(f"host all {role} 127.0.0.1/32 {method}\n" + hba.read_text())
        os.chown(hba, stat_before.st_uid, stat_before.st_gid)
        self.execute("SELECT pg_reload_conf()")
        # The reload is asynchronous: wait until the server asks this role for a password.
        deadline = time.monotonic() + 10
        dsn = f"host=127.0.0.1 port={self.port} user={role} dbname={dbname} passfile=/dev/null"
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=5).close()
            except psycopg.OperationalError as exc:
                if "password" in str(exc):
                    return role, dbname
                raise
            if time.monotonic() > deadline:
                raise RuntimeError("pg_hba.conf reload did not take effect")
            time.sleep(0.05)

    def url_for(self, role: str, dbname: str) -> str:
        """A postgresql:// URL for `role` without any password in it."""
        return f"postgresql://{role}@127.0.0.1:{self.port}/{dbname}"

    @contextlib.contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        """A fresh database for the duration of the block; yields its URL."""
        name = self.create_database(prefix)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


_shared: PostgresCluster | None = None


def shared_cluster() -> PostgresCluster:
    """The process-wide cluster, started on first use (skips or fails without binaries)."""
    global _shared
    if _shared is not None and _shared.running:
        return _shared
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install them (.ci/run)", pytrace=False)
        pytest.skip(reason)
    cluster = PostgresCluster(bindir)
    cluster.start()
    _shared = cluster
    return cluster


def stop_shared_cluster() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    yield shared_cluster()
    stop_shared_cluster()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A URL to a fresh, empty database; dropped after the test."""
    with postgres_cluster.database() as url:
        yield url


__all__ = [
    "PostgresCluster",
    "find_bindir",
    "postgres_cluster",
    "postgres_url",
    "shared_cluster",
    "stop_shared_cluster",
]
