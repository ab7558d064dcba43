"""Inventory scale benchmark (by hand, not CI): how the commands grow with the inventory.

Builds one inventory per store and grows it through the sizes (10k, then 100k, then 1M
with --full), measuring at each size:

    revoke      `CertificateAuthority.revoke(NAME)` in this process (library, per call)
    show        `privca show NAME --json` (a process: start-up included, see `start-up`)
    nagios      `privca check --format nagios`
    prometheus  `privca check --format prometheus` (and its output size)
    list        `privca list --json` (time, peak RSS, output size)
    /metrics    one scrape of a running `privca serve --no-tls --no-acme`
    CRL         `CertificateAuthority.crl()` with 10 % of the inventory revoked (time, size)
    rollover    what `rotate status` asks when every certificate is in the old hierarchy
                (a root rollover just begun): the per-CA count of the valid ones
                (`InventoryView.valid_by_issuer`, in this process), against the read of
                every valid certificate it replaced, measured in the same run (ratio)
    bytes/cert  database size over certificate count (SQLite file after a checkpoint,
                PostgreSQL pg_database_size minus the empty database's)
    start-up    a Python process importing what those commands import, doing nothing

    python benchmarks/scale.py                      # 10k and 100k, SQLite and PostgreSQL
    python benchmarks/scale.py --full               # ... and 1M (~1 h on 2 cores)
    python benchmarks/scale.py --sizes 1k,10k --stores sqlite --json out.json

The certificates are real: signed by the CA through the library
(`CertificateAuthority.sign_requests`, batches of --batch requests, each with its own
P-256 key), recorded as privca records every certificate (reserve, sign, complete, an
audit event each). The rows are shaped like a fleet's history:

- every live certificate has its own host name, `hNNNNNNN.teamNN.corp.example`, 20 % with
  a second name `alt-hNNNNNNN.svc.corp.example`; profiles server 60 %, server-client
  30 %, client 10 %; validity 7, 30, 90 or 397 days;
- 42 % expired long ago (31 to 400 days), carrying the name of a live host (an earlier
  generation of its certificate), so some names match several certificates;
- 5 % of all certificates expire inside `check`'s 30-day warning window, the rest later;
- 3 % revoked (revocation dates within the last 30 days; reasons superseded,
  cessationOfOperation, keyCompromise), among the live ones.

Revocations are written in bulk by `StoreInternals`, the only code here that touches
privca's tables (the library revokes one certificate per transaction, which would take
longer than the rest of the build), each with the `revoked` audit entry the library
writes (privca.store.auditlog.append); fix it there when the schema changes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This directory holds acme.py: keep it off sys.path so `import acme` finds certbot's.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))  # last: _bench only

from _bench import BenchError, Postgres, free_port, loadavg, machine  # noqa: E402

PASSPHRASE = b"benchmark passphrase"
CA_AGE = dt.timedelta(days=600)  # the CA was made this long ago: room for expired history
WINDOW = dt.timedelta(days=30)  # `privca check`'s default --warn
TEAMS = 50
SUFFIXES = {"k": 1_000, "m": 1_000_000}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = SUFFIXES.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in SUFFIXES else text
    if not digits.isdigit() or int(digits) * factor < 100:
        raise argparse.ArgumentTypeError(f"size '{text}' is not a number >= 100 (10k, 1m ok)")
    return int(digits) * factor


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


# the one place that touches privca's tables -------------------------------------------------


class StoreInternals:
    """Bulk changes the library has no call for. Everything schema-specific is here."""

    def __init__(self, ca: Any) -> None:
        from privca.store.schema import certificates

        self.engine = ca.store.engine
        self.certificates = certificates

    def set_revoked(
        self, revocations: Sequence[tuple[int, dt.datetime, str]], audited: bool = True
    ) -> None:
        """(serial, revoked_at, reason) each, in one transaction, with the audit entry the
        library writes for each (`revoked`, the reason) unless `audited` is False (the CRL
        measurement's extra revocations, undone by set_issued: no trace left either way)."""
        import sqlalchemy as sa

        from privca.store import auditlog
        from privca.x509.encoding import serial_hex

        table = self.certificates
        statement = (
            table.update()
            .where(table.c.serial == sa.bindparam("s"))
            .values(
                status="revoked", revoked_at=sa.bindparam("at"), revocation_reason=sa.bindparam("r")
            )
        )
        params = [{"s": serial_hex(s), "at": at, "r": reason} for s, at, reason in revocations]
        with self.engine.begin() as connection:
            for start in range(0, len(params), 5000):
                connection.execute(statement, params[start : start + 5000])
            if audited:  # after the updates: the write lock is held (SQLite)
                auditlog.append(
                    connection,
                    max((at for _s, at, _r in revocations), default=dt.datetime.now(dt.UTC)),
                    [("revoked", p["s"], {"reason": p["r"]}) for p in params],
                    actor="benchmark",
                )

    def set_issued(self, serials: Sequence[int]) -> None:
        """Undo set_revoked (the CRL measurement's extra revocations)."""
        import sqlalchemy as sa

        from privca.x509.encoding import serial_hex

        table = self.certificates
        statement = (
            table.update()
            .where(table.c.serial == sa.bindparam("s"))
            .values(status="issued", revoked_at=None, revocation_reason=None)
        )
        with self.engine.begin() as connection:
            for start in range(0, len(serials), 5000):
                connection.execute(
                    statement, [{"s": serial_hex(s)} for s in serials[start : start + 5000]]
                )


# building --------------------------------------------------------------------------------


@dataclass
class Fleet:
    """What has been built so far, and the live certificates the measurements may use."""

    rng: random.Random
    count: int = 0
    hosts: int = 0
    revoked: int = 0
    live: list[tuple[str, int]] = field(default_factory=list)  # (name, serial), not revoked
    build_seconds: float = 0.0
    build_cpu_seconds: float = 0.0  # this process's (user + system)

    def host_name(self, index: int) -> str:
        return f"h{index:07d}.team{index % TEAMS:02d}.corp.example"


def batch_plan(rng: random.Random, now: dt.datetime) -> tuple[str, int, dt.datetime, bool]:
    """(profile, days, not_after, live) of one batch, drawn with the shares above."""
    profile = rng.choices(["server", "server-client", "client"], [60, 30, 10])[0]
    draw = rng.random()
    if draw < 0.42:  # expired long ago
        days = rng.choice([7, 30, 90])
        not_after = now - dt.timedelta(days=rng.uniform(31, 400))
        return profile, days, not_after, False
    if draw < 0.47:  # inside the warning window
        days = rng.choice([30, 90, 397])
        not_after = now + dt.timedelta(days=rng.uniform(1, WINDOW.days - 1))
        return profile, days, not_after, True
    days = rng.choice([90, 397, 397])
    not_after = now + dt.timedelta(days=rng.uniform(WINDOW.days + 1, days - 1))
    return profile, days, not_after, True


def grow(ca: Any, fleet: Fleet, target: int, batch: int, now: dt.datetime) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from privca.x509.csr import CertificateRequest
    from privca.x509.names import parse_names

    started = time.perf_counter()
    cpu_started = time.process_time()
    # At least ~200 batches per step, so that the shares (drawn per batch) come out right.
    batch = max(20, min(batch, (target - fleet.count) // 200))
    while fleet.count < target:
        size = min(batch, target - fleet.count)
        profile, days, not_after, live = batch_plan(fleet.rng, now)
        names: list[list[str]] = []
        for _ in range(size):
            if live:
                index, fleet.hosts = fleet.hosts, fleet.hosts + 1
            else:  # an earlier generation of some live host's certificate
                index = fleet.rng.randrange(max(fleet.hosts, 1))
            name = fleet.host_name(index)
            second = fleet.rng.random() < 0.2
            names.append([name, f"alt-h{index:07d}.svc.corp.example"] if second else [name])
        requests = [
            CertificateRequest(
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                names=parse_names(n),
                ignored=(),
                asks_for_ca=False,
                source="benchmark",
            )
            for n in names
        ]
        issued = ca.sign_requests(
            requests, profile=profile, days=days, now=not_after - dt.timedelta(days=days)
        )
        fleet.count += size
        if live:
            fleet.live.extend((n[0], cert.serial) for n, cert in zip(names, issued, strict=True))
        if fleet.count % (batch * 100) < batch:
            print(
                f"    {fleet.count} certificates ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    # ~3 % of everything revoked, among the live ones
    wanted = int(fleet.count * 0.03) - fleet.revoked
    if wanted > 0:
        revoke_some(ca, fleet, wanted, now)
    fleet.build_seconds += time.perf_counter() - started
    fleet.build_cpu_seconds += time.process_time() - cpu_started


REASONS = ["superseded"] * 5 + ["cessationOfOperation"] * 4 + ["keyCompromise"]


def revoke_some(
    ca: Any, fleet: Fleet, n: int, now: dt.datetime, audited: bool = True
) -> list[tuple[str, int]]:
    """Revoke n random live certificates in bulk; returns their (name, serial)."""
    chosen: list[tuple[str, int]] = []
    for _ in range(min(n, len(fleet.live))):
        i = fleet.rng.randrange(len(fleet.live))
        fleet.live[i], fleet.live[-1] = fleet.live[-1], fleet.live[i]
        chosen.append(fleet.live.pop())
    StoreInternals(ca).set_revoked(
        [
            (serial, now - dt.timedelta(days=fleet.rng.uniform(0, 30)), fleet.rng.choice(REASONS))
            for _name, serial in chosen
        ],
        audited,
    )
    fleet.revoked += len(chosen)
    return chosen


def pick_live(fleet: Fleet) -> str:
    """A live, unrevoked host name matching exactly one valid certificate (then forgotten)."""
    i = fleet.rng.randrange(len(fleet.live))
    fleet.live[i], fleet.live[-1] = fleet.live[-1], fleet.live[i]
    return fleet.live.pop()[0]


# measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mib: float
    output_bytes: int
    exit_code: int


def privca(home: Path, *args: str, out: Path | None = None, exits: tuple[int, ...] = (0,)) -> Run:
    """One `python -m privca` process: wall time, peak RSS (its own), output size."""
    command = [sys.executable, "-m", "privca", "--home", str(home), *args]
    sink = out.open("wb") if out is not None else open(os.devnull, "wb")  # noqa: SIM115
    with sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read() if process.stderr else b""
    size = out.stat().st_size if out is not None else 0
    if process.returncode not in exits:
        raise BenchError(f"privca {' '.join(args)} exited {process.returncode}: {stderr[-500:]!r}")
    return Run(seconds, usage.ru_maxrss / 1024, size, process.returncode)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


@contextlib.contextmanager
def serving(
    home: Path, passphrase: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """`privca serve --no-tls --no-acme` (with `env`, e.g. another source tree's
    PYTHONPATH); yields its base URL and pid once /health answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "privca", "-q", "--home", str(home), "serve", "--no-tls",
         "--no-acme", "--listen", f"127.0.0.1:{port}", "--passphrase-file", str(passphrase)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    response.read()
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read() if process.stderr else b""
                    raise BenchError(f"privca serve did not start: {err[-500:]!r}") from None
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def scrape(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/metrics", timeout=600) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


@dataclass
class Store:
    kind: str  # sqlite | postgresql
    url: str = ""  # "" = SQLite in the home
    postgres: Postgres | None = None
    database: str = ""
    empty_bytes: int = 0

    def object_bytes(self, home: Path) -> dict[str, int]:
        """Bytes per table and index, largest first (SQLite: dbstat; PostgreSQL: each
        relation's size, its TOAST included)."""
        if self.postgres is not None:
            import psycopg

            query = (
                "SELECT c.relname, pg_total_relation_size(c.oid) - "
                "CASE WHEN c.relkind = 'r' THEN pg_indexes_size(c.oid) ELSE 0 END "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
            )
            with psycopg.connect(self.url, autocommit=True) as connection:
                rows = connection.execute(query).fetchall()
        else:
            with contextlib.closing(sqlite3.connect(home / "privca.db")) as connection:
                rows = connection.execute(
                    "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
                ).fetchall()
        return dict(sorted(((str(n), int(b)) for n, b in rows), key=lambda nb: -nb[1]))

    def size_bytes(self, home: Path) -> int:
        if self.postgres is not None:
            return self.postgres.database_bytes(self.database) - self.empty_bytes
        path = home / "privca.db"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in home.glob("privca.db*"))


def startup(runs: int) -> float:
    """A process that imports what show/list/check import, and does nothing."""
    code = "import privca.authority, privca.cli.main, privca.cli.inventory"

    def once() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    return median_of(runs, once)


SKIPPABLE = ("show", "nagios", "prometheus", "list", "metrics", "crl", "rollover")


def measure_rollover(ca: Any, now: dt.datetime) -> dict[str, Any]:
    """rollover_status's question over every CA (all of them old hierarchy), and the read
    of every valid certificate it asked before (the baseline, after it: a warmer cache)."""
    from privca.x509.profiles import OCSP_RESPONDER

    skipped = OCSP_RESPONDER.name
    ids = [a.id for a in ca.registry.authorities]
    started = time.perf_counter()
    counted = ca.inventory.valid_by_issuer(ids, now, (skipped,))
    aggregate = time.perf_counter() - started
    started = time.perf_counter()
    read = [r for r in ca.inventory.find(status="valid", now=now) if r.profile != skipped]
    baseline = time.perf_counter() - started
    if sum(v.count for v in counted.values()) != len(read):
        raise BenchError(f"valid_by_issuer counts {counted}, the listing {len(read)}")
    return {
        "rollover_s": round(aggregate, 3),
        "rollover_read_s": round(baseline, 2),
        "rollover_x": round(baseline / max(aggregate, 1e-6), 1),
    }


def measure(
    ca: Any,
    store: Store,
    home: Path,
    passphrase: Path,
    fleet: Fleet,
    work: Path,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "certificates": fleet.count,
        "build_s": round(fleet.build_seconds, 1),
        "build_cpu_s": round(fleet.build_cpu_seconds, 1),
    }
    for key, _label in COLUMNS:
        result.setdefault(key, "-")  # skipped
    # revoke NAME, through the library, per call (five different names)
    timings = []
    for _ in range(5):
        name = pick_live(fleet)
        started = time.perf_counter()
        ca.revoke(name, "superseded")
        timings.append(time.perf_counter() - started)
        fleet.revoked += 1
    result["revoke_ms"] = round(statistics.median(timings) * 1000, 1)
    names = [pick_live(fleet) for _ in range(3)]
    runs = 3 if fleet.count <= 200_000 else 1  # medians where a run is cheap
    if "show" not in skip:
        result["show_s"] = round(
            statistics.median(privca(home, "show", n, "--json").seconds for n in names), 3
        )
    if "nagios" not in skip:
        result["nagios_s"] = round(
            median_of(
                runs, lambda: privca(home, "check", "--format", "nagios", exits=(0, 1, 2)).seconds
            ),
            2,
        )
    if "prometheus" not in skip:
        prometheus = privca(
            home, "check", "--format", "prometheus", out=work / "check.prom", exits=(0, 1)
        )
        result["prometheus_s"] = round(prometheus.seconds, 2)
        result["prometheus_mb"] = round(prometheus.output_bytes / 1e6, 1)
    if "list" not in skip:
        listed = privca(home, "list", "--json", out=work / "list.json")
        result["list_s"] = round(listed.seconds, 2)
        result["list_rss_mib"] = round(listed.rss_mib)
        result["list_mb"] = round(listed.output_bytes / 1e6, 1)
    if "metrics" not in skip:
        with serving(home, passphrase) as (url, _pid):
            scrape(url)  # the first scrape imports monitoring.py
            scrapes = [scrape(url) for _ in range(3)]
        result["metrics_s"] = round(statistics.median(s for s, _ in scrapes), 3)
        result["metrics_mb"] = round(scrapes[0][1] / 1e6, 1)
    if "crl" not in skip:
        # a CRL with 10 % of the inventory revoked (then back to ~3 %)
        extra = revoke_some(ca, fleet, int(fleet.count * 0.10) - fleet.revoked, now, audited=False)
        started = time.perf_counter()
        crl = ca.crl()
        result["crl_s"] = round(time.perf_counter() - started, 2)
        result["crl_entries"] = len(crl)
        from cryptography.hazmat.primitives.serialization import Encoding

        result["crl_kb"] = round(len(crl.public_bytes(Encoding.DER)) / 1024)
        StoreInternals(ca).set_issued([serial for _name, serial in extra])
        fleet.revoked -= len(extra)
        fleet.live.extend(extra)
    if "rollover" not in skip:
        result.update(measure_rollover(ca, now))
    result["bytes_per_cert"] = round(store.size_bytes(home) / max(fleet.count, 1))
    result["objects_bytes_per_cert"] = {
        name: round(size / max(fleet.count, 1), 1)
        for name, size in store.object_bytes(home).items()
        if size >= max(fleet.count, 1 << 20)  # a byte per certificate and a MiB or more
    }
    result["startup_s"] = round(startup(3), 3)
    return result


COLUMNS = [
    ("certificates", "certs"),
    ("build_s", "build s"),
    ("build_cpu_s", "build CPU s"),
    ("revoke_ms", "revoke ms"),
    ("show_s", "show s"),
    ("nagios_s", "nagios s"),
    ("prometheus_s", "prom s"),
    ("prometheus_mb", "prom MB"),
    ("list_s", "list s"),
    ("list_rss_mib", "list MiB"),
    ("metrics_s", "/metrics s"),
    ("metrics_mb", "metr MB"),
    ("crl_s", "CRL s"),
    ("crl_entries", "CRL entries"),
    ("crl_kb", "CRL KB"),
    ("rollover_s", "rollover s"),
    ("rollover_read_s", "read-all s"),
    ("rollover_x", "read-all/rollover"),
    ("bytes_per_cert", "B/cert"),
    ("startup_s", "start-up s"),
]


def print_row(store: str, row: dict[str, Any]) -> None:
    cells = [f"{human(row['certificates']) if k == 'certificates' else row[k]}" for k, _ in COLUMNS]
    print("| " + store + " | " + " | ".join(cells) + " |", flush=True)


def print_objects(store: str, row: dict[str, Any]) -> None:
    """Where the bytes go: bytes per certificate of each table and index."""
    objects = row.get("objects_bytes_per_cert", {})
    cells = ", ".join(f"{name} {size}" for name, size in objects.items())
    print(f"  {store} {human(row['certificates'])} bytes/cert by object: {cells}", flush=True)


def run_store(
    kind: str, sizes: list[int], args: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    from privca.authority import CertificateAuthority

    now = dt.datetime.now(dt.UTC)
    store = Store(kind)
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":
            store.postgres = stack.enter_context(Postgres())
            store.database = "privca_scale"
            store.url = store.postgres.create_database(store.database)
            store.empty_bytes = store.postgres.database_bytes(store.database)
        home = work / f"home-{kind}"
        passphrase = work / "passphrase"
        passphrase.write_bytes(PASSPHRASE + b"\n")
        passphrase.chmod(0o600)
        ca = CertificateAuthority.init(
            home, "Scale CA", passphrase=PASSPHRASE, store_url=store.url, now=now - CA_AGE
        )
        stack.callback(ca.close)
        fleet = Fleet(random.Random(args.seed))
        rows = []
        for size in sizes:
            print(f"  {kind}: building up to {human(size)} certificates ...", flush=True)
            grow(ca, fleet, size, args.batch, now)
            print(
                f"  {kind}: measuring at {human(size)} (load average {loadavg()}) ...", flush=True
            )
            row = measure(ca, store, home, passphrase, fleet, work, args.skip)
            row["store"] = kind
            rows.append(row)
            print_row(kind, row)
            print_objects(kind, row)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k", help="inventory sizes, ascending (10k,100k)")
    parser.add_argument("--full", action="store_true", help="also 1M certificates")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--batch", type=int, default=1000, help="certificates per sign_requests")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the homes and databases' dir")
    parser.add_argument(
        "--skip",
        default="",
        help=f"measurements left out, comma-separated ({', '.join(SKIPPABLE)}): list --json "
        "at 1M takes ~10 min",
    )
    args = parser.parse_args()
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    if skip - set(SKIPPABLE):
        parser.error(f"--skip takes {', '.join(SKIPPABLE)}")
    args.skip = skip
    try:
        sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or any(s not in ("sqlite", "postgresql") for s in stores):
        parser.error("--stores takes sqlite, postgresql or both")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    print(machine(), f"load average {loadavg()}")
    print(f"sizes {', '.join(human(s) for s in sizes)}; stores {', '.join(stores)}")
    header = "| store | " + " | ".join(label for _, label in COLUMNS) + " |"
    results: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="privca-scale-"))
    try:
        for kind in stores:
            results.extend(run_store(kind, sizes, args, work))
    except BenchError as exc:
        sys.exit(f"scale.py: {exc}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 1))
    for row in results:
        print_row(row["store"], row)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
