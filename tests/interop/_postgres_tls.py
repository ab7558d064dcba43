"""A throwaway PostgreSQL server with TLS, configured as docs/postgresql.md says.

It listens on a random 127.x.y.z address at PostgreSQL's own port 5432 (any 127/8
address is this machine's), so `privca scan ADDRESS:5432` picks the protocol from the
port as it would for db.corp.internal:5432. Started and stopped by the test; as root the
server runs as the `postgres` user (tests/pg.py's rule), which then owns its key file.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pg import PG_USER, _as_server_user, find_bindir

PORT = 5432
START_ATTEMPTS = 5


class TlsPostgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.prefix = _as_server_user()
        self.directory = Path(tempfile.mkdtemp(prefix="privca-pgtls-", dir="/tmp"))
        os.chmod(self.directory, 0o755)
        self.address = ""
        self.running = False

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def tls(self) -> Path:
        """Where the server's TLS files go (the docs' /etc/postgresql/15/main/tls)."""
        return self.directory / "tls"

    def _own(self, path: Path) -> None:
        if self.prefix:
            entry = pwd.getpwnam(PG_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.directory,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def initdb(self) -> None:
        self._own(self.directory)
        result = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", PG_USER,
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def hand_tls_to_server(self) -> None:
        """The docs' `chown -R postgres: .../tls`, once privca has written the directory
        (0700, as it makes any directory that holds a key): without it the server cannot
        read its own certificate when it runs as its own user."""
        if self.prefix:
            result = subprocess.run(
                ["chown", "-R", f"{PG_USER}:", str(self.tls)], capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr

    def install_tls_file(self, source: Path, name: str, mode: int = 0o644) -> Path:
        if not self.tls.exists():
            self.tls.mkdir()
            self._own(self.tls)
        target = self.tls / name
        shutil.copyfile(source, target)
        target.chmod(mode)
        self._own(target)
        return target

    def write_hba(self, lines: str) -> None:
        """pg_hba.conf: the given lines, plus the server user over the unix socket."""
        path = self.data / "pg_hba.conf"
        path.write_text("local all postgres trust\n" + lines)
        self._own(path)

    def configure(self, settings: str) -> None:
        path = self.data / "postgresql.auto.conf"
        path.write_text(settings)
        self._own(path)

    def start(self) -> None:
        error = ""
        for _attempt in range(START_ATTEMPTS):
            # Another test (or a real PostgreSQL) may hold a 127/8 address at 5432.
            self.address = "127.{}.{}.{}".format(*random.sample(range(2, 254), 3))
            options = " ".join(
                [
                    f"-c listen_addresses={self.address}",
                    f"-c port={PORT}",
                    f"-c unix_socket_directories={self.directory}",
                    "-c fsync=off",
                ]
            )
            result = self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data),
                "-l", str(self.directory / "server.log"), "-o", options, "-w", "-t", "30", "-s",
                "start",
            )  # fmt: skip
            if result.returncode == 0:
                self.running = True
                return
            error = result.stdout + result.stderr + self.log_tail()
        raise RuntimeError(f"pg_ctl start failed:\n{error}")

    def reload(self) -> None:
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-s", "reload")
        assert result.returncode == 0, result.stderr

    def sql(self, statement: str) -> str:
        """Run SQL as the server user over the unix socket."""
        result = self._run(
            str(self.bindir / "psql"), "-h", str(self.directory), "-p", str(PORT),
            "-U", PG_USER, "-d", "postgres", "-tAc", statement,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def log_tail(self) -> str:
        try:
            return "\n".join(
                (self.directory / "server.log").read_text(errors="replace").splitlines()[-20:]
            )
        except OSError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The log's tail once it holds `text`, or as it stands after `timeout`.

        The client may exit on the server's alert before the server's backend has
        written its log line for that connection, so the line is waited for.
        """
        deadline = time.monotonic() + timeout
        while text not in (tail := self.log_tail()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return tail

    def stop(self) -> None:
        if self.running:
            self.running = False
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-s", "stop")  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = ["PORT", "TlsPostgres", "find_bindir"]
