"""What a request's nonce costs on SQLite: time and disk flushes per request (by hand, not CI).

Every ACME request that carries a JWS spends its nonce and hands out the next. Compared,
interleaved over one SQLite file:

- two-commits: a row per nonce handed out; spend (delete) in one durable transaction,
  hand out (insert) in another (privca before issue 12);
- one-commit: the same rows, both in one transaction, synchronous=FULL;
- row-exchange: the same rows, one transaction whose commit does not wait for the disk
  (privca until migration 0008);
- self-proving: what privca does now (acme/nonces.py): handing out is an HMAC and writes
  nothing; spending inserts the nonce into the spent table, commit without a flush.

Each on a SQLite engine with NullPool (a connection per transaction, and SQLite
checkpoints the WAL when the last connection closes: privca's store until the pooled
engine) and on privca's store engine (pooled). With --strace, each variant also runs under
`strace -c` and the fdatasync/fsync calls per request are printed (machine-independent).

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

from privca.acme.nonces import NonceSource
from privca.store import database
from privca.store.acme import AcmeStore
from privca.store.inventory import Store

Variant = Callable[[AcmeStore, NonceSource, str], str]
LIFETIME = dt.timedelta(hours=1)
# The row-per-nonce table privca had before migration 0008, in the benchmark's database.
ROWS = sa.Table(
    "bench_row_nonces",
    sa.MetaData(),
    sa.Column("value", sa.String(64), primary_key=True),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
)


def _later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + LIFETIME


def two_commits(store: AcmeStore, _source: NonceSource, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    with store.transaction() as connection:
        connection.execute(ROWS.delete().where(ROWS.c.value == spent))
    with store.transaction() as connection:
        connection.execute(ROWS.insert().values(value=issued, expires=_later()))
    return issued


def one_commit(store: AcmeStore, _source: NonceSource, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    with store.transaction() as connection:
        connection.execute(ROWS.delete().where(ROWS.c.value == spent))
        connection.execute(ROWS.insert().values(value=issued, expires=_later()))
    return issued


def row_exchange(store: AcmeStore, _source: NonceSource, spent: str) -> str:
    issued = secrets.token_urlsafe(24)
    with store.transaction(durable=False) as connection:
        connection.execute(ROWS.delete().where(ROWS.c.value == spent))
        connection.execute(ROWS.insert().values(value=issued, expires=_later()))
    return issued


def self_proving(_store: AcmeStore, source: NonceSource, spent: str) -> str:
    accepted, issued = source.exchange(spent)
    if not accepted:
        raise RuntimeError("a nonce handed out was not accepted")
    return issued


VARIANTS: dict[str, Variant] = {
    "two-commits": two_commits,
    "one-commit": one_commit,
    "row-exchange": row_exchange,
    "self-proving": self_proving,
}


def open_store(directory: Path, pooled: bool) -> AcmeStore:
    directory.mkdir(exist_ok=True)
    path = directory / "inventory.db"
    store = Store(database.sqlite_url(path))
    store.migrate()
    ROWS.create(store.engine, checkfirst=True)
    if pooled:
        return AcmeStore.of(store)
    engine = sa.create_engine(
        database.sqlite_url(path),
        connect_args={"timeout": database.SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=sa.NullPool,
    )
    database._tune_sqlite(engine, path)
    return AcmeStore(engine)


def run(store: AcmeStore, variant: Variant, n: int) -> float:
    """Seconds per request for n requests, each spending the previous one's nonce."""
    source = NonceSource(store)
    spent = source.new()
    with store.transaction() as connection:
        connection.execute(ROWS.insert().values(value=spent, expires=_later()))
    started = time.perf_counter()
    for _ in range(n):
        spent = variant(store, source, spent)
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
            engine = "privca's store engine (pooled)" if pooled else "a NullPool engine"
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
