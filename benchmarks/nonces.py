"""What a request's nonce costs on SQLite: time and disk flushes per request (by hand, not CI).

Every ACME request that carries a JWS spends its nonce and hands out the next. Compared,
interleaved over one SQLite file:

- two-commits: spend in one durable transaction, hand out in another (privca before issue 12);
- one-commit: both in one transaction, synchronous=FULL;
- exchange: what privca does now (AcmeStore.exchange_nonce: one transaction, the commit
  does not wait for the disk; see store/acme/nonces.py for why no nonce is accepted twice).

Each on the store's engine as privca builds it (NullPool: a connection per transaction, and
SQLite checkpoints the WAL when the last connection closes) and on a pooled engine (what a
pooled store engine would give). With --strace, each variant also runs under `strace -c`
and the fdatasync/fsync calls per request are printed (machine-independent, unlike times).

    python benchmarks/nonces.py            # 5 rounds of 100 requests per variant
    python benchmarks/nonces.py --n 300 --strace
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from privca.store import database
from privca.store.acme import AcmeStore
from privca.store.inventory import Store
from privca.store.schema import acme_nonces

Variant = Callable[[AcmeStore, str], str]
LIFETIME = dt.timedelta(hours=1)


def _later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + LIFETIME


def two_commits(store: AcmeStore, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    with store.transaction() as connection:
        connection.execute(acme_nonces.delete().where(acme_nonces.c.value == spent))
    with store.transaction() as connection:
        connection.execute(acme_nonces.insert().values(value=issued, expires=_later()))
    return issued


def one_commit(store: AcmeStore, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    with store.transaction() as connection:
        connection.execute(acme_nonces.delete().where(acme_nonces.c.value == spent))
        connection.execute(acme_nonces.insert().values(value=issued, expires=_later()))
    return issued


def exchange(store: AcmeStore, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    now = dt.datetime.now(dt.UTC)
    if not store.exchange_nonce(spent, issued, now + LIFETIME, now):
        raise RuntimeError("a nonce handed out was not accepted")
    return issued


VARIANTS: dict[str, Variant] = {
    "two-commits": two_commits,
    "one-commit": one_commit,
    "exchange": exchange,
}


def open_store(directory: Path, pooled: bool) -> AcmeStore:
    directory.mkdir(exist_ok=True)
    path = directory / "inventory.db"
    store = Store(database.sqlite_url(path))
    store.migrate()
    if not pooled:
        return AcmeStore.of(store)
    engine = sa.create_engine(
        database.sqlite_url(path),
        connect_args={"timeout": database.SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=sa.QueuePool,
    )
    database._tune_sqlite(engine)
    return AcmeStore(engine)


def run(store: AcmeStore, variant: Variant, n: int) -> float:
    """Seconds per request for n requests, each spending the previous one's nonce."""
    spent = secrets.token_urlsafe(24)
    store.add_nonce(spent, _later())
    started = time.perf_counter()
    for _ in range(n):
        spent = variant(store, spent)
    return (time.perf_counter() - started) / max(n, 1)


def flushes_per_request(variant: str, pooled: bool, n: int) -> float:
    """fdatasync + fsync calls per request, from `strace -c` (setup subtracted)."""

    def count(requests: int) -> int:
        command = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", sys.executable]
        command += [__file__, "--child", variant, "--n", str(requests)]
        command += ["--pooled"] if pooled else []
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        found = re.findall(
            r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
            result.stderr,
            re.MULTILINE,
        )
        return sum(int(calls) for calls in found)

    return (count(n) - count(0)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strace", action="store_true", help="count disk flushes too")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--pooled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="privca-nonces-", dir="/var/tmp"))
    try:
        if args.child:
            run(open_store(directory, args.pooled), VARIANTS[args.child], args.n)
            return
        for pooled in (False, True):
            store = open_store(directory / ("pooled" if pooled else "nullpool"), pooled)
            times: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(args.rounds):
                for name, variant in VARIANTS.items():
                    times[name].append(run(store, variant, args.n))
            engine = "pooled engine" if pooled else "privca's engine (NullPool)"
            print(f"{engine}, {args.rounds} rounds of {args.n} requests:")
            baseline = statistics.median(times["two-commits"])
            for name, values in times.items():
                median = statistics.median(values)
                line = f"  {name:12} {median * 1000:7.2f} ms/request  x{baseline / median:.1f}"
                if args.strace and shutil.which("strace"):
                    line += f"  {flushes_per_request(name, pooled, args.n):.1f} flushes/request"
                print(line)
            store.engine.dispose()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
