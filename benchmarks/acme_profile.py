"""Where privca's ACME time goes, per request type (by hand, not CI).

Runs privca's server app in this process under uvicorn with TLS, set up as `privca serve`
sets it up (same app, same uvicorn options, access log on, written to a file), drives it
with N sequential lego 4.9 http-01 issuances, and prints for each ACME request type:

- wall time inside the app and the process CPU time (user+sys, all threads) it used;
- database work: new SQLite connections, write and read transactions, statements;
- time in the parts that the performance work of issue 13 is about: JWS parse and
  verify, nonce issue and use, the http-01 validator, signing (the issuer), JSON encode;

then the CPU spent outside the app (TLS handshakes, HTTP parsing, access log), and micro
measurements: one TLS handshake (server CPU), one nonce write, one SQLite commit with
synchronous=FULL vs NORMAL, one connection open with privca's PRAGMAs, one ES256 verify.
With --py-spy it also samples the whole process with py-spy and sorts the on-CPU samples
into categories (ssl, uvicorn/h11, starlette, sqlalchemy, sqlite3 C, josepy/cryptography,
logging, privca).

    python benchmarks/acme_profile.py                 # 20 issuances
    python benchmarks/acme_profile.py --n 50 --py-spy
    python benchmarks/acme_profile.py --no-tls

Needs lego and pebble-challtestsrv; port 80 is not needed (privca validates on any port).
The timers wrap privca's objects from outside; all of that lives in `instrument()`.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib.util
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This directory holds acme.py: keep it off sys.path so `import acme` finds certbot's.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench only

from _bench import (  # noqa: E402
    BenchError,
    challenge_responder_process,
    dns_server,
    free_port,
    loadavg,
    machine,
)

PASSPHRASE = b"benchmark passphrase"
PARTS = (
    "db",
    "nonce.new",
    "nonce.use",  # spending the request's nonce (with the next one: NonceSource.exchange)
    "jws.parse",
    "jws.verify",
    "validate",
    "issue",
    "sign",
    "encode",
)


@dataclass
class RequestStats:
    variant: str
    kind: str
    wall: float = 0.0
    cpu: float = 0.0
    connects: int = 0
    writes: int = 0
    reads: int = 0
    statements: int = 0
    parts: dict[str, float] = field(default_factory=dict)
    depth: Counter[str] = field(default_factory=Counter)  # nested calls count once


CURRENT: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "current", default=None
)
RECORDS: list[RequestStats] = []


def kind_of(path: str) -> str:
    parts = path.removeprefix("/acme/").split("/")
    head = parts[0]
    if head == "order" and len(parts) > 2 and parts[2] == "finalize":
        return "finalize"
    return {"order": "order (poll)", "cert": "cert download"}.get(head, head)


class Instrument:
    """ASGI middleware: one RequestStats per HTTP request."""

    def __init__(self, app: Any, variant: str) -> None:
        self.app = app
        self.variant = variant

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats = RequestStats(self.variant, kind_of(scope["path"]))
        token = CURRENT.set(stats)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            stats.wall = time.perf_counter() - wall
            stats.cpu = time.process_time() - cpu
            CURRENT.reset(token)
            RECORDS.append(stats)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stats = CURRENT.get()
        if stats is None or stats.depth[name]:
            return function(*args, **kwargs)
        stats.depth[name] += 1
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            stats.depth[name] -= 1
            stats.parts[name] = stats.parts.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def time_methods(name: str, instance: Any) -> None:
    """Time every public method of one object under one name."""
    for attribute in dir(type(instance)):
        method = getattr(instance, attribute)
        if not attribute.startswith("_") and callable(method):
            setattr(instance, attribute, timed(name, method))


VARIANTS = {
    # The earlier "pool" and "pool-nonce" variants are what the store does now.
    "as-is": "the code as it is",
}


def patch_modules() -> None:
    """Timers on module-level functions (once per process; they time the current request)."""
    from privca import issuance
    from privca.acme import jws
    from privca.acme import routes as acme_routes

    jws.parse_jws = timed("jws.parse", jws.parse_jws)
    jws.verify = timed("jws.verify", jws.verify)
    acme_routes._json = timed("encode", acme_routes._json)
    issuance.build_certificate = timed("sign", issuance.build_certificate)


def count_database_work(engine: Any) -> None:
    """Counts what SQLite runs, from its driver's trace callback: SQLAlchemy's events do
    not see the store's reads and writes on a pooled connection's own cursor (rows.py)."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _connect(*_args: Any) -> None:
        stats = CURRENT.get()
        if stats is not None:
            stats.connects += 1

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, *_args: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        driver.set_trace_callback(_Trace().statement)


class _Trace:
    """One pooled connection's statements: BEGIN IMMEDIATE is a write transaction, BEGIN a
    read, and a statement outside BEGIN ... COMMIT its own (read) transaction."""

    def __init__(self) -> None:
        self.inside = False

    def statement(self, sql: str) -> None:
        stats = CURRENT.get()
        word = sql.lstrip()[:16].upper()
        if word.startswith("BEGIN"):
            self.inside = True
            if stats is not None:
                if "IMMEDIATE" in word:
                    stats.writes += 1
                else:
                    stats.reads += 1
            return
        if word.startswith(("COMMIT", "ROLLBACK")):
            self.inside = False
            return
        if stats is None or word.startswith(("PRAGMA", "SAVEPOINT", "RELEASE")):
            return
        stats.statements += 1
        if not self.inside:
            stats.reads += 1


def instrument(app: Any, ca: Any, variant: str) -> None:
    """Everything that reaches into privca's internals (they may move: fix it here): the
    variant's engines, the counters and the timers on this app's objects."""
    acme_app = next(r.app for r in app.routes if getattr(r, "path", "") == "/acme")
    service = acme_app.state.acme_service
    store = ca._store  # the authority's own; benchmarks may look inside
    engines = [store.engine]
    for engine in engines:
        count_database_work(engine)
    service.nonces.new = timed("nonce.new", service.nonces.new)
    service.nonces.exchange = timed("nonce.use", service.nonces.exchange)
    # kid-signed requests spend the nonce and read the account in one transaction
    service.nonces.exchange_reading = timed("nonce.use", service.nonces.exchange_reading)
    service.validator.validate = timed("validate", service.validator.validate)
    service.issuer.issue = timed("issue", service.issuer.issue)
    time_methods("db", service.repository)
    time_methods("db", service.nonces.repository)
    time_methods("db", store)


def build(work: Path, dns: str, http_port: int) -> tuple[Any, Any, Any]:
    """A fresh CA and the app `privca serve` would run, with its TLS certificate."""
    from privca._time import utcnow
    from privca.acme.service import AcmeSettings
    from privca.authority import CertificateAuthority
    from privca.server.app import build_app
    from privca.server.settings import ServerSettings
    from privca.server.tls import ServerCertificate

    ca = CertificateAuthority.init(work, "Bench CA", passphrase=PASSPHRASE)
    acme: dict[str, Any] = {"http_01_port": http_port, "dns_resolver": dns}
    if "allow_loopback" in getattr(AcmeSettings, "__dataclass_fields__", {}):
        acme["allow_loopback"] = True  # the harden branch's opt-in; every name is 127.0.0.1
    if "accounts_per_window" in getattr(AcmeSettings, "__dataclass_fields__", {}):
        # Every lego here registers from 127.0.0.1, standing in for hosts of their own.
        acme["accounts_per_window"] = 1_000_000
    app = build_app(ca, ServerSettings(acme=AcmeSettings(**acme)))
    app.state.ocsp.prepare(utcnow())
    tls = ServerCertificate(ca, ["127.0.0.1", "localhost"])
    tls.obtain()
    return ca, app, tls


@contextlib.contextmanager
def serving(
    app: Any, variant: str, tls: Any, port: int, log: Path, use_tls: bool
) -> Iterator[None]:
    import logging

    import uvicorn

    handler = logging.FileHandler(log)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    config = uvicorn.Config(
        Instrument(app, variant),
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(tls.certfile) if use_tls else None,
        ssl_keyfile=None,  # the certfile holds the key too
        log_config=None,
        log_level="info",
        access_log=True,
        server_header=False,
        # as serve: uvloop's loop when installed (privca.cli.serve.event_loop_factory)
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    )
    server = uvicorn.Server(config)
    try:  # as serve does once its app is built (a source tree from before it has none)
        from privca.server.collector import settle
    except ImportError:
        pass
    else:
        settle()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BenchError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Lego:
    """lego http-01 with its tokens in a webroot that one responder serves."""

    webroot: Path
    work: Path

    def args(self, url: str, name: str) -> list[str]:
        return [
            "lego", "--server", url, "--accept-tos", "--email", "bench@example.test",
            "--path", str(self.work / name), "--domains", name,
            "--http", "--http.webroot", str(self.webroot), "run",
        ]  # fmt: skip

    def once(self, url: str, root: Path, name: str) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            self.args(url, name),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LEGO_CA_CERTIFICATES": str(root)},
        )
        if result.returncode != 0:
            raise BenchError(f"lego failed:\n{result.stderr[-3000:]}")
        return time.perf_counter() - started

    def parallel(self, url: str, root: Path, names: list[str]) -> float:
        env = {**os.environ, "LEGO_CA_CERTIFICATES": str(root)}
        started = time.perf_counter()
        processes = [
            subprocess.Popen(self.args(url, name), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
            for name in names
        ]  # fmt: skip
        errors = [p.communicate(timeout=300)[1] for p in processes]
        failed = [e for p, e in zip(processes, errors, strict=True) if p.returncode != 0]
        if failed:
            raise BenchError(f"{len(failed)} parallel lego runs failed:\n{failed[0][-2000:]!r}")
        return time.perf_counter() - started


# py-spy ------------------------------------------------------------------------------------

# First match from the leaf up decides a sample's category.
CATEGORIES = (
    ("ssl (TLS handshake, record layer)", ("ssl.py", "sslproto.py", "_ssl")),
    ("sqlite3 C (incl. fsync, open, WAL)", ("sqlite3/", "<built-in method execute", "commit")),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("josepy / cryptography (JWS, keys)", ("josepy/", "cryptography/")),
    ("x509 build + sign (privca.x509)", ("privca/x509/",)),
    ("logging", ("logging/",)),
    ("dns / sockets (validator)", ("dns/", "socket.py", "http/client.py")),
    ("privca acme + store", ("privca/",)),
    ("certbot acme messages", ("acme/",)),
    ("starlette / anyio", ("starlette/", "anyio/")),
    ("uvicorn / h11 / httptools", ("uvicorn/", "h11/", "httptools/")),
    ("asyncio event loop", ("asyncio/",)),
)


def categorize(raw: Path) -> tuple[Counter[str], Counter[str]]:
    """py-spy --format raw ('frame;frame;...;leaf COUNT' per line): samples per category,
    and per leaf function (where the CPU was when sampled)."""
    totals: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaves[frames[-1].split(" (")[0] + " (" + frames[-1].rsplit("/", 1)[-1]] += int(count)
        for frame in reversed(frames):
            hit = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit is not None:
                totals[hit] += int(count)
                break
        else:
            totals["other"] += int(count)
    return totals, leaves


# micro measurements ------------------------------------------------------------------------

CONNECTIONS = """
import socket, ssl, sys, time
port, n, cafile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=cafile) if cafile != "-" else None
REQUEST = b"GET /ca/root.crt HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"
started = time.perf_counter()
for _ in range(n):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        sock.sendall(REQUEST)
        while sock.recv(65536):
            pass
print((time.perf_counter() - started) / n)
"""


def micro(work: Path, port: int, root: Path, ca: Any, use_tls: bool) -> list[tuple[str, float]]:
    n = 100
    cpu = time.process_time()
    out = subprocess.run(
        [sys.executable, "-c", CONNECTIONS, str(port), str(n), str(root) if use_tls else "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    server_cpu = (time.process_time() - cpu) / n
    what = "TLS connect" if use_tls else "plain connect"
    results = [
        (f"{what} + GET /ca/root.crt + close: client wall", float(out.stdout)),
        (f"{what} + GET /ca/root.crt + close: server CPU", server_cpu),
    ]
    results.extend(sqlite_micro(work))
    results.extend(nonce_micro(ca))
    results.extend(jws_micro())
    return results


def sqlite_micro(work: Path, n: int = 200) -> list[tuple[str, float]]:
    """One small insert+commit in WAL mode, FULL vs NORMAL; one open with privca's PRAGMAs."""
    out: list[tuple[str, float]] = []
    path = work / "micro.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE IF NOT EXISTS n (v TEXT PRIMARY KEY, e TEXT)")
    setup.commit()
    for mode in ("FULL", "NORMAL"):
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute(f"PRAGMA synchronous={mode}")
        started = time.perf_counter()
        for i in range(n):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO n VALUES (?, ?)", (f"{mode}{i}", "x"))
            connection.execute("COMMIT")
        out.append((f"SQLite commit, WAL, synchronous={mode}", (time.perf_counter() - started) / n))
        connection.close()
    setup.close()  # the last connection: the WAL is checkpointed and deleted
    started = time.perf_counter()
    for i in range(n // 4):
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=60000")
        connection.execute("PRAGMA journal_mode").fetchone()
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO n VALUES (?, ?)", (f"open{i}", "x"))
        connection.execute("COMMIT")
        connection.close()
    out.append(
        (
            "SQLite open + PRAGMAs + commit + close (NullPool, last connection)",
            (time.perf_counter() - started) / (n // 4),
        )
    )
    return out


def nonce_micro(ca: Any, n: int = 100) -> list[tuple[str, float]]:
    from privca.acme.nonces import NonceSource

    source = NonceSource(ca.acme_repository())
    started = time.perf_counter()
    values = [source.new() for _ in range(n)]
    issued = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for value in values:
        source.exchange(value)
    used = (time.perf_counter() - started) / n
    return [
        ("privca nonce: new (store write)", issued),
        ("privca nonce: spend one and hand out the next (one store write)", used),
    ]


def jws_micro(n: int = 200) -> list[tuple[str, float]]:
    import josepy as jose
    from acme import jws as acme_jws
    from cryptography.hazmat.primitives.asymmetric import ec

    from privca.acme import jws

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jose.JWKEC(key=key)
    message = acme_jws.JWS.sign(
        b'{"identifiers":[{"type":"dns","value":"a.test"}]}',
        key=jwk,
        alg=jose.ES256,
        nonce=b"abcdefgh",
        url="https://x/acme/new-order",
        kid="https://x/acme/account/1",
    )
    body = message.json_dumps().encode()
    started = time.perf_counter()
    for _ in range(n):
        parsed = jws.parse_jws(body)
    parse = (time.perf_counter() - started) / n
    public = jwk.public_key()
    started = time.perf_counter()
    for _ in range(n):
        jws.verify(parsed, public)
    verify = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for _ in range(n):
        jws.load_jwk(jws.jwk_json(public))
    load = (time.perf_counter() - started) / n
    return [
        ("JWS parse (privca + josepy)", parse),
        ("JWS verify ES256 (josepy)", verify),
        ("account JWK load from JSON", load),
    ]


# the run -----------------------------------------------------------------------------------


def report_variant(
    variant: str, n: int, cpu: float, lego_times: list[float], everything: list[RequestStats]
) -> None:
    records = [r for r in everything if r.variant == variant]
    by_kind: dict[str, list[RequestStats]] = defaultdict(list)
    for record in records:
        by_kind[record.kind].append(record)
    print(f"\n{variant}: {VARIANTS[variant]}")
    print(
        f"{'request':15}{'count':>6}{'wall':>7}{'CPU':>7}{'conn':>6}{'wtx':>5}{'rtx':>5}"
        f"{'stmt':>6}  " + "".join(f"{p:>10}" for p in PARTS)
    )

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000

    for kind in sorted(by_kind, key=lambda k: -sum(r.wall for r in by_kind[k])):
        rows = by_kind[kind]
        parts = "".join(f"{med([r.parts.get(p, 0.0) for r in rows]):10.2f}" for p in PARTS)
        print(
            f"{kind:15}{len(rows) / n:6.1f}{med([r.wall for r in rows]):7.1f}"
            f"{med([r.cpu for r in rows]):7.1f}"
            f"{statistics.mean(r.connects for r in rows):6.1f}"
            f"{statistics.mean(r.writes for r in rows):5.1f}"
            f"{statistics.mean(r.reads for r in rows):5.1f}"
            f"{statistics.mean(r.statements for r in rows):6.1f}  {parts}"
        )
    inside = sum(r.cpu for r in records)
    print(
        f"per issuance: {len(records) / n:.1f} requests, "
        f"{sum(r.connects for r in records) / n:.1f} SQLite connections opened, "
        f"{sum(r.writes for r in records) / n:.1f} write + "
        f"{sum(r.reads for r in records) / n:.1f} read transactions, "
        f"{sum(r.statements for r in records) / n:.1f} statements; "
        f"app wall {sum(r.wall for r in records) / n * 1000:.0f} ms"
    )
    print(
        f"process CPU per issuance {cpu / n * 1000:.1f} ms: in the app {inside / n * 1000:.1f}, "
        f"outside it (TLS, HTTP parsing, access log, loop) {(cpu - inside) / n * 1000:.1f}; "
        f"lego wall median {statistics.median(lego_times) * 1000:.0f} ms "
        f"(min {min(lego_times) * 1000:.0f})"
    )


def report_spy(spy: tuple[Counter[str], Counter[str]], what: str) -> None:
    categories, leaves = spy
    total = sum(categories.values())
    print(f"\n{what} by category")
    for category, count in categories.most_common():
        print(f"  {category:40}{count / total * 100:6.1f} %")
    print("the 20 functions with the most (exclusive) share")
    for leaf, count in leaves.most_common(20):
        print(f"  {leaf[:90]:90}{count / total * 100:6.1f} %")


@dataclass
class Target:
    variant: str
    ca: Any
    url: str
    lego_times: list[float] = field(default_factory=list)
    cpu: float = 0.0
    parallel: list[float] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return Path(self.ca.home.root_cert)

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])


def run(args: argparse.Namespace) -> None:
    for tool in ("lego", "pebble-challtestsrv") + (("py-spy",) if args.py_spy else ()):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        raise BenchError(f"--variants takes a list of: {', '.join(VARIANTS)}")
    use_tls = not args.no_tls
    scheme = "https" if use_tls else "http"
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="privca-acme-profile-"))
        if args.keep:
            print(f"keeping {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        dns = stack.enter_context(dns_server())
        http_port = free_port()
        stack.enter_context(challenge_responder_process(work / "webroot", http_port))
        client = Lego(work / "webroot", work)
        patch_modules()
        targets: list[Target] = []
        for variant in variants:
            ca, app, tls = build(work / variant, dns, http_port)
            stack.callback(ca.close)
            instrument(app, ca, variant)
            port = free_port()
            log = work / f"{variant}.log"
            stack.enter_context(serving(app, variant, tls, port, log, use_tls))
            targets.append(Target(variant, ca, f"{scheme}://127.0.0.1:{port}/acme/directory"))
        print(machine(), f"load average {loadavg()}")
        for target in targets:
            client.once(target.url, target.root, f"warm.{target.variant}.bench.test")
        RECORDS.clear()
        threads_before = thread_times()
        for i in range(args.n):
            for target in targets[i % len(targets) :] + targets[: i % len(targets)]:
                cpu = time.process_time()
                name = f"p{i}.{target.variant}.bench.test"
                target.lego_times.append(client.once(target.url, target.root, name))
                target.cpu += time.process_time() - cpu
        sequential = list(RECORDS)
        threads_after = thread_times()
        for r in range(args.parallel_rounds):
            for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                names = [f"q{r}-{i}.{target.variant}.bench.test" for i in range(args.parallel)]
                target.parallel.append(client.parallel(target.url, target.root, names))
        print(f"over {args.n} lego issuances per variant, interleaved; ms per request (medians);")
        print("conn/wtx/rtx/stmt: SQLite connections opened, write/read transactions, statements")
        for target in targets:
            report_variant(target.variant, args.n, target.cpu, target.lego_times, sequential)
        report_threads(threads_before, threads_after, args.n * len(targets))
        if args.parallel_rounds:
            print(f"\n{args.parallel} lego at once, wall s (median of {args.parallel_rounds}):")
            for target in targets:
                print(f"  {target.variant:12}{statistics.median(target.parallel):7.3f}")
        if args.py_spy:
            spy = sample(targets[0], client, args.n)
            report_spy(spy, "py-spy samples (all threads; fsync and lock waits count as busy)")
        if args.yappi:
            cpu = cpu_profile(targets[0], client, args.n, args.yappi_out)
            report_spy(cpu, "yappi CPU time (all threads, exclusive time per function)")
        print("\nmicro measurements (this machine, now)")
        first = targets[0]
        for label, seconds in micro(work, first.port, first.root, first.ca, use_tls):
            print(f"  {label:68}{seconds * 1000:8.2f} ms")


def thread_times() -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads by kind, from /proc: the
    event loop (uvicorn's thread), the threadpool (ACME handlers and the store), the
    validators, the rest."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[str, float] = defaultdict(float)
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        name = names.get(int(task.name), "")
        if name.startswith("privca-validation"):
            kind = "validation threads"
        elif name.startswith("AnyIO worker"):
            kind = "threadpool (ACME handlers, store)"
        elif name.startswith("Thread-") and "run" in name:
            kind = "event loop (uvicorn)"
        else:
            kind = "other threads"
        times[kind] += (int(fields[11]) + int(fields[12])) / tick
    return times


def report_threads(before: dict[str, float], after: dict[str, float], issuances: int) -> None:
    print(
        "CPU per issuance by thread (/proc, sequential issuances, every variant): "
        + ", ".join(
            f"{kind} {(after[kind] - before.get(kind, 0.0)) / issuances * 1000:.1f} ms"
            for kind in sorted(after)
        )
    )


def sample(target: Target, client: Lego, n: int) -> tuple[Counter[str], Counter[str]]:
    """n more issuances against one target with py-spy sampling this process."""
    raw = client.work / "py-spy.txt"
    spy = subprocess.Popen(
        ["py-spy", "record", "--pid", str(os.getpid()), "--rate", "200",
         "--format", "raw", "--output", str(raw), "--threads", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    for i in range(n):
        client.once(target.url, target.root, f"spy{i}.bench.test")
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    spy.wait(30)
    print(f"\n(py-spy sampled {n} more issuances against {target.variant})")
    return categorize(raw)


TOP_INCLUSIVE = 30


def cpu_profile(
    target: Target, client: Lego, n: int, out: Path | None = None
) -> tuple[Counter[str], Counter[str]]:
    """n more issuances against one target under yappi (CPU clock, every thread); with
    `out`, the whole profile is saved there in pstats form (callers, callees)."""
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)  # C calls count for their caller
    for i in range(n):
        client.once(target.url, target.root, f"cpu{i}.bench.test")
    yappi.stop()
    print(f"\n(yappi profiled {n} more issuances against {target.variant})")
    categories: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for stat in yappi.get_func_stats():
        # microseconds of exclusive CPU time, as integers for the Counter
        micros = int(stat.tsub * 1e6)
        frame = f"{stat.module}:{stat.name}"
        hit = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), "other")
        categories[hit] += micros
        functions[f"{stat.name} ({Path(stat.module).name}:{stat.lineno})"] += micros
    inclusive = Counter(
        {
            f"{stat.name} ({Path(stat.module).name}:{stat.lineno})": int(stat.ttot * 1e6)
            for stat in yappi.get_func_stats()
            if "/privca/" in stat.module
        }
    )
    if out is not None:
        yappi.get_func_stats().save(str(out), type="pstat")
        print(f"(the whole profile is in {out}: python -m pstats {out})")
    yappi.clear_stats()
    print(f"privca's functions by inclusive CPU, ms per issuance ({n} issuances)")
    for frame, micros in inclusive.most_common(TOP_INCLUSIVE):
        print(f"  {frame[:90]:90}{micros / n / 1000:8.2f}")
    return categories, functions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="lego issuances per variant (20)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--parallel", type=int, default=8, help="lego at once (8)")
    parser.add_argument("--parallel-rounds", type=int, default=2, help="(2; 0 = none)")
    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--py-spy", action="store_true", help="sample the first variant")
    parser.add_argument("--yappi", action="store_true", help="CPU-profile the first variant")
    parser.add_argument(
        "--yappi-out", type=Path, help="with --yappi: save the profile here (pstats)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    try:
        run(args)
    except BenchError as exc:
        sys.exit(f"acme_profile.py: {exc}")


if __name__ == "__main__":
    main()
