"""ACME benchmark (by hand, not CI): step-ca, privca and pebble side by side in one run.

For each server, the same client (lego 4.9, http-01) does a full issuance: new account,
new order, validation, finalize, download. Runs are interleaved (round r: every server
once, in an order rotated each round) so that the noise of a shared machine falls on all
of them alike; then N lego processes at once against each server (wall time). It prints
medians, spreads, the servers' own CPU seconds per issuance and the ratios.

    python benchmarks/acme.py                    # 7 rounds, 8-way parallel x 3 (~2 min)
    python benchmarks/acme.py --rounds 15 --parallel-rounds 5
    python benchmarks/acme.py --servers privca,step-ca --privca-arg=--no-tls ...

Every server really validates: each resolves names with one pebble-challtestsrv (any name
-> 127.0.0.1) and fetches http://NAME:80/.well-known/acme-challenge/TOKEN, because step-ca
0.19 validates on port 80 only. Port 80 is answered by one small responder in this process
serving the directory that every lego writes its tokens to (`--http.webroot`), so 8
parallel lego processes do not fight over the port. Binding port 80 needs root (or
CAP_NET_BIND_SERVICE).

- step-ca: built once from Debian's Go sources with /work/shared/peers/step-ca/build.sh
  into ~/.cache/privca-bench/step-ca (override: --step-ca-bin or $PRIVCA_STEP_CA_PEER for
  the peer directory); a fresh CA from make-ca.sh every run (badger store).
- privca: `python -m privca serve` (the privca this interpreter imports) over a fresh
  home made with `privca init` (SQLite, encrypted keys), TLS on, its default logging to a
  file. If `privca serve --help` offers `--allow-loopback-validation`, it is passed.
- pebble: Debian's pebble 2.4 with PEBBLE_VA_NOSLEEP=1 (no random sleep before
  validating) and PEBBLE_WFE_NONCEREJECT=0 (no deliberately rejected nonces).

Targets (issue 13): privca's median and parallel wall time <= step-ca's in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _bench import (
    BenchError,
    challenge_responder,
    cpu_seconds,
    dns_server,
    free_port,
    loadavg,
    machine,
    package_version,
    process_tree,
)

PEER = Path(os.environ.get("PRIVCA_STEP_CA_PEER", "/work/shared/peers/step-ca"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "privca-bench"
PASSPHRASE = b"benchmark passphrase\n"
HTTP_01_PORT = 80


def wait_for_directory(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                json.loads(response.read())
                return
        except (OSError, ValueError):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise BenchError(f"{url} never answered:\n{tail}") from None
            time.sleep(0.1)


# the shared parts: DNS and the port-80 responder ------------------------------------------


# the servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """One ACME server process under test."""

    name: str
    directory: str = ""
    roots: list[Path] = field(default_factory=list)  # PEM files lego must trust
    process: subprocess.Popen[bytes] | None = None
    log: Path = Path("/dev/null")
    trace: Path | None = None  # strace's output when run with --strace

    def start(self, work: Path, dns: str) -> None:
        raise NotImplementedError

    def launch(self, args: list[str], work: Path, env: dict[str, str] | None = None) -> None:
        """Start the server process, under strace (fsync calls only) with --strace."""
        prefix: list[str] = []
        if self.trace is not None:
            self.trace = work / f"{self.name}.strace"
            prefix = ["strace", "-f", "-y", "--seccomp-bpf", "-e", "trace=fsync,fdatasync",
                      "-o", str(self.trace)]  # fmt: skip
        self.log = work / f"{self.name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*prefix, *args], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    @property
    def pid(self) -> int:
        """The server's own process id (strace's child under --strace)."""
        if self.process is None:
            raise BenchError(f"{self.name} is not running")
        if self.trace is None:
            return self.process.pid
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def fsyncs(self) -> int:
        """fsync + fdatasync calls so far (strace writes one line per call)."""
        if self.trace is None or not self.trace.exists():
            return 0
        text = self.trace.read_text(errors="replace")
        return text.count("fsync(") + text.count("fdatasync(")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(OSError, BenchError):
            os.kill(self.pid, signal.SIGTERM)  # strace then exits with its tracee
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def cpu(self) -> float:
        """user+sys of the server and every process under it (`serve --workers N`)."""
        if self.process is None:
            return 0.0
        return sum(cpu_seconds(pid) for pid in process_tree(self.pid))

    def version(self) -> str:
        return ""


class StepCa(Server):
    def __init__(self, binary: Path | None) -> None:
        super().__init__("step-ca")
        self.binary = binary

    def build(self) -> Path:
        """The step-ca binary: given, cached, or built once into the cache (~30 s to 4 min)."""
        if self.binary is not None:
            return self.binary
        cached = CACHE / "step-ca" / "step-ca"
        if cached.is_file():
            return cached
        script = PEER / "build.sh"
        if not script.is_file():
            raise BenchError(f"no {script}: give --step-ca-bin or set $PRIVCA_STEP_CA_PEER")
        print(f"building step-ca once into {cached.parent} (Debian Go sources, offline) ...")
        subprocess.run([str(script), str(cached.parent)], check=True, stdout=subprocess.DEVNULL)
        return cached

    def start(self, work: Path, dns: str) -> None:
        binary = self.build()
        port = free_port()
        ca = work / "step-ca"
        subprocess.run(
            [str(PEER / "make-ca.sh"), str(ca), str(port)], check=True, stdout=subprocess.DEVNULL
        )
        self.launch([str(binary), "-resolver", dns, str(ca / "ca.json")], work)
        self.roots = [ca / "root.crt"]
        self.directory = f"https://127.0.0.1:{port}/acme/acme/directory"
        wait_for_directory(self.directory, self.process, self.log)

    def version(self) -> str:
        return "0.19.0 (golang-github-smallstep-certificates-dev, built from Debian sources)"


class Privca(Server):
    def __init__(
        self, extra_args: Sequence[str], name: str = "privca", source: Path | None = None
    ) -> None:
        super().__init__(name)
        self.extra_args = list(extra_args)
        # Another privca's source tree (e.g. a `git archive` of main's src/) for a
        # before/after comparison in one run; None: the privca this interpreter imports.
        self.source = source
        self.env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}

    def command(self, home: Path) -> list[str]:
        return [sys.executable, "-m", "privca", "--home", str(home)]

    def start(self, work: Path, dns: str) -> None:
        home = work / f"{self.name}-home"
        passphrase = work / f"{self.name}.pass"
        passphrase.write_bytes(PASSPHRASE)
        passphrase.chmod(0o600)
        subprocess.run(
            [*self.command(home), "init", "--name", "Bench CA",
             "--passphrase-file", str(passphrase)],
            check=True, stdout=subprocess.DEVNULL, env=self.env,
        )  # fmt: skip
        # Every lego run registers a new account from 127.0.0.1, standing in for a host of
        # its own: lift the per-network newAccount limit (an older privca ignores the key).
        with (home / "privca.toml").open("a") as settings:
            settings.write("\n[acme]\naccounts_per_window = 1000000\n")
        port = free_port()
        flags = ["--http-01-port", str(HTTP_01_PORT), "--dns-resolver", dns]
        help_text = subprocess.run(
            [*self.command(home), "serve", "--help"],
            capture_output=True, text=True, check=True, env=self.env,
        ).stdout  # fmt: skip
        if "--allow-loopback-validation" in help_text:
            flags.append("--allow-loopback-validation")  # every name here is 127.0.0.1
        self.launch(
            [*self.command(home), "serve", "--listen", f"127.0.0.1:{port}",
             "--server-name", "localhost", "--server-name", "127.0.0.1", *flags,
             "--passphrase-file", str(passphrase),
             *self.extra_args],
            work,
            self.env,
        )  # fmt: skip
        self.roots = [home / "certs" / "root.crt"]
        scheme = "http" if "--no-tls" in self.extra_args else "https"
        self.directory = f"{scheme}://127.0.0.1:{port}/acme/directory"
        wait_for_directory(self.directory, self.process, self.log)

    def version(self) -> str:
        import importlib.metadata

        where = f", from {self.source}" if self.source is not None else ""
        args = f", {' '.join(self.extra_args)}" if self.extra_args else ""
        version = importlib.metadata.version("privca")
        return f"{version} (Python {sys.version.split()[0]}{where}{args})"


class Pebble(Server):
    def __init__(self) -> None:
        super().__init__("pebble")

    def start(self, work: Path, dns: str) -> None:
        cert, key = work / "pebble.crt", work / "pebble.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "7",
             "-subj", "/CN=pebble bench", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{port}",
                "managementListenAddress": f"127.0.0.1:{free_port()}",
                "certificate": str(cert),
                "privateKey": str(key),
                "httpPort": HTTP_01_PORT,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (work / "pebble.json").write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        self.launch(["pebble", "-config", str(work / "pebble.json"), "-dnsserver", dns], work, env)
        self.roots = [cert]  # lego trusts pebble's self-signed listener certificate
        self.directory = f"https://127.0.0.1:{port}/dir"
        wait_for_directory(self.directory, self.process, self.log)

    def version(self) -> str:
        return "2.4.0 (Debian; real http-01 validation, no sleep)"


# the client --------------------------------------------------------------------------------


@dataclass
class Lego:
    bundle: Path  # every server's root, concatenated
    webroot: Path
    work: Path
    runs: int = 0

    def command(self, server: Server, name: str) -> tuple[list[str], Path]:
        self.runs += 1
        path = self.work / f"lego-{self.runs}"
        return [
            "lego", "--server", server.directory, "--accept-tos", "--email", "bench@example.test",
            "--path", str(path), "--domains", name,
            "--http", "--http.webroot", str(self.webroot), "run",
        ], path  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "LEGO_CA_CERTIFICATES": str(self.bundle)}

    def once(self, server: Server, name: str) -> float:
        args, _path = self.command(server, name)
        started = time.perf_counter()
        result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=self.env())
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise BenchError(f"lego against {server.name} failed:\n{result.stderr[-3000:]}")
        return elapsed

    def parallel(self, server: Server, names: Sequence[str]) -> float:
        """Wall time of len(names) lego processes started together."""
        commands = [self.command(server, name)[0] for name in names]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env()
            )
            for args in commands
        ]
        failures = []
        for process in processes:
            _out, err = process.communicate(timeout=300)
            if process.returncode != 0:
                failures.append(err.decode(errors="replace")[-1500:])
        elapsed = time.perf_counter() - started
        if failures:
            raise BenchError(f"{len(failures)} parallel lego runs against {server.name} failed:\n"
                             + failures[0])  # fmt: skip
        return elapsed


# the run -----------------------------------------------------------------------------------


@dataclass
class Figures:
    sequential: list[float] = field(default_factory=list)
    parallel: list[float] = field(default_factory=list)
    cpu_sequential: float = 0.0  # the server's CPU seconds over the sequential runs
    cpu_parallel: float = 0.0
    fsyncs_sequential: int = 0


def rotated(items: Sequence[Server], by: int) -> list[Server]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def spread(values: Sequence[float]) -> str:
    """min [q1 q3] max: how noisy the runs were."""
    if len(values) < 4:
        return f"{min(values):.3f} .. {max(values):.3f}"
    q = statistics.quantiles(values, n=4)
    return f"{min(values):.3f} [{q[0]:.3f} {q[2]:.3f}] {max(values):.3f}"


SERVERS = ("step-ca", "privca", "pebble")


def make_servers(args: argparse.Namespace) -> list[Server]:
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not wanted or any(w not in SERVERS for w in wanted):
        raise BenchError(f"--servers takes a comma-separated list of: {', '.join(SERVERS)}")
    servers: list[Server] = []
    for name in wanted:
        if name == "step-ca":
            servers.append(StepCa(args.step_ca_bin))
        elif name == "privca":
            servers.append(Privca(args.privca_arg))
        else:
            servers.append(Pebble())
    if args.privca_base is not None:
        servers.append(Privca(args.privca_arg, "privca-base", args.privca_base.resolve()))
    for also in args.privca_also:
        name, _sep, extra = also.partition("=")
        if not name.startswith("privca-") or name in {s.name for s in servers}:
            raise BenchError(f"--privca-also {also!r}: NAME must be a new privca-SOMETHING")
        servers.append(Privca(extra.split(), name))
    if args.strace:
        for server in servers:
            server.trace = Path("strace")  # the real path is set at launch
    return servers


def run(args: argparse.Namespace) -> None:
    tools = ["lego", "pebble", "pebble-challtestsrv", "openssl"] + ["strace"] * args.strace
    for tool in tools:
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (Debian packages lego, pebble, openssl)")
    servers = make_servers(args)
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="privca-acme-bench-"))
        if args.keep:
            print(f"keeping {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        webroot = work / "webroot"
        stack.enter_context(challenge_responder(webroot, HTTP_01_PORT))
        dns = stack.enter_context(dns_server())
        for server in servers:
            stack.callback(server.stop)
            server.start(work, dns)
        bundle = work / "roots.pem"
        bundle.write_bytes(b"".join(r.read_bytes() for s in servers for r in s.roots))
        lego = Lego(bundle, webroot, work)
        figures = {s.name: Figures() for s in servers}

        print(machine())
        for server in servers:
            print(f"  {server.name:11} {server.version()}")
        print(f"  lego     {package_version('lego')} (Debian), http-01 via --http.webroot")
        print(f"load average before: {loadavg()}")
        for server in servers:  # warm-up: lazy imports, first connections, caches
            lego.once(server, f"warm-{server.name}.bench.test")

        for r in range(args.rounds):
            for server in rotated(servers, r):
                f = figures[server.name]
                cpu, fsyncs = server.cpu(), server.fsyncs()
                f.sequential.append(lego.once(server, f"s{r}-{server.name}.bench.test"))
                f.cpu_sequential += server.cpu() - cpu
                f.fsyncs_sequential += server.fsyncs() - fsyncs
        for r in range(args.parallel_rounds):
            for server in rotated(servers, r):
                f = figures[server.name]
                cpu = server.cpu()
                names = [f"p{r}-{i}-{server.name}.bench.test" for i in range(args.parallel)]
                f.parallel.append(lego.parallel(server, names))
                f.cpu_parallel += server.cpu() - cpu
        print(f"load average after:  {loadavg()}")
        report(args, servers, figures)


def report(
    args: argparse.Namespace, servers: Sequence[Server], figures: dict[str, Figures]
) -> None:
    per_seq, per_par = args.rounds, args.parallel_rounds * args.parallel
    print()
    print(
        "lego http-01 issuance (new account + order + validation + finalize + download), "
        f"{args.rounds} interleaved rounds; {args.parallel} lego at once x "
        f"{args.parallel_rounds}; server CPU = the server process's user+sys per issuance"
    )
    header = f"{'':12}{'median s':>9}  {'min [q1 q3] max':<31}{'CPU ms':>7}"
    header += f"   {args.parallel}-way wall s  {'min .. max':<15}{'CPU ms':>7}"
    if args.strace:
        header += "   fsync/issue"
    print(header)
    for server in servers:
        f = figures[server.name]
        line = (
            f"{server.name:12}{statistics.median(f.sequential):9.3f}  {spread(f.sequential):<31}"
            f"{f.cpu_sequential / per_seq * 1000:7.1f}   {statistics.median(f.parallel):12.3f}  "
            f"{min(f.parallel):.3f} .. {max(f.parallel):.3f}  "
            f"{f.cpu_parallel / per_par * 1000:7.1f}"
        )
        if args.strace:
            line += f"   {f.fsyncs_sequential / per_seq:11.1f}"
        print(line)
    for mine, p in figures.items():
        if not mine.startswith("privca"):
            continue
        for other, o in figures.items():
            if other.startswith("privca"):
                continue
            median = statistics.median(p.sequential) / statistics.median(o.sequential)
            wall = statistics.median(p.parallel) / statistics.median(o.parallel)
            cpu = p.cpu_sequential / max(o.cpu_sequential, 1e-9)
            target = "   (target: <= 1.00 on both)" if other == "step-ca" else ""
            print(
                f"{mine} / {other}: median {median:.2f}x, {args.parallel}-way wall "
                f"{wall:.2f}x, server CPU {cpu:.2f}x{target}"
            )
    if args.strace:
        print("(--strace: timings include strace's stops; compare them only with each other)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="sequential rounds (default 7)")
    parser.add_argument("--parallel", type=int, default=8, help="lego processes at once (8)")
    parser.add_argument("--parallel-rounds", type=int, default=3, help="(default 3)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="(default: all three)")
    parser.add_argument("--step-ca-bin", type=Path, default=None, help="a step-ca binary")
    parser.add_argument(
        "--privca-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `privca serve` (repeatable), e.g. --privca-arg=--no-tls",
    )
    parser.add_argument(
        "--strace", action="store_true", help="count each server's fsync/fdatasync calls"
    )
    parser.add_argument(
        "--privca-base",
        type=Path,
        default=None,
        metavar="SRC",
        help="also run privca from this source tree (PYTHONPATH), as privca-base: e.g. "
        "`git archive main src | tar -x -C /tmp/main` then --privca-base /tmp/main/src",
    )
    parser.add_argument(
        "--privca-also",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="also run privca with these serve arguments, e.g. 'privca-w2=--workers 2'",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    if args.rounds < 1 or args.parallel < 1 or args.parallel_rounds < 1:
        parser.error("--rounds, --parallel and --parallel-rounds must be at least 1")
    try:
        run(args)
    except BenchError as exc:
        sys.exit(f"acme.py: {exc}")


if __name__ == "__main__":
    main()
