"""A throwaway machine for running the docs' commands as written.

- Absolute paths in a command (`/srv/ca`, `/etc/ssl/db`, `/var/lib/...`) are re-rooted
  into the sandbox's own `/`; only /usr, /bin, /lib, /dev, /proc and /sys are the real
  ones. The machine's files are never written.
- The trust stores are the sandbox's: a Debian-layout system store under that `/`
  ($PRIVCA_TRUST_SYSTEM_ROOT, refreshed by the real update-ca-certificates), an NSS
  database and a Java keystore ($PRIVCA_TRUST_NSS_DBS, $PRIVCA_TRUST_JAVA_KEYSTORES).
  SSL_CERT_FILE points at the sandbox's system bundle, so Go, curl and OpenSSL trust what
  `privca trust install` put there, and nothing else.
- Names under corp.internal resolve to 127.0.0.1 and the docs' well-known ports are free
  loopback ports: in Python processes through sitecustomize (tests/docs/site), for Go and
  curl through an HTTP proxy ($HTTPS_PROXY) that connects nowhere else.
- HOME is the sandbox's; certbot's directories are set in its cli.ini under the sandbox.
- Every command runs in one bash session, in order, so `export` and `eval` carry on;
  stdin is /dev/null, so nothing waits for a prompt.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "corp.internal"
# The ports the docs use for servers privca (or a test service) runs; every one, or a
# docs run collides with whatever holds it on the machine (another docs run, a real
# node_exporter-side agent on 9464).
DOC_PORTS = (443, 5432, 8080, 8443, 9464)
PASSPHRASE = "doc test passphrase"
REAL_ROOTS = ("usr", "bin", "lib", "lib64", "sbin", "dev", "proc", "sys")
SITE = Path(__file__).parent / "site"
PROBE = Path(__file__).parent / "probe.py"

# `/srv/ca`, `'/etc/ssl/*.crt'`, `--out=/x`, `VAR=/etc/privca/root.pem`; not `https://h/x`
# (a slash after ':' or a word character), not `1/3`.
_ABSOLUTE = re.compile(r"(?<![\w.:/~\-$])/(?=[A-Za-z_])")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ports: dict[int, int]) -> None:
        self.ports = ports
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    def target(self, host: str, port: int) -> tuple[str, int] | None:
        """Only the sandbox's names and loopback: a test never reaches the network."""
        host = host.strip("[]").lower().rstrip(".")
        if host in ("127.0.0.1", "localhost", "::1") or host.endswith("." + DOMAIN):
            return "127.0.0.1", self.ports.get(port, port)
        return None


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = self.connection.recv(4096)
            if not chunk:
                return
            head += chunk
        request_line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ", 2)
        except ValueError:
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            destination = self.server.target(host, int(port))
            if destination is None:
                self.connection.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            upstream = socket.create_connection(destination, timeout=30)
            self.connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = head.split(b"\r\n\r\n", 1)[1]
            if leftover:
                upstream.sendall(leftover)
        else:  # absolute-form: GET http://host:port/path HTTP/1.1
            match = re.match(r"http://([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?$", target)
            destination = (
                self.server.target(match.group(1), int(match.group(2) or 80)) if match else None
            )
            if match is None or destination is None:
                self.connection.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            upstream = socket.create_connection(destination, timeout=30)
            path = match.group(3) or "/"
            upstream.sendall(f"{method} {path} {version}\r\n".encode("latin-1") + rest)
        self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        sockets = [self.connection, upstream]
        with upstream:
            while True:
                readable, _, _ = select.select(sockets, [], [], 60)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)


class Sandbox:
    """One throwaway machine per documentation file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"  # the commands' `/`
        self.work = base / "work"  # their current directory
        self.home = base / "home"
        for directory in (self.root, self.work, self.home):
            directory.mkdir(parents=True)
        self.ports = {port: free_port() for port in DOC_PORTS}
        self._proxy = _Proxy(self.ports)
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        self._prepare_trust_stores()
        self._prepare_certbot()
        self.env = self._environment()
        self._shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.work,
            env=self.env,
            text=True,
            start_new_session=True,
        )
        self._count = 0
        self.background: list[tuple[int, Path]] = []
        self.cleanups: list[Callable[[], None]] = []

    # the machine ----------------------------------------------------------------------

    def map_port(self, doc_port: int, real_port: int) -> None:
        """Point a port of the docs at a server a test started on its own free port."""
        self.ports[doc_port] = real_port  # the proxy reads the same dict
        self.run(f"export PRIVCA_DOCTEST_PORTS={shlex.quote(json.dumps(self.ports))}")

    def path(self, absolute: str) -> Path:
        """Where an absolute path of the docs lives in the sandbox."""
        return self.root / absolute.lstrip("/")

    def reroot(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            following = text[match.end() :].split("/", 1)[0]
            if following in REAL_ROOTS:
                return "/"
            return f"{self.root}/"

        return _ABSOLUTE.sub(replace, text)

    def _prepare_trust_stores(self) -> None:
        from privca.trust.linux import build_refresh_argv
        from tests.trust.support import DEBIAN, make_ca

        for sub in (
            "etc/ssl/certs",
            "etc/ca-certificates/update.d",
            "usr/local/share/ca-certificates",
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        distro = self.root / "usr/share/ca-certificates/distro"
        make_ca(distro, "Sandbox Distribution Root", "Distro_Root.crt")
        (self.root / "etc/ca-certificates.conf").write_text("distro/Distro_Root.crt\n")
        argv = build_refresh_argv(DEBIAN, "update-ca-certificates", self.root)
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
        self.nss_db = self.home / ".pki" / "nssdb"
        self.nss_db.mkdir(parents=True)
        subprocess.run(
            ["certutil", "-N", "-d", f"sql:{self.nss_db}", "--empty-password"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.java_keystore = self.root / "etc/ssl/certs/java/cacerts"
        self.java_keystore.parent.mkdir()  # as ca-certificates-java leaves it

    def _prepare_certbot(self) -> None:
        config = self.home / ".config" / "letsencrypt"
        config.mkdir(parents=True)
        (config / "cli.ini").write_text(
            f"config-dir = {self.root}/etc/letsencrypt\n"
            f"work-dir = {self.root}/var/lib/letsencrypt\n"
            f"logs-dir = {self.root}/var/log/letsencrypt\n"
        )

    def _environment(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV", "JAVA_HOME", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        bindir = str(Path(sys.executable).parent)  # privca and certbot of this environment
        proxy = f"http://127.0.0.1:{self._proxy.server_address[1]}"
        env.update(
            {
                "PATH": bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "PYTHONPATH": str(SITE),
                "PRIVCA_DOCTEST_DOMAIN": DOMAIN,
                "PRIVCA_DOCTEST_PORTS": json.dumps(self.ports),
                "PRIVCA_PASSPHRASE": PASSPHRASE,
                "PRIVCA_TRUST_SYSTEM_ROOT": str(self.root),
                "PRIVCA_TRUST_NSS_DBS": str(self.nss_db),
                "PRIVCA_TRUST_JAVA_KEYSTORES": str(self.java_keystore),
                "SSL_CERT_FILE": str(self.root / "etc/ssl/certs/ca-certificates.crt"),
                "SSL_CERT_DIR": str(self.root / "etc/ssl/certs"),
                "HTTPS_PROXY": proxy,
                "https_proxy": proxy,
                "HTTP_PROXY": proxy,
                "http_proxy": proxy,
                "NO_PROXY": "",
                "no_proxy": "",
            }
        )
        return env

    # the session ----------------------------------------------------------------------

    def run(self, command: str, timeout: float = 180) -> Outcome:
        """Run one command in the session and wait for it."""
        self._count += 1
        out, err, status = (self.base / f"{self._count}.{s}" for s in ("out", "err", "status"))
        script = (
            f"{{ {command}\n}} >{shlex.quote(str(out))} 2>{shlex.quote(str(err))} </dev/null\n"
            f"echo $? >{shlex.quote(str(status))}.tmp && mv {shlex.quote(str(status))}.tmp "
            f"{shlex.quote(str(status))}\n"
        )
        assert self._shell.stdin is not None
        self._shell.stdin.write(script)
        self._shell.stdin.flush()
        deadline = time.monotonic() + timeout
        while not status.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer within {timeout:.0f} s")
            if self._shell.poll() is not None:
                raise RuntimeError("the shell session ended (a command ran `exit`?)")
            time.sleep(0.05)
        return Outcome(
            int(status.read_text()),
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )

    def start(self, command: str) -> int:
        """Start a long-running command (a server) in the background of the session; its
        PID (a simple command: the process itself, so SIGTERM reaches it)."""
        self._count += 1
        log, pid = self.base / f"{self._count}.log", self.base / f"{self._count}.pid"
        self.run(f"{command} >{shlex.quote(str(log))} 2>&1 </dev/null &\necho $! >{pid}")
        number = int(pid.read_text())
        self.background.append((number, log))
        return number

    def stop_background(self) -> None:
        for pid, _ in self.background:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        for pid, _ in self.background:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        self.run("wait")
        self.background.clear()

    def alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return (
            Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text(errors="replace").lower()
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_background()
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        with contextlib.suppress(Exception):
            assert self._shell.stdin is not None
            self._shell.stdin.close()
        try:
            self._shell.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._shell.pid, 9)
        self._proxy.shutdown()
        self._proxy.server_close()
        # Processes a doc line left behind (e.g. a daemon) go with the session group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._shell.pid, 9)
